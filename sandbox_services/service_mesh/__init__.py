"""The service-mesh lesson's sandbox: apps that know nothing of the mesh, and the mesh beside them.

``frontend`` calls ``backend`` (three replicas) for a price. Beside every
instance, and beside the experiments' load generator (the ``client``
workload), the control plane runs a HAProxy sidecar: mTLS, balancing,
retries, timeouts, outlier ejection, fault injection and a span per hop, all
configured from Istio-shaped policy (``policy.py``), none of it in the apps.
"""

from sandbox_services.runtime.spec import ExperimentSpec, LabSpec, ServiceSpec

from .knobs import PARAMETERS, SETTINGS, TIMEOUTS
from .topology import POOL, pool_size

_SERVICES = "sandbox_services.service_mesh.services"
_EXPERIMENTS = "sandbox_services.service_mesh.experiments"

LAB = LabSpec(
    slug="service-mesh",
    services=(
        ServiceSpec(
            name="control-plane",
            main=f"{_SERVICES}.control_plane.server_http:main",
            protocol="http",
            title="Mesh control plane (CA, policy, the sidecars' supervisor)",
        ),
        ServiceSpec(
            name="frontend",
            main=f"{_SERVICES}.frontend.server_http:main",
            protocol="http",
            title="Frontend (checkout; calls the backend)",
            depends_on=("backend",),
        ),
        ServiceSpec(
            name="backend",
            main=f"{_SERVICES}.backend.server_http:main",
            protocol="http",
            title="Backend (prices; up to 3 replicas)",
            max_replicas=3,
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
    extra_ports={POOL: pool_size()},
    route="sandbox_services.service_mesh.topology:route",
    port_names="sandbox_services.service_mesh.topology:port_names",
    lifelines=(
        "learner",
        "client-sidecar",
        "frontend-sidecar",
        "frontend",
        "backend-sidecar",
        "backend",
        "control-plane",
    ),
)
