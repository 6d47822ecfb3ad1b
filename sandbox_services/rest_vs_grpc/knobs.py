"""Every knob of the REST vs gRPC lesson, named and explained, in one place.

The services read the ``SETTINGS`` part through ``ctx.settings``; the
experiments read the bounds and defaults. The lesson's front matter declares
the same bounds for the platform's validation; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Bound:
    """A learner parameter's default and limits."""

    default: float
    low: float
    high: float

    def clamp(self, value: object) -> float:
        """Return value as a number within the bounds (the default if it is not a number)."""
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return self.default
        return min(max(number, self.low), self.high)


# --- one-call --------------------------------------------------------------
# Products in the one response each way.
ONE_CALL_ITEMS = Bound(default=10, low=1, high=CATALOG_SIZE)

# --- load ------------------------------------------------------------------
# Calls in flight at once per load generator (one asyncio task each).
LOAD_CONCURRENCY = Bound(default=16, low=1, high=64)
# Seconds of load per transport; REST runs first, then gRPC, never together.
LOAD_DURATION_S = Bound(default=3, low=1, high=10)
# Products per response: the payload size under load.
LOAD_ITEMS = Bound(default=10, low=1, high=CATALOG_SIZE)
# Share of load requests traced. Tracing every call costs about half of a
# Python service's throughput (FIELD-NOTES.md), so 1% is the default.
LOAD_SAMPLE_RATIO = Bound(default=0.01, low=0.0, high=1.0)
# Untimed calls per generator before measuring: connections open, caches warm.
LOAD_WARMUP_CALLS = 50
# Repetitions when timing in-process serialization for the "where the time
# goes" table; fewer for big payloads so the measurement stays under ~0.3 s.
SERIALIZATION_BUDGET_ITEMS = 200_000
# Past runs of the load experiment kept in the sandbox for comparison.
LOAD_RUNS_KEPT = 10

# --- streaming -------------------------------------------------------------
# Seconds to follow the ticker each way (both at once, on separate servers).
STREAM_DURATION_S = Bound(default=3, low=1, high=10)
# How often the REST client asks for the latest price, milliseconds.
STREAM_POLL_INTERVAL_MS = Bound(default=250, low=20, high=2000)

# --- multiplexing ----------------------------------------------------------
# Calls fired at once each way.
MULTIPLEX_CALLS = Bound(default=32, low=1, high=64)
# How long the server holds each call open, milliseconds: long enough that
# the calls must overlap to finish quickly.
MULTIPLEX_HOLD_MS = Bound(default=100, low=10, high=1000)
# HTTP/1.1 connections the REST client may open to one host. Browsers use 6.
MULTIPLEX_REST_CONNECTIONS = Bound(default=6, low=1, high=64)

# Every learner parameter by (experiment, parameter), as the lesson's front
# matter declares them; a test holds the two in step.
BOUNDS = {
    ("one-call", "items"): ONE_CALL_ITEMS,
    ("load", "concurrency"): LOAD_CONCURRENCY,
    ("load", "duration_s"): LOAD_DURATION_S,
    ("load", "items"): LOAD_ITEMS,
    ("load", "sample_ratio"): LOAD_SAMPLE_RATIO,
    ("streaming", "duration_s"): STREAM_DURATION_S,
    ("streaming", "poll_interval_ms"): STREAM_POLL_INTERVAL_MS,
    ("multiplexing", "calls"): MULTIPLEX_CALLS,
    ("multiplexing", "hold_ms"): MULTIPLEX_HOLD_MS,
    ("multiplexing", "rest_connections"): MULTIPLEX_REST_CONNECTIONS,
}
