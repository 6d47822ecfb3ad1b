"""Projections: read models built by folding the log, one kind per view.

Each kind is ``(initial state, apply(state, event) -> state)``, pure and
deterministic, which is why a replay from offset 0 rebuilds the same view.
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox_services.event_sourcing.domain import upcast

Projection = tuple[Callable[[], dict], Callable[[dict, dict], dict]]


def _balances(state: dict, event: dict) -> dict:
    account = event["account_id"]
    if event["type"] == "AccountOpened":
        state[account] = 0
    elif event["type"] == "Deposited":
        state[account] = state.get(account, 0) + event["amount"]
    elif event["type"] == "Withdrawn":
        state[account] = state.get(account, 0) - event["amount"]
    return state


def _statistics(state: dict, event: dict) -> dict:
    state["events"] = state.get("events", 0) + 1
    by_type = state.setdefault("by_type", {})
    by_type[event["type"]] = by_type.get(event["type"], 0) + 1
    if event["type"] == "Deposited":
        state["deposited"] = state.get("deposited", 0) + event["amount"]
    elif event["type"] == "Withdrawn":
        state["withdrawn"] = state.get("withdrawn", 0) + event["amount"]
    return state


def _activity(state: dict, event: dict) -> dict:
    state[event["account_id"]] = state.get(event["account_id"], 0) + 1
    return state


KINDS: dict[str, Projection] = {
    "balances": (dict, _balances),
    "statistics": (dict, _statistics),
    "activity": (dict, _activity),
}
# The views the projector starts with; others are added by the learner.
DEFAULT_VIEWS = {"balances": "balances", "statistics": "statistics"}


def is_new(versions: dict[str, int], event: dict) -> bool:
    """Tell whether an event is not yet applied, and remember it; a duplicate has an old version."""
    account, version = event["account_id"], event["version"]
    if version <= versions.get(account, 0):
        return False
    versions[account] = version
    return True


def project(kind: str, events: list[dict], *, upcasting: bool = True) -> dict:
    """Return a view of ``kind`` built from scratch from ``events`` (the reference for tests).

    Each event goes through the upcaster first, as in the projector; ``upcasting=False``
    folds the events as stored, the way v2 code without an upcaster would.
    """
    initial, apply = KINDS[kind]
    state, versions = initial(), {}
    for event in events:
        if is_new(versions, event):
            state = apply(state, upcast(event) if upcasting else event)
    return state
