"""Shape the saga experiments' results: the keys they share, tables, markers."""

from __future__ import annotations

import time

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


def side_by_side(choreo: dict, orch: dict) -> dict:
    """Return one row per forward step: who did it and how long it took in each mode."""

    def took(view: dict, step: str) -> float | None:
        for item in view["timeline"]:
            if item["step"] == step and item["service"] != "coordinator":
                return round((item["end_ns"] - item["start_ns"]) / 1e6, 2)
        return None

    return {
        "columns": [
            "step",
            "service",
            "choreography ms",
            "orchestration ms",
            "who decided the next step",
        ],
        "rows": [
            [
                s.action,
                s.service,
                took(choreo, s.action),
                took(orch, s.action),
                "the event's subscriber / the coordinator",
            ]
            for s in STEPS
        ],
    }


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


def order_outcome(view: dict) -> str:
    steps = [i["step"] for i in view["timeline"] if i["status"] == "done"]
    return "approved" if "approve" in steps else "rejected" if "reject" in steps else "unfinished"
