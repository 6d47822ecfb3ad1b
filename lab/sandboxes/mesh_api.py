"""The service-mesh lesson's control plane, as the page reaches it: show the mesh, preview and apply policy.

Parse, send one command to the sandbox's control plane through Redis
(``runtime.service_commands``; never to its port), shape the answer. A policy
the control plane refuses is a 400 whose ``errors`` name the field, as the
control plane names it (``VirtualService[1].spec.http[0].retries.retryOn``).
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from sandbox_services.runtime.config import load_config
from sandbox_services.runtime.service_commands import ServiceCommandFailed, send_command

from .api import _controlled_sandbox, _visible_sandbox

LESSON = "service-mesh"
CONTROL_PLANE = "control-plane"


class ControlPlaneUnavailable(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The sandbox's control plane is not answering."


class PolicyInput(serializers.Serializer):
    policy = serializers.CharField(max_length=65536, trim_whitespace=False)
    apply = serializers.BooleanField(default=False)


def _mesh_sandbox(sandbox):
    if sandbox.lesson != LESSON:
        raise NotFound("This sandbox has no mesh.")
    return sandbox


def _ask(sandbox, payload: dict) -> Response:
    try:
        answer = send_command(load_config().redis_url, sandbox.id, CONTROL_PLANE, payload)
    except ServiceCommandFailed as error:
        raise ControlPlaneUnavailable(str(error)) from None
    return Response(answer.get("body", {}), status=int(answer.get("status", 500)))


class MeshApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, sandbox_id: str):
        """Return the running policy, the sidecars and each replica's state as HAProxy reports it."""
        return _ask(_mesh_sandbox(_visible_sandbox(request, sandbox_id)), {"op": "show"})


class MeshPolicyApi(APIView):
    @extend_schema(request=PolicyInput, responses={200: dict, 400: dict})
    def post(self, request, sandbox_id: str):
        """Preview (the generated config's diff) or apply a policy written as Istio YAML."""
        sandbox = _mesh_sandbox(_controlled_sandbox(request, sandbox_id))
        data = PolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        op = "apply" if data.validated_data["apply"] else "preview"
        return _ask(sandbox, {"op": op, "policy": data.validated_data["policy"]})
