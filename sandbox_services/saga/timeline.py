"""Build the saga view the browser draws: lanes of steps, the state machine, the invariants.

The shape (also documented in the lesson's README section of the report)::

    {
      "mode": "choreography" | "orchestration",   # an experiment comparing variants of one
                                            # mode names the variant ("orchestration, ...")
      "saga_id": str,                       # the saga this timeline shows
      "timeline": [                         # sorted by start_ns
        {"service": "orders"|"payments"|"inventory"|"shipping"|"coordinator",
         "step": "create"|"charge"|...|"reject",
         "kind": "forward"|"compensation"|"failure",
         "status": "done"|"duplicate"|"noop"|"refused"|"error"|"timeout"|"gave-up"|"deferred",
         "detail": str,
         "start_ns": int, "end_ns": int,    # Unix epoch nanoseconds, as spans
         "trace_id": str|None, "span_id": str|None,   # the span that did it; for a
                                            # coordinator entry, the span of its command
         "saga_id": str}
      ],
      "lanes": [service, ...],              # lane order, top to bottom
      "state_machine": [state, ...],        # every coordinator state, in drawing order
      "state_edges": [[from, to], ...],     # the state machine's possible transitions
      "states": [state, ...],               # states this saga went through, in order
      "current_state": str|None,            # the lit one (None in choreography)
      "invariants": [{"name": str, "ok": bool, "detail": str}]
    }
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from sandbox_services.saga.interface import SERVICES, STATES, STEPS

from . import invariants
from .stores import read_only, rows_for

LANES = ("coordinator", *SERVICES)
# Transitions say where the coordinator is; its command rows are the timeline entries.
COMMAND_KINDS = ("forward", "compensation", "failure")


def saga_view(workdir: Path, saga_id: str, *, mode: str, checked: list[str] | None = None) -> dict:
    """Return the saga view of one saga; invariants cover ``checked`` (default: this saga)."""
    workdir = Path(workdir)
    items = []
    for service in SERVICES:
        with read_only(workdir, service) as conn:
            for row in rows_for(conn, "SELECT * FROM step_log", [saga_id]):
                items.append(_item(row, service))
    states: list[str] = []
    if mode == "orchestration":
        with read_only(workdir, "coordinator") as conn:
            for row in rows_for(conn, "SELECT * FROM saga_log", [saga_id]):
                if row["kind"] == "transition":
                    if not states or states[-1] != row["state"]:
                        states.append(row["state"])
                elif row["kind"] in COMMAND_KINDS:
                    items.append(_item(row, "coordinator"))
    items.sort(key=lambda item: (item["start_ns"], item["end_ns"]))
    return {
        "mode": mode,
        "saga_id": saga_id,
        "timeline": items,
        "lanes": list(LANES if mode == "orchestration" else SERVICES),
        "state_machine": list(STATES),
        "state_edges": state_edges(),
        "states": states,
        "current_state": states[-1] if states else None,
        "invariants": invariants.check(workdir, checked or [saga_id], mode=mode),
    }


def state_edges() -> list[list[str]]:
    """Return every transition the coordinator can make, for drawing its state machine."""
    forward = ["STARTED", *(step.state for step in STEPS), "APPROVED"]
    edges = [[a, b] for a, b in pairwise(forward)]
    undo = [step.compensation_state for step in reversed(STEPS) if step.compensation_state]
    undo.append("REJECTED")
    edges += [[a, b] for a, b in pairwise(undo)]
    for index, step in enumerate(STEPS):
        # Refused: undo the steps before; error or timeout: undo this one too.
        for first in (index - 1, index) if step.compensation else (index - 1,):
            target = STEPS[first].compensation_state if first >= 0 else "REJECTED"
            if [step.state, target] not in edges:
                edges.append([step.state, target])
    return edges


def _item(row, service: str) -> dict:
    return {
        "service": service,
        "step": row["step"],
        "kind": row["kind"],
        "status": row["status"],
        "detail": row["detail"],
        "start_ns": row["start_ns"],
        "end_ns": row["end_ns"],
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
        "saga_id": row["saga_id"],
    }
