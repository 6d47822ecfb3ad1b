"""Every knob of the event sourcing lesson, in one place (short names; ctx.prefix is added)."""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

from sandbox_services.event_sourcing.projections import KINDS
from sandbox_services.broker.naming import QUEUE_EXPIRES_MS, queue_arguments, stream_arguments
from sandbox_services.runtime.params import Param

# --- topology ---------------------------------------------------------------------------
# The aggregate appends every event through this fanout exchange...
EXCHANGE = "events"
# ...to this stream: the system of record. Reading it does not remove anything.
STREAM = "log"
# Streams cannot expire (x-expires is refused); they are bounded by age and size and
# deleted by teardown or, for an abandoned sandbox, by the stream sweeper.
STREAM_MAX_AGE = "1D"
STREAM_MAX_BYTES = 200_000_000
# The classic queue of experiment 4, bound beside the stream while it runs.
COMPARE_QUEUE = "compare"
EXPIRES_MS = QUEUE_EXPIRES_MS

# --- the aggregate service --------------------------------------------------------------
# How long the service keeps retrying an append through a broker outage.
APPEND_RETRY_DEADLINE_S = 15.0
# Commands a single load request may generate (bulk history for the experiments).
MAX_LOAD_COMMANDS = 10_000

# --- the projector ----------------------------------------------------------------------
# Events applied per SQLite transaction (and per span) while catching up.
PROJECTION_BATCH = 500
# Prefetch of each view's stream consumer (streams require one).
PROJECTION_PREFETCH = 1000
MAX_VIEWS = 8

# --- experiment parameters --------------------------------------------------------------
# The one declaration of what the learner may set in each experiment (the LAB attaches
# them): the lesson page shows them, the API refuses anything outside them with a 400.
PARAMETERS: dict[str, tuple[Param, ...]] = {
    "replay": (
        Param("events", "int", 500, 10, 10_000, help="Events appended before the replay"),
        Param(
            "view",
            "choice",
            "balances",
            choices=("balances", "statistics"),
            help="The projection to drop and rebuild",
        ),
    ),
    "state-as-of": (
        Param("history", "int", 30, 2, 500, help="Commands in the account's history"),
        Param("points", "int", 8, 1, 50, help="Versions to rebuild the account at"),
    ),
    "late-projection": (
        Param("events", "int", 3000, 100, 10_000, help="Events appended before the view is added"),
        Param("kind", "choice", "activity", choices=tuple(KINDS), help="The kind of view to add"),
    ),
    "log-vs-queue": (Param("events", "int", 100, 1, 5000, help="Events sent to both"),),
    "optimistic-concurrency": (
        Param(
            "contenders",
            "int",
            2,
            2,
            10,
            help="Commands sent at once with the same expected version",
        ),
    ),
}

# --- a log that lives long (log_over_time.py) -------------------------------------------
# The stream of the retention experiment, bound beside the log while it runs, with
# segments small enough that retention really deletes some. RabbitMQ deletes whole
# segments (500 MB each by default) and never the one being written, so with the
# defaults above nothing a sandbox writes is ever dropped.
RETENTION_STREAM = "short-log"
RETENTION_SEGMENT_BYTES = 16_000
# The view the snapshot experiment snapshots and rebuilds.
SNAPSHOT_VIEW = "balances"

PARAMETERS |= {
    "snapshots": (
        Param(
            "events", "int", 1500, 100, 10_000, help="Events appended before the snapshot is taken"
        ),
        Param("tail", "int", 100, 0, 2000, help="Events appended after the snapshot"),
    ),
    "upcasting": (
        Param("v1_commands", "int", 10, 1, 200, help="Commands handled by the v1 writer"),
        Param("v2_commands", "int", 5, 0, 200, help="Commands handled by the v2 writer after it"),
    ),
    "retention": (
        Param(
            "events", "int", 1000, 100, 5000, help="Events appended while the short stream is bound"
        ),
        Param(
            "kept_kb",
            "int",
            48,
            32,
            4096,
            help="x-max-length-bytes of the short stream, in kB (1000 bytes)",
        ),
    ),
}


def declare_log(channel: BlockingChannel, prefix: str) -> None:
    """Declare the exchange and the stream bound to it."""
    # Auto-delete: when the sweeper deletes an orphan stream, the exchange follows it.
    channel.exchange_declare(prefix + EXCHANGE, "fanout", durable=True, auto_delete=True)
    channel.queue_declare(
        prefix + STREAM,
        durable=True,
        arguments=stream_arguments(STREAM_MAX_AGE, STREAM_MAX_BYTES),
    )
    channel.queue_bind(prefix + STREAM, prefix + EXCHANGE)


def declare_compare_queue(channel: BlockingChannel, prefix: str) -> None:
    """Declare the classic queue of the log-vs-queue experiment, bound beside the stream."""
    channel.queue_declare(
        prefix + COMPARE_QUEUE, durable=True, arguments=queue_arguments(EXPIRES_MS)
    )
    channel.queue_bind(prefix + COMPARE_QUEUE, prefix + EXCHANGE)
