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
    experiments=tuple(
        ExperimentSpec(
            name,
            f"{_EXPERIMENTS}:{name.replace('-', '_')}",
            timeout_s=seconds,
            parameters=knobs.PARAMETERS[name],
        )
        for name, seconds in (
            ("sync-vs-async", 90),
            ("temporal-decoupling", 180),
            ("at-least-once", 120),
            ("poison-messages", 60),
            ("competing-consumers", 180),
            ("external-side-effect", 90),
            ("queue-length-limit", 60),
            ("partitions", 90),
            ("delivery-limit", 60),
        )
    ),
    teardown="sandbox_services.async_messaging.hooks:teardown",
    metrics="sandbox_services.async_messaging.hooks:metrics",
    # The broker between the producer and its consumers: messages flow left to right.
    lifelines=("learner", "orders", "rabbitmq", "email", "mail-provider", "audit", "analytics"),
)
