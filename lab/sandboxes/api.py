"""The JSON API of sandboxes, runs and faults: parse, call one service, shape the output."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from . import selectors, services, traces
from .serializers import (
    FaultInput,
    RunCreateInput,
    RunOutput,
    SandboxCreateInput,
    SandboxOutput,
    WarmPoolInput,
    WarmPoolOutput,
)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The sandbox can't do that now."


class QuotaRefused(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "The lab is full."


class LearnerRateThrottle(UserRateThrottle):
    """Per learner (per address for anonymous callers), at the rate settings give the scope.

    The rate is read when a request comes, not when this module loads, so a
    changed setting applies (DRF's own reads it once, at import).
    """

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]


class SandboxStartThrottle(LearnerRateThrottle):
    scope = "sandbox_start"


class RunCreateThrottle(LearnerRateThrottle):
    scope = "run_create"


class PostThrottled:
    """Throttle a view's POST only; its reads stay free."""

    post_throttles: tuple = ()

    def get_throttles(self):
        if self.request.method == "POST":
            return [throttle() for throttle in self.post_throttles]
        return super().get_throttles()


def _invalid(error: services.InputInvalid) -> ValidationError:
    return ValidationError(error.errors)


def _visible_sandbox(request, sandbox_id: str):
    sandbox = selectors.sandbox_get_visible(user=request.user, sandbox_id=sandbox_id)
    if sandbox is None:
        raise NotFound("No such sandbox.")
    return sandbox


def _controlled_sandbox(request, sandbox_id: str):
    sandbox = _visible_sandbox(request, sandbox_id)
    if not selectors.can_control(user=request.user, sandbox=sandbox):
        raise PermissionDenied("Instructors watch a learner's sandbox read-only.")
    return sandbox


class SandboxListCreateApi(PostThrottled, APIView):
    post_throttles = (SandboxStartThrottle,)

    @extend_schema(responses=SandboxOutput(many=True))
    def get(self, request):
        if not request.user.is_authenticated:
            return Response([])
        sandboxes = selectors.sandbox_list_mine(
            user=request.user, lesson=request.query_params.get("lesson")
        )
        return Response(SandboxOutput(sandboxes[:50], many=True).data)

    @extend_schema(request=SandboxCreateInput, responses={201: SandboxOutput})
    def post(self, request):
        data = SandboxCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user  # IsAuthenticatedOrReadOnly: anonymous writes are a 403
        try:
            sandbox = services.sandbox_start(user=user, lesson=data.validated_data["lesson"])
        except services.InputInvalid as error:
            raise _invalid(error) from None
        except services.QuotaExceeded as error:
            raise QuotaRefused(str(error)) from None
        return Response(SandboxOutput(sandbox).data, status=status.HTTP_201_CREATED)


class SandboxDetailApi(APIView):
    @extend_schema(responses=SandboxOutput)
    def get(self, request, sandbox_id: str):
        sandbox = _visible_sandbox(request, sandbox_id)
        if selectors.can_control(user=request.user, sandbox=sandbox):
            services.sandbox_touch(sandbox=sandbox)
        return Response(SandboxOutput(sandbox).data)

    @extend_schema(request=None, responses={202: SandboxOutput})
    def delete(self, request, sandbox_id: str):
        sandbox = services.sandbox_stop(sandbox=_controlled_sandbox(request, sandbox_id))
        return Response(SandboxOutput(sandbox).data, status=status.HTTP_202_ACCEPTED)


class RunListCreateApi(PostThrottled, APIView):
    post_throttles = (RunCreateThrottle,)

    @extend_schema(responses=RunOutput(many=True))
    def get(self, request, sandbox_id: str):
        sandbox = _visible_sandbox(request, sandbox_id)
        runs = selectors.runs_of_user(
            user=sandbox.owner,
            lesson=sandbox.lesson,
            experiment=request.query_params.get("experiment"),
        )
        return Response(RunOutput(runs, many=True).data)

    @extend_schema(request=RunCreateInput, responses={202: RunOutput})
    def post(self, request, sandbox_id: str):
        sandbox = _controlled_sandbox(request, sandbox_id)
        data = RunCreateInput(data=request.data, context={"lesson": sandbox.lesson})
        data.is_valid(raise_exception=True)
        try:
            run = services.run_create(sandbox=sandbox, **data.validated_data)
        except services.InputInvalid as error:
            raise _invalid(error) from None
        except services.SandboxNotRunning as error:
            raise Conflict(str(error)) from None
        except services.RunQueueFull as error:
            raise QuotaRefused(str(error)) from None
        return Response(RunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailApi(APIView):
    @extend_schema(responses=RunOutput)
    def get(self, request, run_id: str):
        run = selectors.run_get_visible(user=request.user, run_id=run_id)
        if run is None:
            raise NotFound("No such run.")
        return Response(RunOutput(run).data)


class FaultApi(APIView):
    @extend_schema(request=FaultInput, responses={200: dict})
    def post(self, request, sandbox_id: str):
        sandbox = _controlled_sandbox(request, sandbox_id)
        data = FaultInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            states = services.fault_apply(sandbox=sandbox, **data.validated_data)
        except services.InputInvalid as error:
            raise _invalid(error) from None
        except services.SandboxNotRunning as error:
            raise Conflict(str(error)) from None
        return Response({"services": states})


class RunSpansApi(APIView):
    """The run's kept spans in the wire shape, for replay in the live view."""

    @extend_schema(responses={200: dict})
    def get(self, request, run_id: str):
        found = traces.run_spans_get_visible(user=request.user, run_id=run_id)
        if found is None:
            raise NotFound("No such run.")
        run, spans, truncated = found
        return Response({"run": run.id, "spans": spans, "truncated": truncated})


class RunTraceExportApi(APIView):
    """The run's trace as OTLP/JSON (an ExportTraceServiceRequest), for its owner only."""

    @extend_schema(responses={200: dict})
    def get(self, request, run_id: str):
        found = traces.run_trace_get_owned(user=request.user, run_id=run_id)
        if found is None:
            raise NotFound("No such run.")
        run, spans = found
        response = Response(traces.otlp_json(spans=spans, sandbox_id=run.sandbox_id))
        response["Content-Disposition"] = f'inline; filename="run-{run.id}-otlp.json"'
        return response


class WarmPoolListCreateApi(APIView):
    """An instructor's warm pools: sandboxes started ahead of a class for its learners."""

    @extend_schema(responses=WarmPoolOutput(many=True))
    def get(self, request):
        pools = selectors.warm_pools_taught(user=request.user)[:50]
        return Response(WarmPoolOutput(pools, many=True).data)

    @extend_schema(request=WarmPoolInput, responses={201: WarmPoolOutput})
    def post(self, request):
        from lab.users.selectors import is_instructor

        if not is_instructor(request.user):
            raise PermissionDenied("Only instructors warm sandboxes for a class.")
        data = WarmPoolInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        try:
            pool = services.warm_pool_set(
                instructor=request.user, cohort_id=values.pop("cohort"), **values
            )
        except services.InputInvalid as error:
            raise _invalid(error) from None
        pool = selectors.warm_pool_get_taught(user=request.user, pool_id=pool.id)
        return Response(WarmPoolOutput(pool).data, status=status.HTTP_201_CREATED)


class WarmPoolDetailApi(APIView):
    @extend_schema(responses=WarmPoolOutput)
    def get(self, request, pool_id: int):
        return Response(WarmPoolOutput(self._pool(request, pool_id)).data)

    @extend_schema(request=None, responses={200: WarmPoolOutput})
    def delete(self, request, pool_id: int):
        """End the pool now: its untaken sandboxes stop; taken ones stay their learners'."""
        services.warm_pool_end(pool=self._pool(request, pool_id))
        return Response(WarmPoolOutput(self._pool(request, pool_id)).data)

    @staticmethod
    def _pool(request, pool_id: int):
        pool = selectors.warm_pool_get_taught(user=request.user, pool_id=pool_id)
        if pool is None:
            raise NotFound("No such warm pool.")
        return pool
