"""The saga's domain types, its step table and the Protocol every participant transport implements.

A coordinator written against ``Participant`` does not know what carries a
command; in the lab it is gRPC (services/participant/client.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

SERVICES = ("orders", "payments", "inventory", "shipping")
# Steps a learner may make fail. Creating the order cannot fail for a scripted
# reason, and approving it is the retriable last step: once shipping is
# scheduled the saga is committed to finishing, so approval is retried, not failed.
FAILABLE_SERVICES = ("payments", "inventory", "shipping")
FAIL_KINDS = ("refusal", "error", "timeout")
MODES = ("choreography", "orchestration")

Mode = Literal["choreography", "orchestration"]
FailKind = Literal["refusal", "error", "timeout"]


@dataclass(frozen=True, slots=True)
class Step:
    """One forward step of the saga and the compensation that semantically undoes it."""

    service: str
    action: str
    compensation: str | None
    state: str
    compensation_state: str | None


# The order of this table IS the saga. Compensations run in reverse of it.
STEPS: tuple[Step, ...] = (
    Step("orders", "create", "reject", "CREATING_ORDER", "REJECTING_ORDER"),
    Step("payments", "charge", "refund", "CHARGING_PAYMENT", "REFUNDING_PAYMENT"),
    Step("inventory", "reserve", "release", "RESERVING_STOCK", "RELEASING_STOCK"),
    Step("shipping", "schedule", "cancel", "SCHEDULING_SHIPPING", "CANCELLING_SHIPPING"),
    Step("orders", "approve", None, "APPROVING_ORDER", None),
)
FORWARD_ACTIONS = {step.action for step in STEPS}
COMPENSATIONS = {step.compensation: step for step in STEPS if step.compensation}

# The coordinator's state machine, in the order the browser draws it.
STATES: tuple[str, ...] = (
    "STARTED",
    *(step.state for step in STEPS),
    "APPROVED",
    *(step.compensation_state for step in reversed(STEPS) if step.compensation_state),
    "REJECTED",
)
FINAL_STATES = ("APPROVED", "REJECTED")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The learner's scripted faults for one saga; it travels with the order."""

    fail_at: str | None = None
    fail_kind: FailKind = "refusal"
    # Deliver every event (choreography) or send every command (orchestration) twice.
    duplicate: bool = False
    # Choreography: this service's process exits right after committing its
    # forward step, before the relay has published the outbox row.
    crash_after_commit: str | None = None
    # Orchestration: the coordinator waits after this service's step so it can be killed
    # (crash experiment) or so a customer's cancel can arrive mid-saga (isolation experiment).
    pause_after: str | None = None
    # How long that wait lasts; None: the lesson's ``crash_pause_s``.
    pause_s: float | None = None
    # Isolation experiment: Orders writes the order's status blindly, ignoring that a
    # saga still holds it ("pending"): the semantic lock switched off.
    semantic_lock_off: bool = False
    # Payment experiment: Payments authorizes (holds the amount on the card) instead of
    # charging it, and its compensation releases the hold instead of refunding.
    authorize: bool = False

    def to_json(self) -> str:
        """Return the plan as compact JSON."""
        return json.dumps({k: v for k, v in asdict(self).items() if v not in (None, False)})

    @classmethod
    def from_json(cls, text: str) -> FaultPlan:
        """Parse a plan; an empty string is the empty plan."""
        return cls(**json.loads(text)) if text else cls()


@dataclass(frozen=True, slots=True)
class Order:
    saga_id: str
    order_id: str
    customer: str
    sku: str
    quantity: int
    amount_cents: int
    plan: FaultPlan = field(default_factory=FaultPlan)

    def to_dict(self) -> dict:
        """Return a JSON-ready dict (the plan as a nested dict)."""
        data = asdict(self)
        data["plan"] = json.loads(self.plan.to_json())
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Order:
        """Rebuild an order from ``to_dict`` output."""
        fields = dict(data)
        fields["plan"] = FaultPlan(**fields.get("plan", {}))
        return cls(**fields)


# A participant's answer. "refused" is a definite no: nothing was applied.
StepStatus = Literal["done", "refused", "duplicate", "noop"]


@dataclass(frozen=True, slots=True)
class StepResult:
    status: StepStatus
    detail: str = ""

    @property
    def succeeded(self) -> bool:
        """Tell whether the step now stands applied (first time or earlier)."""
        return self.status in ("done", "duplicate", "noop")


class StepError(Exception):
    """The participant failed without a definite answer: it may or may not have applied."""


class StepTimeout(StepError):
    """No answer within the deadline: the classic case of not knowing what happened."""


class Participant(Protocol):
    """What a saga participant offers the coordinator, whatever carries it."""

    async def execute(self, action: str, order: Order, *, attempt: int = 1) -> StepResult:
        """Run one forward step or compensation for this order's saga."""
        ...
