from rest_framework import serializers

from sandbox_services.runtime.messages import without_process_ids

from .models import Run, Sandbox


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
    experiment = serializers.CharField(max_length=50)
    params = serializers.DictField(required=False, default=dict)


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
