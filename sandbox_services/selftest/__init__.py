"""A tiny lab the runtime's own tests and benchmark drive: one service per protocol.

Not a lesson. ``echo`` answers HTTP, ``greeter`` answers gRPC (no protos: a
generic handler on raw bytes), ``listener`` consumes one RabbitMQ queue.
"""

from sandbox_services.runtime.spec import ExperimentSpec, LabSpec, ServiceSpec

LAB = LabSpec(
    slug="selftest",
    services=(
        ServiceSpec(
            name="echo",
            main="sandbox_services.selftest.services:echo",
            protocol="http",
            title="HTTP echo",
            max_replicas=3,
        ),
        ServiceSpec(
            name="greeter",
            main="sandbox_services.selftest.services:greeter",
            protocol="grpc",
            title="gRPC greeter",
        ),
        ServiceSpec(
            name="listener",
            main="sandbox_services.selftest.services:listener",
            protocol="amqp",
            title="AMQP listener",
        ),
    ),
    experiments=(
        ExperimentSpec(
            name="echo", main="sandbox_services.selftest.experiments:echo", timeout_s=20
        ),
        ExperimentSpec(
            name="greet", main="sandbox_services.selftest.experiments:greet", timeout_s=20
        ),
        ExperimentSpec(
            name="publish", main="sandbox_services.selftest.experiments:publish", timeout_s=20
        ),
        ExperimentSpec(
            name="control", main="sandbox_services.selftest.experiments:control", timeout_s=30
        ),
        ExperimentSpec(
            name="fork", main="sandbox_services.selftest.experiments:fork", timeout_s=20
        ),
        ExperimentSpec(
            name="greet_then_fork",
            main="sandbox_services.selftest.experiments:greet_then_fork",
            timeout_s=20,
        ),
        ExperimentSpec(name="fail", main="sandbox_services.selftest.experiments:fail"),
        ExperimentSpec(name="sampled", main="sandbox_services.selftest.experiments:sampled"),
        ExperimentSpec(name="hold", main="sandbox_services.selftest.experiments:sleep"),
        ExperimentSpec(
            name="sleep", main="sandbox_services.selftest.experiments:sleep", timeout_s=1.0
        ),
    ),
    teardown="sandbox_services.selftest.broker:teardown",
    metrics="sandbox_services.selftest.broker:metrics",
)
