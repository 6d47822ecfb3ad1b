"""The REST vs gRPC lesson's sandbox: a catalog served both ways and a caller that uses both."""

from sandbox_services.rest_vs_grpc.knobs import SETTINGS
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
    experiments=(
        ExperimentSpec(name="one-call", main=f"{_EXPERIMENTS}:one_call", timeout_s=30),
        # Two runs of up to 10 s each, warm-up, forks and serialization timing.
        ExperimentSpec(name="load", main=f"{_EXPERIMENTS}:load", timeout_s=60),
        ExperimentSpec(name="streaming", main=f"{_EXPERIMENTS}:streaming", timeout_s=30),
        ExperimentSpec(name="contract", main=f"{_EXPERIMENTS}:contract", timeout_s=30),
        ExperimentSpec(name="multiplexing", main=f"{_EXPERIMENTS}:multiplexing", timeout_s=30),
        # gRPC in production: deadlines, retries, both-way streams, schema change, debugging.
        ExperimentSpec(name="deadlines", main=f"{_RESILIENCE}:deadlines", timeout_s=30),
        ExperimentSpec(name="retries", main=f"{_RESILIENCE}:retries", timeout_s=30),
        ExperimentSpec(name="bidi-streaming", main=f"{_WIRE}:bidi_streaming", timeout_s=30),
        ExperimentSpec(name="schema-evolution", main=f"{_WIRE}:schema_evolution", timeout_s=30),
        ExperimentSpec(name="debuggability", main=f"{_DEBUGGABILITY}:debuggability", timeout_s=30),
    ),
    settings=SETTINGS,
    # Learner and caller on the left: every call in this lesson goes left to right.
    lifelines=("learner", "caller", "catalog-rest", "catalog-grpc"),
)
