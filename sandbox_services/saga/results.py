"""Shape the saga experiments' results: the keys they share, tables, markers."""

from __future__ import annotations

import time
from itertools import pairwise

from sandbox_services.saga.interface import STEPS

from . import scenario


def common_keys(
    views: list[dict], running: dict[str, list[str]], checks: dict[str, list[dict]]
) -> dict:
    """Return the keys every saga experiment shares."""
    notes = [scenario.still_running_note(mode, ids) for mode, ids in running.items() if ids]
    return {
        "saga": views[0] if views else None,
        "sagas": views,
        "invariants": checks,
        "running": running,
        "notes": notes,
        "charts": [],
        "ok": all(all_ok(c) for c in checks.values()) and not any(running.values()),
    }


def all_ok(checks: list[dict]) -> bool:
    """Tell whether every invariant of a list held."""
    return all(item["ok"] for item in checks)


def duration_ms(view: dict) -> float:
    """Return a saga's span on its timeline, first start to last end, in milliseconds."""
    items = view["timeline"]
    return (
        (max(i["end_ns"] for i in items) - min(i["start_ns"] for i in items)) / 1e6
        if items
        else 0.0
    )


def side_by_side(choreo: dict, orch: dict, triggered: dict[str, dict[str, str]]) -> dict:
    """Return one row per forward step: how long it took in each mode and what triggered it.

    ``triggered`` is ``records.triggers`` per mode: read from the stores, so a row
    says "no message recorded" where no store shows what started the step.
    """

    def took(view: dict, step: str) -> float | None:
        for item in view["timeline"]:
            if item["step"] == step and item["service"] != "coordinator":
                return round((item["end_ns"] - item["start_ns"]) / 1e6, 2)
        return None

    def by(mode: str, step) -> str:
        return triggered.get(mode, {}).get(f"{step.service} {step.action}", "no message recorded")

    return {
        "columns": [
            "step",
            "service",
            "choreography ms",
            "orchestration ms",
            "choreography: triggered by",
            "orchestration: triggered by",
        ],
        "rows": [
            [
                s.action,
                s.service,
                took(choreo, s.action),
                took(orch, s.action),
                by("choreography", s),
                by("orchestration", s),
            ]
            for s in STEPS
        ],
    }


def in_reverse_order(undone: list[str]) -> bool:
    """Tell whether compensations ("service action") ran in reverse order of the steps they undo."""
    position = {f"{s.service} {s.compensation}": i for i, s in enumerate(STEPS) if s.compensation}
    indexes = [position.get(item, -1) for item in undone]
    return all(a > b for a, b in pairwise(indexes))


def forward_steps_done(view: dict) -> int:
    """Count the forward steps the participants themselves recorded as done for this saga."""
    return sum(
        1
        for item in view["timeline"]
        if item["service"] != "coordinator"
        and item["kind"] == "forward"
        and item["status"] == "done"
    )


def stores_text(services: list[str]) -> str:
    """Name a list of services for a headline: "4 services (orders, payments, ...)"."""
    return f"{len(services)} service{'' if len(services) == 1 else 's'} ({', '.join(services)})"


def held_note(mode: str, held: dict[str, list[str]], to_read: list[str]) -> str:
    """Say which store holds which of the saga's steps, and which you must read to see them all."""
    every = sorted(set().union(*map(set, held.values()))) if held else []
    parts = "; ".join(f"{service}: {', '.join(steps)}" for service, steps in held.items())
    return (
        f"{mode}: {len(every)} steps recorded ({parts}). Fewest stores that hold them all: "
        f"{', '.join(to_read) or 'none'}."
    )


def marker(target: str, saga_id: str, killed_ns: int) -> dict:
    """Return a timeline entry for the process's downtime (kind failure, status killed)."""
    return {
        "service": target,
        "step": "process",
        "kind": "failure",
        "status": "killed",
        "detail": f"{target} down, then started again",
        "start_ns": killed_ns,
        "end_ns": time.time_ns(),
        "trace_id": None,
        "span_id": None,
        "saga_id": saga_id,
    }


def repeats_note(view: dict, target: str) -> str:
    """Say how many repeats the participants recorded after the crash, from the timeline."""
    repeats = [
        f"{i['service']} {i['step']}"
        for i in view["timeline"]
        if i["status"] == "duplicate" and i["service"] != "coordinator"
    ]
    cause = (
        "the coordinator sent again the step its log showed in progress"
        if target == "coordinator"
        else "the broker redelivered the message the crashed process never acked"
    )
    if not repeats:
        return f"No participant recorded a repeat this time ({cause} only if it had one)."
    return (
        f"After the restart the participants answered 'duplicate' {len(repeats)} time(s) "
        f"({', '.join(repeats)}), applying nothing: {cause}."
    )


def early_compensation_note(view: dict, ledger: list[dict], status: str) -> str:
    """Say what the stores show of the saga whose compensation came before its step."""
    tombstones = [
        f"{i['service']} {i['step']}"
        for i in view["timeline"]
        if i["kind"] == "compensation" and i["status"] == "noop" and i["service"] != "coordinator"
    ]
    refused = [
        f"{i['service']} {i['step']}"
        for i in view["timeline"]
        if i["kind"] == "failure" and i["status"] == "refused" and i["service"] != "coordinator"
    ]
    charged = sum(row["amount_cents"] for row in ledger if row["kind"] == "charge")
    return (
        f"{view['mode']}, the saga whose compensation came first: tombstone left by "
        f"{', '.join(tombstones) or 'nobody'}; late steps refused: {', '.join(refused) or 'none'}; "
        f"order {status}; charged "
        f"{charged / 100:.2f} in {len(ledger)} ledger row(s)."
    )


def failed_step_note(view: dict, service: str) -> str:
    """Say how the failed step ended in its own lane, and whether it was compensated itself."""
    lane = [i for i in view["timeline"] if i["service"] == service]
    failures = [f"{i['step']} {i['status']}" for i in lane if i["kind"] == "failure"]
    undone = [
        f"{i['step']} ({i['status']}: {i['detail'] or 'undone'})"
        for i in lane
        if i["kind"] == "compensation"
    ]
    return (
        f"{view['mode']}: {service} recorded {', '.join(failures) or 'no failure'}; its own step "
        + (
            f"was compensated too: {', '.join(undone)}. An error or a timeout is not a definite "
            "no, so the step may have applied."
            if undone
            else "was not compensated: "
            + (
                "a refusal applies nothing."
                if any(f.endswith("refused") for f in failures)
                else "the participant that gave up recorded the step as not applied."
            )
        )
    )


def order_outcome(view: dict) -> str:
    steps = [i["step"] for i in view["timeline"] if i["status"] == "done"]
    return "approved" if "approve" in steps else "rejected" if "reject" in steps else "unfinished"
