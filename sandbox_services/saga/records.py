"""Find where one saga is written down: whose stores you must read to rebuild it, who triggered each step.

Both answers come from the services' own SQLite files after the run, read
only, never from what the code is supposed to do: a coordinator that forgot to
log a step, or a participant that acted on nobody's message, shows up here.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from sandbox_services.saga.interface import SERVICES

from .choreography import REACTIONS
from .stores import read_only, rows_for

# The coordinator's saga-log rows that record a command and its outcome (not a transition).
COMMAND_KINDS = ("forward", "compensation", "failure")


def steps_held(workdir: Path, saga_id: str, *, mode: str) -> dict[str, list[str]]:
    """Return, per service's store, the saga's steps ("service action") it holds a record of.

    A participant's step log records its own steps (a repeat it ignored is no new
    step); the coordinator's saga log records every command it sent and its outcome.
    Stores with nothing on this saga are left out.
    """
    workdir = Path(workdir)
    held: dict[str, set[str]] = {}
    for service in SERVICES:
        with read_only(workdir, service) as conn:
            rows = rows_for(conn, "SELECT step, status FROM step_log", [saga_id])
        held[service] = {f"{service} {r['step']}" for r in rows if r["status"] != "duplicate"}
    if mode == "orchestration":
        with read_only(workdir, "coordinator") as conn:
            rows = rows_for(conn, "SELECT service, step, kind FROM saga_log", [saga_id])
        held["coordinator"] = {
            f"{r['service']} {r['step']}" for r in rows if r["kind"] in COMMAND_KINDS
        }
    return {service: sorted(steps) for service, steps in held.items() if steps}


def stores_to_read(held: dict[str, list[str]]) -> list[str]:
    """Return the fewest stores whose records together hold every step any of them holds."""
    every = set().union(*map(set, held.values())) if held else set()
    # Five stores at most: trying every combination, smallest first, is exact and cheap.
    for size in range(1, len(held) + 1):
        for chosen in combinations(held, size):
            if set().union(*(set(held[s]) for s in chosen)) == every:
                return list(chosen)
    return []


def triggers(workdir: Path, saga_id: str, *, mode: str) -> dict[str, str]:
    """Return, per step ("service action"), what made it run, as the stores recorded it.

    Orchestration: a step the coordinator's log holds a command for was the
    coordinator's decision. Choreography: a step ran because its service took
    in a message (its inbox keeps the id) that another service's outbox wrote.
    """
    workdir = Path(workdir)
    found: dict[str, str] = {}
    if mode == "orchestration":
        with read_only(workdir, "coordinator") as conn:
            rows = rows_for(conn, "SELECT service, step, kind FROM saga_log", [saga_id])
        for row in rows:
            if row["kind"] in COMMAND_KINDS:
                found[f"{row['service']} {row['step']}"] = "the coordinator's command"
        return found
    published: list[tuple[str, str, str]] = []  # (publisher, event, message id)
    for service in SERVICES:
        with read_only(workdir, service) as conn:
            for row in rows_for(conn, "SELECT event, message_id FROM outbox", [saga_id]):
                published.append((service, row["event"], row["message_id"]))
    for service in SERVICES:
        with read_only(workdir, service) as conn:
            if conn is None:
                continue
            for publisher, event, message_id in published:
                seen = conn.execute(
                    "SELECT 1 FROM inbox WHERE message_id = ?", (message_id,)
                ).fetchone()
                owner, action = REACTIONS.get(event, ("", ""))
                if seen and owner == service:
                    found.setdefault(f"{service} {action}", f"{event} from {publisher}")
    return found


def ledger(workdir: Path, saga_id: str) -> list[dict]:
    """Return the payments ledger rows of one saga, oldest first: kind, amount_cents, at_ns."""
    with read_only(Path(workdir), "payments") as conn:
        rows = rows_for(conn, "SELECT kind, amount_cents, at_ns FROM ledger", [saga_id])
    return sorted((dict(row) for row in rows), key=lambda row: row["at_ns"])


def order_status(workdir: Path, saga_id: str) -> str:
    """Return the order's status as Orders stored it ("missing" if it has no row)."""
    with read_only(Path(workdir), "orders") as conn:
        rows = rows_for(conn, "SELECT status FROM orders", [saga_id])
    return rows[0]["status"] if rows else "missing"
