from rest_framework import serializers

from lab.curriculum.selectors import LessonNotFound, lesson_get
from sandbox_services.runtime.messages import without_process_ids
from sandbox_services.runtime.params import ParameterError
from sandbox_services.runtime.params import validate as validate_params

from .models import Run, Sandbox, WarmPool
from .services import MAX_WARM_MINUTES, MIN_WARM_MINUTES


class SandboxCreateInput(serializers.Serializer):
    lesson = serializers.SlugField(max_length=50)


class SandboxOutput(serializers.ModelSerializer):
    services = serializers.SerializerMethodField()

    def get_services(self, sandbox: Sandbox) -> dict:
        return without_process_ids(sandbox.services)

    class Meta:
        model = Sandbox
        fields = [
            "id",
            "lesson",
            "state",
            "reason",
            "services",
            "worker",
            "created_at",
            "started_at",
            "stopped_at",
            "expires_at",
        ]


class RunCreateInput(serializers.Serializer):
    """An experiment of the sandbox's lesson and its parameters, checked against the LAB.

    Needs ``context={"lesson": slug}``. ``validated_data["params"]`` holds every
    declared parameter, checked and with defaults filled in, by the one validator
    (``sandbox_services.runtime.params.validate``); errors name ``params.<name>``.
    """

    experiment = serializers.CharField(max_length=50)
    params = serializers.DictField(
        required=False,
        default=dict,
        error_messages={
            "not_a_dict": "must be an object of parameter names to values, not {input_type}"
        },
    )

    def validate(self, data):
        try:
            lesson = lesson_get(slug=self.context["lesson"])
        except LessonNotFound:
            raise serializers.ValidationError(
                {"experiment": ["this sandbox's lesson no longer exists"]}
            ) from None
        experiment = lesson.experiment(data["experiment"])
        if experiment is None:
            names = ", ".join(item.name for item in lesson.experiments)
            raise serializers.ValidationError(
                {"experiment": [f"no experiment {data['experiment']!r}; this lesson has: {names}"]}
            )
        try:
            params = validate_params(experiment.parameters, data["params"])
        except ParameterError as error:
            raise serializers.ValidationError({"params": error.errors}) from None
        return {"experiment": experiment.name, "params": params}


class RunOutput(serializers.ModelSerializer):
    sandbox = serializers.CharField(source="sandbox_id")

    class Meta:
        model = Run
        fields = [
            "id",
            "sandbox",
            "experiment",
            "params",
            "state",
            "result",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]


class FaultInput(serializers.Serializer):
    service = serializers.CharField(max_length=64)
    action = serializers.ChoiceField(choices=["stop", "start", "delay", "error", "clear"])
    delay_ms = serializers.FloatField(required=False, min_value=0, max_value=10_000)
    error_rate = serializers.FloatField(required=False, min_value=0, max_value=1)

    def validate(self, data):
        if data["action"] == "delay" and "delay_ms" not in data:
            raise serializers.ValidationError({"delay_ms": ["is required for action delay"]})
        if data["action"] == "error" and "error_rate" not in data:
            raise serializers.ValidationError({"error_rate": ["is required for action error"]})
        return data


class WarmPoolInput(serializers.Serializer):
    """Keep ``size`` sandboxes of ``lesson`` running for the learners of ``cohort``, ``minutes`` long."""

    cohort = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    lesson = serializers.SlugField(max_length=50)
    # The site's limit on the size, and the cohort, are checked by services.warm_pool_set.
    size = serializers.IntegerField(min_value=1, max_value=1000)
    minutes = serializers.IntegerField(
        min_value=MIN_WARM_MINUTES, max_value=MAX_WARM_MINUTES, default=60
    )


class WarmPoolOutput(serializers.ModelSerializer):
    """A pool and where its sandboxes are: warm (running, untaken), starting, taken, failed."""

    warm = serializers.IntegerField(read_only=True)
    starting = serializers.IntegerField(read_only=True)
    taken = serializers.IntegerField(read_only=True)
    failed = serializers.IntegerField(read_only=True)
    live = serializers.BooleanField(read_only=True)

    class Meta:
        model = WarmPool
        fields = [
            "id",
            "cohort",
            "lesson",
            "size",
            "created_at",
            "until",
            "live",
            "warm",
            "starting",
            "taken",
            "failed",
        ]
