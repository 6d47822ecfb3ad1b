"""The API-gateway lesson's gateway, as the page reaches it: show its policy, preview and apply one.

The same shape as the mesh's (``mesh_api``): parse, send one command to the
sandbox's ``gateway`` service through Redis (never to its port), shape the
answer. A policy the gateway refuses is a 400 whose ``errors`` name the field
(``routes[1].match.pathPrefix``).
"""

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from sandbox_services.runtime.config import load_config
from sandbox_services.runtime.service_commands import ServiceCommandFailed, send_command

from .api import _controlled_sandbox, _visible_sandbox
from .mesh_api import ControlPlaneUnavailable, PolicyInput

LESSON = "api-gateway"
GATEWAY = "gateway"


def _gateway_sandbox(sandbox):
    if sandbox.lesson != LESSON:
        raise NotFound("This sandbox has no API gateway.")
    return sandbox


def _ask(sandbox, payload: dict) -> Response:
    try:
        answer = send_command(load_config().redis_url, sandbox.id, GATEWAY, payload)
    except ServiceCommandFailed as error:
        raise ControlPlaneUnavailable(str(error)) from None
    return Response(answer.get("body", {}), status=int(answer.get("status", 500)))


class GatewayApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, sandbox_id: str):
        """Return the gateway's running policy, its generated configuration and its counters."""
        return _ask(_gateway_sandbox(_visible_sandbox(request, sandbox_id)), {"op": "show"})


class GatewayPolicyApi(APIView):
    @extend_schema(request=PolicyInput, responses={200: dict, 400: dict})
    def post(self, request, sandbox_id: str):
        """Preview (the generated config's diff) or apply a gateway policy written as YAML."""
        sandbox = _gateway_sandbox(_controlled_sandbox(request, sandbox_id))
        data = PolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        op = "apply" if data.validated_data["apply"] else "preview"
        return _ask(sandbox, {"op": op, "policy": data.validated_data["policy"]})
