"""Every knob of the Saga lesson, named and commented, in one place.

Services read these through ``ctx.settings`` (the LabSpec passes ``asdict(CONFIG)``)
so one edit here changes the live sandbox, the tests and the benchmark alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from sandbox_services.runtime.params import Param


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


# --- experiments: time budgets and parameters ------------------------------------------
# Seconds each experiment may run; it spends at most ``wait_fraction`` of it waiting.
TIMEOUTS = {
    "happy-path": 30.0,
    "failure": 60.0,
    "crash": 90.0,
    "duplicates": 120.0,
    "batch": 300.0,
    "isolation": 30.0,
    "authorize-capture": 30.0,
}

_STEP_CHOICES = ("payments", "inventory", "shipping")
_MODE = Param(
    "mode",
    "choice",
    "both",
    choices=("both", "choreography", "orchestration"),
    help="Run the saga by events, by a coordinator, or both side by side",
)

# The one declaration of what the learner may set in each experiment (the LAB attaches
# them): the lesson page shows them, the API refuses anything outside them with a 400.
PARAMETERS: dict[str, tuple[Param, ...]] = {
    "happy-path": (
        Param("quantity", "int", 2, 1, CONFIG.max_quantity, help="Units ordered"),
        Param("amount_cents", "int", 2599, 1, CONFIG.max_amount_cents, help="Order total in cents"),
    ),
    "failure": (
        _MODE,
        Param("fail_at", "choice", "inventory", choices=_STEP_CHOICES, help="The step that fails"),
        Param(
            "fail_kind",
            "choice",
            "refusal",
            choices=("refusal", "error", "timeout"),
            help="A definite no, an error after retries, or no answer in time",
        ),
    ),
    "crash": (
        Param(
            "target",
            "choice",
            "coordinator",
            choices=("coordinator", "payments", "inventory", "shipping"),
            help="The coordinator (orchestration) or a participant (choreography)",
        ),
        Param(
            "after_step",
            "choice",
            "payments",
            choices=_STEP_CHOICES,
            help="Coordinator only: killed right after this step",
        ),
        Param(
            "then_fail_at",
            "choice",
            "none",
            choices=("none", *_STEP_CHOICES),
            help="A later step that refuses, so the restarted saga must compensate",
        ),
    ),
    "duplicates": (
        _MODE,
        Param(
            "sagas",
            "int",
            10,
            1,
            CONFIG.max_duplicate_sagas,
            help="Sagas whose every message or command is delivered twice",
        ),
    ),
    "batch": (
        _MODE,
        Param("sagas", "int", 200, 1, CONFIG.max_batch_sagas, help="Sagas per mode"),
        Param(
            "failure_probability",
            "float",
            0.1,
            0.0,
            1.0,
            help="Chance that each of payments, inventory, shipping fails",
        ),
        Param(
            "fail_kind",
            "choice",
            "refusal",
            choices=("refusal", "error", "timeout", "mixed"),
            help="How steps fail",
        ),
        Param("seed", "int", 1, 0, 2**31 - 1, help="Random seed: same seed, same failures"),
    ),
    "isolation": (
        Param(
            "semantic_lock",
            "choice",
            "both",
            choices=("both", "off", "on"),
            help="Orders honours the pending state (on), ignores it (off), or both one after the other",
        ),
        Param(
            "hold_ms",
            "int",
            800,
            300,
            3000,
            help="How long the coordinator holds the saga before approval: the cancel arrives then",
        ),
    ),
    "authorize-capture": (
        Param(
            "payment",
            "choice",
            "both",
            choices=("both", "charge", "authorize"),
            help="Charge then refund, authorize then release, or both side by side",
        ),
        Param(
            "fail_at",
            "choice",
            "shipping",
            choices=("inventory", "shipping"),
            help="The later step that refuses, so the payment must be undone",
        ),
        Param("amount_cents", "int", 2599, 1, CONFIG.max_amount_cents, help="Order total in cents"),
    ),
}
