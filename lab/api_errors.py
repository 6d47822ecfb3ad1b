"""One error shape for the whole API: {"detail": "...", "errors": {field: [...]}}."""

from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


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
