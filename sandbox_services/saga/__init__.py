"""The "Saga" lesson: one order workflow by choreography and by orchestration, with undo."""

from sandbox_services.runtime.spec import ExperimentSpec, LabSpec, ServiceSpec

from .knobs import CONFIG, PARAMETERS, TIMEOUTS

_SERVICES = "sandbox_services.saga.services"
_EXPERIMENTS = "sandbox_services.saga.experiments"
# Experiments with a module of their own; the others live in experiments.py.
_MODULES = {
    "isolation": "sandbox_services.saga.isolation",
    "authorize-capture": "sandbox_services.saga.payment",
}
_PARTICIPANTS = ("orders", "payments", "inventory", "shipping")

LAB = LabSpec(
    slug="saga",
    services=(
        ServiceSpec("orders", f"{_SERVICES}.orders.server_grpc:main", "grpc", title="Orders"),
        ServiceSpec("payments", f"{_SERVICES}.payments.server_grpc:main", "grpc", title="Payments"),
        ServiceSpec(
            "inventory", f"{_SERVICES}.inventory.server_grpc:main", "grpc", title="Inventory"
        ),
        ServiceSpec("shipping", f"{_SERVICES}.shipping.server_grpc:main", "grpc", title="Shipping"),
        ServiceSpec(
            "coordinator",
            f"{_SERVICES}.coordinator.server_grpc:main",
            "grpc",
            title="Saga coordinator",
            depends_on=_PARTICIPANTS,
        ),
    ),
    experiments=tuple(
        ExperimentSpec(
            name,
            f"{_MODULES.get(name, _EXPERIMENTS)}:{name.replace('-', '_')}",
            timeout_s=seconds,
            parameters=PARAMETERS[name],
        )
        for name, seconds in TIMEOUTS.items()
    ),
    teardown="sandbox_services.saga.hooks:teardown",
    metrics="sandbox_services.saga.hooks:metrics",
    settings=CONFIG.as_settings(),
    # Who starts a saga on the left, the broker in the middle, the participants on the right.
    lifelines=("learner", "orders", "coordinator", "rabbitmq", "payments", "inventory", "shipping"),
)
