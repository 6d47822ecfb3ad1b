"""The API-gateway lesson's sandbox: one front door (HAProxy) before REST, gRPC and a BFF.

The ``gateway`` service runs the edge HAProxy on its own port (the ``edge``
pool): routing by path, host and header, JWT verification with the
``issuer``'s published keys, rate limits in stick tables, header rules and
timeouts, all rendered from the learner's YAML (``policy.py``, ``render.py``)
with the proxy plumbing the mesh lesson uses (``sandbox_services.proxy``).
Behind it: ``catalog`` (REST), ``orders`` and its canary ``orders-v2``
(gRPC), ``reviews`` (REST) and the ``bff``, which fans out to three of them.
"""

from sandbox_services.runtime.spec import ExperimentSpec, LabSpec, ServiceSpec

from .gateway import EDGE_POOL
from .knobs import PARAMETERS, SETTINGS, TIMEOUTS

_SERVICES = "sandbox_services.api_gateway.services"
_EXPERIMENTS = "sandbox_services.api_gateway.experiments"

LAB = LabSpec(
    slug="api-gateway",
    services=(
        ServiceSpec(
            name="issuer",
            main=f"{_SERVICES}.issuer.server_http:main",
            protocol="http",
            title="Token issuer (signs ES256 JWTs, publishes its keys)",
        ),
        ServiceSpec(
            name="gateway",
            main=f"{_SERVICES}.gateway.server_http:main",
            protocol="http",
            title="API gateway (HAProxy at the edge; this process renders and reloads it)",
            depends_on=("issuer",),
        ),
        ServiceSpec(
            name="bff",
            main=f"{_SERVICES}.bff.server_http:main",
            protocol="http",
            title="Backend-for-frontend (fan-out with a deadline; REST in front of gRPC)",
            depends_on=("catalog", "orders", "reviews"),
        ),
        ServiceSpec(
            name="catalog",
            main=f"{_SERVICES}.catalog.server_http:main",
            protocol="http",
            title="Catalog (REST)",
        ),
        ServiceSpec(
            name="orders",
            main=f"{_SERVICES}.orders.server_grpc:main",
            protocol="grpc",
            title="Orders v1 (gRPC)",
        ),
        ServiceSpec(
            name="orders-v2",
            main=f"{_SERVICES}.orders.server_grpc:main",
            protocol="grpc",
            title="Orders v2, the canary (gRPC)",
        ),
        ServiceSpec(
            name="reviews",
            main=f"{_SERVICES}.reviews.server_http:main",
            protocol="http",
            title="Reviews (REST)",
        ),
    ),
    experiments=tuple(
        ExperimentSpec(
            name,
            f"{_EXPERIMENTS}:{name.replace('-', '_')}",
            timeout_s=seconds,
            parameters=PARAMETERS[name],
        )
        for name, seconds in TIMEOUTS.items()
    ),
    settings=SETTINGS,
    preflight="sandbox_services.proxy.binary:require_haproxy",
    extra_ports={EDGE_POOL: 1},
    lifelines=("learner", "gateway", "bff", "catalog", "orders", "orders-v2", "reviews", "issuer"),
)
