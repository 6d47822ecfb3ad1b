"""Every knob of the REST vs gRPC lesson, named and explained, in one place.

The services read the ``SETTINGS`` part through ``ctx.settings``. ``PARAMETERS``
is the one declaration of what the learner may set in each experiment: the LAB
attaches it, the lesson page and the API show it, and the platform validates
every run against it, so the experiments read their parameters as given.
"""

from __future__ import annotations

from sandbox_services.runtime.params import Param

# --- The catalog backend (both catalog processes read these) --------------

# Products the catalog holds. Also the largest page a learner can ask for, so
# the biggest payload is this many products (about 220 KB of JSON).
CATALOG_SIZE = 1000

# The one symbol the price ticker quotes.
TICKER_SYMBOL = "LAB"

# Seconds between two price updates: 0.05 s is 20 updates a second, fast
# enough that polling every 250 ms visibly misses most of them.
TICKER_INTERVAL_S = 0.05

# The ticker's first price, in millionths of a unit (100.000000).
TICKER_START_PRICE_MICROS = 100_000_000

# Simulated CPU work per ListProducts call, microseconds of busy loop (held
# GIL, like real computation). 0 keeps the comparison about transport and
# serialization; raise it to see both styles converge when work dominates.
BACKEND_WORK_US = 0

SETTINGS = {
    "catalog_size": CATALOG_SIZE,
    "ticker_symbol": TICKER_SYMBOL,
    "ticker_interval_s": TICKER_INTERVAL_S,
    "ticker_start_price_micros": TICKER_START_PRICE_MICROS,
    "backend_work_us": BACKEND_WORK_US,
}


# --- one-call --------------------------------------------------------------
ONE_CALL = (
    # Products in the one response each way.
    Param("items", "int", 10, 1, CATALOG_SIZE, help="Products in the response"),
)

# --- load ------------------------------------------------------------------
LOAD = (
    # Calls in flight at once per load generator (one asyncio task each).
    Param("concurrency", "int", 16, 1, 64, help="Calls in flight at once"),
    # Seconds of load per transport; REST runs first, then gRPC, never together.
    Param("duration_s", "int", 3, 1, 10, help="Seconds of load per transport"),
    # Products per response: the payload size under load.
    Param("items", "int", 10, 1, CATALOG_SIZE, help="Products per response (payload size)"),
    # Share of load requests traced. Tracing every call costs about half of a
    # Python service's throughput (FIELD-NOTES.md), so 1% is the default.
    Param("sample_ratio", "float", 0.01, 0.0, 1.0, help="Share of load requests traced"),
)
# Untimed calls per generator before measuring: connections open, caches warm.
LOAD_WARMUP_CALLS = 50
# Repetitions when timing in-process serialization for the "where the time
# goes" table; fewer for big payloads so the measurement stays under ~0.3 s.
SERIALIZATION_BUDGET_ITEMS = 200_000
# Past runs of the load experiment kept in the sandbox for comparison.
LOAD_RUNS_KEPT = 10

# --- streaming -------------------------------------------------------------
STREAMING = (
    # Seconds to follow the ticker each way (both at once, on separate servers).
    Param("duration_s", "int", 3, 1, 10, help="Seconds to follow the ticker"),
    # How often the REST client asks for the latest price, milliseconds.
    Param("poll_interval_ms", "int", 250, 20, 2000, help="How often REST asks"),
)

# --- multiplexing ----------------------------------------------------------
MULTIPLEXING = (
    # Calls fired at once each way.
    Param("calls", "int", 32, 1, 64, help="Calls fired at once"),
    # How long the server holds each call open, milliseconds: long enough that
    # the calls must overlap to finish quickly.
    Param("hold_ms", "int", 100, 10, 1000, help="How long the server holds each call"),
    # HTTP/1.1 connections the REST client may open to one host. Browsers use 6.
    Param(
        "rest_connections",
        "int",
        6,
        1,
        64,
        help="HTTP/1.1 connections REST may open (browsers use 6)",
    ),
)

# --- gRPC in production (resilience.py, wire.py, debuggability.py) --------
DEADLINES = (
    # Simulated work of the slow lookup: longer than the deadline, short enough
    # that the call made without a deadline finishes in a couple of seconds.
    Param("work_ms", "int", 1500, 100, 5000, help="How long the catalog works on the call"),
    # The caller's deadline for the first call; the second call has none.
    Param("deadline_ms", "int", 300, 10, 5000, help="The caller's deadline"),
)
RETRIES = (
    # Calls made in each batch (one batch without retries, one with).
    Param("calls", "int", 200, 10, 1000, help="Calls per batch"),
    # Share of attempts the catalog refuses with UNAVAILABLE.
    Param("failure_ratio", "float", 0.5, 0.0, 0.95, help="Share of attempts the catalog refuses"),
    # gRPC caps a retry policy's maxAttempts at 5 (more is quietly treated as 5).
    Param("max_attempts", "int", 4, 2, 5, help="Attempts per call, the first included"),
)
# The retry policy's backoff (service config): the first retry waits up to
# 10 ms, each later one up to twice as long, never more than 200 ms.
RETRY_INITIAL_BACKOFF_S = 0.01
RETRY_BACKOFF_MULTIPLIER = 2
RETRY_MAX_BACKOFF_S = 0.2
# Calls in flight at once in a retry batch.
RETRY_CONCURRENCY = 20
# Share of retry calls traced: a batch is hundreds of calls.
RETRY_SAMPLE_RATIO = 0.05
BIDI_STREAMING = (
    # Requests the client streams on the one call. With the longest pause the
    # run stays near 10 s, well inside the experiment's 30 s.
    Param("messages", "int", 10, 1, 50, help="Requests sent on the one call"),
    # Pause between two requests, so answers visibly arrive while sending goes on.
    Param("interval_ms", "int", 100, 0, 200, help="Pause between two requests"),
)

# Every experiment's parameters, by experiment name (the LAB attaches them).
PARAMETERS: dict[str, tuple[Param, ...]] = {
    "one-call": ONE_CALL,
    "load": LOAD,
    "streaming": STREAMING,
    "contract": (),  # the wrongly typed field is the experiment; nothing to set
    "multiplexing": MULTIPLEXING,
    "deadlines": DEADLINES,
    "retries": RETRIES,
    "bidi-streaming": BIDI_STREAMING,
    "schema-evolution": (),  # two fixed versions of one message; nothing to set
    "debuggability": (),  # one call seen three ways; nothing to set
}
