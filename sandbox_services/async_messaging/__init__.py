"""The "Async messaging" lesson: an order service and three consumers over RabbitMQ."""

from sandbox_services.runtime.spec import ExperimentSpec, LabSpec, ServiceSpec

from . import knobs

_EXPERIMENTS = "sandbox_services.async_messaging.experiments"

LAB = LabSpec(
    slug="async-messaging",
    services=(
        ServiceSpec(
            "orders",
            "sandbox_services.async_messaging.services.orders.server_http:main",
            "http",
            title="Order service",
            depends_on=knobs.CONSUMERS,
        ),
        *(
            ServiceSpec(
                name,
                "sandbox_services.async_messaging.services.consumers.service:main",
                "http",
                title=f"{name.capitalize()} consumer",
                max_replicas=knobs.MAX_REPLICAS,
            )
            for name in knobs.CONSUMERS
        ),
        # Outside the consumers' transactions, as a real mail provider is: it keeps its own count.
        ServiceSpec(
            knobs.MAIL_PROVIDER,
            "sandbox_services.async_messaging.services.mail_provider.server_http:main",
            "http",
            title="Mail provider (outside)",
        ),
    ),
    experiments=(
        ExperimentSpec("sync-vs-async", f"{_EXPERIMENTS}:sync_vs_async", timeout_s=90),
        ExperimentSpec("temporal-decoupling", f"{_EXPERIMENTS}:temporal_decoupling", timeout_s=180),
        ExperimentSpec("at-least-once", f"{_EXPERIMENTS}:at_least_once", timeout_s=120),
        ExperimentSpec("poison-messages", f"{_EXPERIMENTS}:poison_messages", timeout_s=60),
        ExperimentSpec("competing-consumers", f"{_EXPERIMENTS}:competing_consumers", timeout_s=180),
        ExperimentSpec(
            "external-side-effect", f"{_EXPERIMENTS}:external_side_effect", timeout_s=90
        ),
        ExperimentSpec("queue-length-limit", f"{_EXPERIMENTS}:queue_length_limit", timeout_s=60),
        ExperimentSpec("partitions", f"{_EXPERIMENTS}:partitions", timeout_s=90),
    ),
    teardown="sandbox_services.async_messaging.hooks:teardown",
    metrics="sandbox_services.async_messaging.hooks:metrics",
    settings={"parameters": {k: [p.as_dict() for p in v] for k, v in knobs.PARAMETERS.items()}},
    # The broker between the producer and its consumers: messages flow left to right.
    lifelines=("learner", "orders", "rabbitmq", "email", "mail-provider", "audit", "analytics"),
)
