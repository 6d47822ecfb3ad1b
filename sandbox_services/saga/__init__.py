"""The "Saga" lesson: one order workflow by choreography and by orchestration, with undo."""

from sandbox_services.runtime.spec import ExperimentSpec, LabSpec, ServiceSpec

from .knobs import CONFIG, PARAMETERS, TIMEOUTS

_SERVERS = "sandbox_services.saga.services.participant.server_grpc"
_EXPERIMENTS = "sandbox_services.saga.experiments"
_PARTICIPANTS = ("orders", "payments", "inventory", "shipping")

LAB = LabSpec(
    slug="saga",
    services=(
        *(
            ServiceSpec(name, f"{_SERVERS}:{name}_main", "grpc", title=f"{name.capitalize()}")
            for name in _PARTICIPANTS
        ),
        ServiceSpec(
            "coordinator",
            "sandbox_services.saga.services.coordinator.server_grpc:coordinator_main",
            "grpc",
            title="Saga coordinator",
            depends_on=_PARTICIPANTS,
        ),
    ),
    experiments=tuple(
        ExperimentSpec(name, f"{_EXPERIMENTS}:{name.replace('-', '_')}", timeout_s=seconds)
        for name, seconds in TIMEOUTS.items()
    ),
    teardown="sandbox_services.saga.hooks:teardown",
    metrics="sandbox_services.saga.hooks:metrics",
    settings={
        **CONFIG.as_settings(),
        "parameters": {name: [p.as_dict() for p in params] for name, params in PARAMETERS.items()},
    },
)
