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
    experiments=(
        ExperimentSpec("replay", f"{_EXPERIMENTS}:replay", timeout_s=240),
        ExperimentSpec("state-as-of", f"{_EXPERIMENTS}:state_as_of", timeout_s=90),
        ExperimentSpec("late-projection", f"{_EXPERIMENTS}:late_projection", timeout_s=240),
        ExperimentSpec("log-vs-queue", f"{_EXPERIMENTS}:log_vs_queue", timeout_s=90),
        ExperimentSpec(
            "optimistic-concurrency", f"{_EXPERIMENTS}:optimistic_concurrency", timeout_s=30
        ),
        # A log that lives long: snapshots, upcasting, retention.
        ExperimentSpec("snapshots", f"{_LOG_OVER_TIME}:snapshots", timeout_s=120),
        ExperimentSpec("upcasting", f"{_LOG_OVER_TIME}:upcasting", timeout_s=60),
        ExperimentSpec("retention", f"{_LOG_OVER_TIME}:retention", timeout_s=90),
    ),
    teardown="sandbox_services.event_sourcing.hooks:teardown",
    metrics="sandbox_services.event_sourcing.hooks:metrics",
    settings={"parameters": {k: [p.as_dict() for p in v] for k, v in knobs.PARAMETERS.items()}},
    # The log (a RabbitMQ stream) between the writer and the projection that reads it.
    lifelines=("learner", "accounts", "rabbitmq", "projector"),
)
