"""The "Event sourcing and logs" lesson: an account aggregate, its log, and projections."""

from sandbox_services.runtime.spec import ExperimentSpec, LabSpec, ServiceSpec

from . import knobs

_EXPERIMENTS = "sandbox_services.event_sourcing.experiments"
_LOG_OVER_TIME = "sandbox_services.event_sourcing.log_over_time"

LAB = LabSpec(
    slug="event-sourcing",
    services=(
        ServiceSpec(
            "accounts",
            "sandbox_services.event_sourcing.services.accounts.server_http:main",
            "http",
            title="Account service (aggregate)",
        ),
        ServiceSpec(
            "projector",
            "sandbox_services.event_sourcing.services.projector.server_http:main",
            "http",
            title="Projector (views)",
            depends_on=("accounts",),
        ),
    ),
    experiments=tuple(
        ExperimentSpec(
            name,
            f"{_EXPERIMENTS}:{name.replace('-', '_')}",
            timeout_s=seconds,
            parameters=knobs.PARAMETERS[name],
        )
        for name, seconds in (
            ("replay", 240),
            ("state-as-of", 90),
            ("late-projection", 240),
            ("log-vs-queue", 90),
            ("optimistic-concurrency", 30),
        )
    )
    # A log that lives long: snapshots, upcasting, retention.
    + tuple(
        ExperimentSpec(
            name,
            f"{_LOG_OVER_TIME}:{name}",
            timeout_s=seconds,
            parameters=knobs.PARAMETERS[name],
        )
        for name, seconds in (("snapshots", 120), ("upcasting", 60), ("retention", 90))
    ),
    teardown="sandbox_services.event_sourcing.hooks:teardown",
    metrics="sandbox_services.event_sourcing.hooks:metrics",
    # The log (a RabbitMQ stream) between the writer and the projection that reads it.
    lifelines=("learner", "accounts", "rabbitmq", "projector"),
)
