"""One error shape for the whole API: {"detail": "...", "errors": {field: [...]}}."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

API_PREFIX = "/api/"


def error_response(detail: str, status: int, errors: dict | None = None) -> JsonResponse:
    return JsonResponse({"detail": detail, "errors": errors or {}}, status=status)


def _too_large() -> JsonResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_response(f"The request body is larger than {limit} bytes.", 413)


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """Answer an unknown URL: the JSON error under /api/, the site's 404 page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return error_response("Not found.", 404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return error_response("Server error.", 500)
    return defaults.server_error(request)


class OversizeBodyMiddleware:
    """Refuse an API body over DATA_UPLOAD_MAX_MEMORY_SIZE with the JSON error, before reading it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request.path.startswith(API_PREFIX) and limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error_response("Content-Length is not a number.", 400)
            if length > limit:
                return _too_large()
        return self.get_response(request)


def _flatten(errors, prefix: str = "") -> dict[str, list[str]]:
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(_flatten(value, name))
    elif (
        isinstance(errors, list)
        and errors
        and all(not isinstance(item, (dict, list)) for item in errors)
    ):
        flat[prefix or "non_field_errors"] = [str(item) for item in errors]
    elif isinstance(errors, list):
        for index, value in enumerate(errors):
            flat.update(_flatten(value, f"{prefix}[{index}]"))
    else:
        flat[prefix or "non_field_errors"] = [str(errors)]
    return flat


def exception_handler(exc, context):
    # Django's own request errors would otherwise become its HTML 400 page.
    if isinstance(exc, RequestDataTooBig):
        return _too_large()
    if isinstance(exc, SuspiciousOperation):
        return error_response("The request is malformed.", 400)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.items()), None)
        detail = f"{first[0]}: {first[1][0]}" if first else "Invalid input."
        response.data = {"detail": detail, "errors": errors}
    else:
        detail = (
            response.data.get("detail", "Error.")
            if isinstance(response.data, dict)
            else str(response.data)
        )
        errors = getattr(exc, "field_errors", {}) or {}
        response.data = {"detail": str(detail), "errors": errors}
    return response
