"""Every knob of the API-gateway lesson, named and commented, in one place.

The services read ``SETTINGS`` through ``ctx.settings``; ``PARAMETERS`` is the
one declaration of what a learner may set per experiment (the LAB attaches it
to each experiment; the page, the API and the platform's validation read it).
"""

from __future__ import annotations

from sandbox_services.runtime.params import Param

# --- the issuer ----------------------------------------------------------------
# What the sandbox's token issuer writes in "iss", and the audience of the API
# behind the gateway. A token for another audience is a token for another API.
ISSUER = "https://issuer.lab"
AUDIENCE = "lab-api"
# Tokens live this long unless a caller asks otherwise (the lab's issuer lets an
# experiment ask for an already expired one, which a real issuer would not).
TOKEN_TTL_S = 300

# --- the back ends ----------------------------------------------------------------
# Simulated work per request, milliseconds: small, so what the experiments
# measure is the gateway, the link and the fan-out, not the services.
CATALOG_WORK_MS = 1.0
REVIEWS_WORK_MS = 2.0
ORDERS_WORK_MS = 1.0

# --- the backend-for-frontend ------------------------------------------------------
# How long the BFF waits for its three calls before answering with what it has.
BFF_DEADLINE_MS = 150

# --- the learner's client ------------------------------------------------------------
# The simulated wide-area link between the learner's client and the gateway:
# this many milliseconds per round trip (half each way), added by a relay in
# the experiment's process. 40 ms is a good mobile or cross-region link.
WAN_RTT_MS = 40

SETTINGS = {
    "issuer": ISSUER,
    "audience": AUDIENCE,
    "token_ttl_s": TOKEN_TTL_S,
    "catalog_work_ms": CATALOG_WORK_MS,
    "reviews_work_ms": REVIEWS_WORK_MS,
    "orders_work_ms": ORDERS_WORK_MS,
    "bff_deadline_ms": BFF_DEADLINE_MS,
    "start_timeout_s": 10.0,
}

# --- the policy the sandbox starts with -------------------------------------------------
# First match wins, so the canary's header route comes before the plain one.
DEFAULT_POLICY = f"""\
routes:
  - name: catalog
    match: {{pathPrefix: /catalog/}}
    backend: catalog
    auth: required
    rateLimit: per-key
    timeout: 2s
    responseHeaders:
      set: {{cache-control: no-store}}
  - name: orders
    match: {{pathPrefix: /orders/}}
    backend: bff
    auth: required
    scopes: [orders:read]
    rateLimit: per-key
  - name: home
    match: {{pathPrefix: /bff/}}
    backend: bff
    auth: required
    rateLimit: per-key
  - name: reviews
    match: {{pathPrefix: /reviews/}}
    backend: reviews
    auth: none
  - name: orders-grpc-canary
    match:
      pathPrefix: /labapi.gateway.v1.Orders/
      headers: {{x-canary: v2}}
    backend: orders-v2
    auth: required
  - name: orders-grpc
    match: {{pathPrefix: /labapi.gateway.v1.Orders/}}
    backend: orders
    auth: required
auth:
  issuer: {ISSUER}
  audience: {AUDIENCE}
  algorithms: [ES256]
rateLimits:
  per-key:
    key: header:x-api-key
    requests: 50
    period: 1s
timeouts:
  connect: 1s
  client: 30s
  server: 10s
"""

# --- experiments: time budgets ------------------------------------------------------------
TIMEOUTS = {  # in the lesson's order
    "routing": 30.0,
    "edge-auth": 30.0,
    "rate-limiting": 40.0,
    "aggregation": 40.0,
    "single-point": 60.0,
    "live-policy": 40.0,
}

WAN_RTT = Param(
    "wan_rtt_ms",
    "int",
    WAN_RTT_MS,
    0,
    300,
    help="Round-trip time of the client's simulated link, ms",
)

PARAMETERS: dict[str, tuple[Param, ...]] = {
    "routing": (
        Param(
            "calls",
            "int",
            2,
            1,
            10,
            help="Calls on each route (catalog, orders via BFF, gRPC v1, gRPC canary)",
        ),
        WAN_RTT,
    ),
    "edge-auth": (
        Param("calls", "int", 3, 1, 20, help="Requests sent with each kind of token"),
        WAN_RTT,
    ),
    "rate-limiting": (
        Param("limit", "int", 10, 1, 200, help="Requests a key may make per period"),
        Param(
            "period_ms",
            "int",
            1000,
            200,
            5000,
            help="The sliding period the stick table counts over, ms",
        ),
        Param("greedy_rate", "int", 30, 1, 300, help="Requests a second the greedy client sends"),
        Param("polite_rate", "int", 5, 1, 300, help="Requests a second the polite client sends"),
        Param("duration_s", "float", 4.0, 1.0, 8.0, help="Seconds both clients send"),
    ),
    "aggregation": (
        WAN_RTT,
        Param(
            "deadline_ms",
            "int",
            BFF_DEADLINE_MS,
            20,
            2000,
            help="The BFF's deadline for its three calls",
        ),
        Param(
            "slow_ms",
            "int",
            400,
            0,
            3000,
            help="Extra delay of the reviews service in the second part",
        ),
        Param(
            "repeats", "int", 5, 1, 20, help="Times each way is measured (the median is reported)"
        ),
    ),
    "single-point": (
        Param(
            "requests",
            "int",
            400,
            50,
            3000,
            help="Requests in the overhead part (each way, interleaved)",
        ),
        Param(
            "gateway_delay_ms",
            "int",
            100,
            0,
            2000,
            help="Delay added inside the gateway in the slow part",
        ),
        Param("stop_s", "float", 1.0, 0.2, 5.0, help="Seconds the gateway stays stopped"),
    ),
    "live-policy": (
        Param("rate", "int", 100, 10, 500, help="Requests a second while the routes change"),
        Param("changes", "int", 3, 1, 10, help="Policy changes applied during the traffic"),
    ),
}
