"""Choreography as data: which event each service reacts to, and what it says back.

There is no coordinator in this mode. Read the two tables together and you
have the whole flow; in the running system that flow exists only as these
subscriptions spread over four services, which is the lesson's point.
"""

from __future__ import annotations

# event -> (service that reacts, action it runs)
REACTIONS: dict[str, tuple[str, str]] = {
    "OrderCreated": ("payments", "charge"),
    "PaymentCharged": ("inventory", "reserve"),
    "StockReserved": ("shipping", "schedule"),
    "ShippingScheduled": ("orders", "approve"),
    # Failure events start the compensations; each compensation's event
    # triggers the one before it, so they run in reverse order of the steps.
    "ShippingFailed": ("inventory", "release"),
    "StockFailed": ("payments", "refund"),
    "StockReleased": ("payments", "refund"),
    "PaymentFailed": ("orders", "reject"),
    "PaymentRefunded": ("orders", "reject"),
    # Not a step of the saga: the customer asks to cancel an order, from outside any
    # saga, while one may still be working on it (the isolation experiment).
    "CancelRequested": ("orders", "cancel"),
}

# (service, action, outcome) -> event the service publishes (through its outbox).
# outcome is "ok" (done, or a compensation with nothing to undo) or "failed".
EMITS: dict[tuple[str, str, str], str] = {
    ("orders", "create", "ok"): "OrderCreated",
    ("payments", "charge", "ok"): "PaymentCharged",
    ("payments", "charge", "failed"): "PaymentFailed",
    ("inventory", "reserve", "ok"): "StockReserved",
    ("inventory", "reserve", "failed"): "StockFailed",
    ("shipping", "schedule", "ok"): "ShippingScheduled",
    ("shipping", "schedule", "failed"): "ShippingFailed",
    ("orders", "approve", "ok"): "OrderApproved",
    ("shipping", "cancel", "ok"): "ShippingCancelled",
    ("inventory", "release", "ok"): "StockReleased",
    ("payments", "refund", "ok"): "PaymentRefunded",
    ("orders", "reject", "ok"): "OrderRejected",
}


def subscriptions(service: str) -> list[str]:
    """Return the events a service's queue is bound to."""
    return [event for event, (owner, _) in REACTIONS.items() if owner == service]
