"""Every knob of the Saga lesson, named and commented, in one place.

Services read these through ``ctx.settings`` (the LabSpec passes ``asdict(CONFIG)``)
so one edit here changes the live sandbox, the tests and the benchmark alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SagaConfig:
    # Simulated work of one forward step or compensation (a bank call, a
    # warehouse query): long enough that the timeline shows bars, short enough
    # that a batch of hundreds runs in seconds.
    step_work_s: float = 0.002
    # Choreography: how long a participant waits on its own slow dependency
    # before giving up and publishing a failure event. Nobody else is watching
    # the saga, so each participant must own its timeouts.
    participant_budget_s: float = 0.4
    # Orchestration: the coordinator's gRPC deadline for one command. A command
    # that times out may or may not have applied, so the coordinator compensates
    # that step too (its compensation is a no-op if it never applied).
    coordinator_step_deadline_s: float = 0.4
    # Attempts of a forward step that fails with an error (not a refusal) before
    # the saga gives up on it and compensates. A refusal is never retried.
    step_attempts: int = 2
    # Pause between attempts; compensations and the final approval are retried
    # forever with this pause doubling up to ``retry_backoff_max_s``.
    retry_backoff_s: float = 0.02
    retry_backoff_max_s: float = 1.0
    # How long the coordinator holds a saga after the step named in the plan's
    # ``pause_after``, so the crash experiment can kill it between two steps.
    crash_pause_s: float = 4.0
    # Sagas the coordinator drives at once; more wait their turn.
    coordinator_max_in_flight: int = 64
    # Relay: how often it looks for unpublished outbox rows when nothing woke it.
    relay_poll_s: float = 0.05
    # Relay: outbox rows published per batch (one confirm round-trip each row).
    relay_batch: int = 200
    # Unacknowledged deliveries a choreography consumer holds at once.
    consumer_prefetch: int = 32
    # Unused queues of an abandoned sandbox delete themselves after this long.
    queue_expires_ms: int = 10 * 60 * 1000
    # Stock every SKU starts with, and the SKUs on sale.
    initial_stock: int = 1_000_000
    skus: tuple[str, ...] = ("BOOK-1", "LAMP-2", "MUG-3")
    # Upper bounds of the experiments' parameters (validated with a message naming them).
    max_batch_sagas: int = 2000
    max_duplicate_sagas: int = 100
    max_quantity: int = 50
    max_amount_cents: int = 1_000_000
    # Share of a run's time budget it may spend waiting for sagas to finish
    # before it reports the ones still running (never as a success).
    wait_fraction: float = 0.85

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> SagaConfig:
        """Build the config from a sandbox's settings, ignoring keys it does not know."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in (settings or {}).items() if k in known}
        if "skus" in values:
            values["skus"] = tuple(values["skus"])
        return cls(**values)

    def as_settings(self) -> dict[str, Any]:
        """Return the config as the JSON-ready dict a LabSpec carries."""
        data = asdict(self)
        data["skus"] = list(self.skus)
        return data


CONFIG = SagaConfig()
