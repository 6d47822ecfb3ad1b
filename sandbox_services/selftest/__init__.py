"""A tiny lab the runtime's own tests and benchmark drive: one service per protocol.

Not a lesson. ``echo`` answers HTTP, ``greeter`` answers gRPC (no protos: a
generic handler on raw bytes), ``listener`` consumes one RabbitMQ queue.
"""

from sandbox_services.runtime.params import Param
from sandbox_services.runtime.spec import ExperimentSpec, LabSpec, ServiceSpec

# What the runtime's tests and benchmark set; the runtime checks a run's values
# against these, as it does a lesson's, and fills in the defaults.
_CALLS = Param("calls", "int", 1, 1, 10_000)
_SECONDS = Param("seconds", "float", 30.0, 0.0, 3600.0)

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
            name="echo",
            main="sandbox_services.selftest.experiments:echo",
            timeout_s=20,
            parameters=(_CALLS, Param("interval_ms", "float", 0.0, 0.0, 10_000.0)),
        ),
        ExperimentSpec(
            name="greet", main="sandbox_services.selftest.experiments:greet", timeout_s=20
        ),
        ExperimentSpec(
            name="publish",
            main="sandbox_services.selftest.experiments:publish",
            timeout_s=20,
            parameters=(Param("count", "int", 1, 0, 10_000),),
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
        ExperimentSpec(
            name="sampled",
            main="sandbox_services.selftest.experiments:sampled",
            parameters=(Param("unsampled", "int", 3, 0, 1000),),
        ),
        ExperimentSpec(
            name="hold", main="sandbox_services.selftest.experiments:sleep", parameters=(_SECONDS,)
        ),
        ExperimentSpec(
            name="sleep",
            main="sandbox_services.selftest.experiments:sleep",
            timeout_s=1.0,
            parameters=(_SECONDS,),
        ),
    ),
    teardown="sandbox_services.selftest.broker:teardown",
    metrics="sandbox_services.selftest.broker:metrics",
)
