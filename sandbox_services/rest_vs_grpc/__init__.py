"""The REST vs gRPC lesson's sandbox: a catalog served both ways and a caller that uses both."""

from sandbox_services.rest_vs_grpc.knobs import PARAMETERS, SETTINGS
from sandbox_services.runtime.spec import ExperimentSpec, LabSpec, ServiceSpec

_EXPERIMENTS = "sandbox_services.rest_vs_grpc.experiments"
_RESILIENCE = "sandbox_services.rest_vs_grpc.resilience"
_WIRE = "sandbox_services.rest_vs_grpc.wire"
_DEBUGGABILITY = "sandbox_services.rest_vs_grpc.debuggability"

LAB = LabSpec(
    slug="rest-vs-grpc",
    services=(
        ServiceSpec(
            name="caller",
            main="sandbox_services.rest_vs_grpc.services.caller.server_rest:main",
            protocol="http",
            title="Caller (calls the catalog both ways)",
            depends_on=("catalog-rest", "catalog-grpc"),
        ),
        ServiceSpec(
            name="catalog-rest",
            main="sandbox_services.rest_vs_grpc.services.catalog.server_rest:main",
            protocol="http",
            title="Catalog over REST (JSON, HTTP/1.1)",
        ),
        ServiceSpec(
            name="catalog-grpc",
            main="sandbox_services.rest_vs_grpc.services.catalog.server_grpc:main",
            protocol="grpc",
            title="Catalog over gRPC (protobuf, HTTP/2)",
        ),
    ),
    experiments=tuple(
        ExperimentSpec(
            name=name,
            main=f"{_EXPERIMENTS}:{name.replace('-', '_')}",
            timeout_s=seconds,
            parameters=PARAMETERS[name],
        )
        for name, seconds in (
            ("one-call", 30),
            # Two runs of up to 10 s each, warm-up, forks and serialization timing.
            ("load", 60),
            ("streaming", 30),
            ("contract", 30),
            ("multiplexing", 30),
        )
    )
    # gRPC in production: deadlines, retries, both-way streams, schema change, debugging.
    + tuple(
        ExperimentSpec(
            name=name,
            main=f"{module}:{name.replace('-', '_')}",
            timeout_s=30,
            parameters=PARAMETERS[name],
        )
        for name, module in (
            ("deadlines", _RESILIENCE),
            ("retries", _RESILIENCE),
            ("bidi-streaming", _WIRE),
            ("schema-evolution", _WIRE),
            ("debuggability", _DEBUGGABILITY),
        )
    ),
    settings=SETTINGS,
    # Learner and caller on the left: every call in this lesson goes left to right.
    lifelines=("learner", "caller", "catalog-rest", "catalog-grpc"),
)
