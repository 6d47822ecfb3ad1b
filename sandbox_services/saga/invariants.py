"""Check the saga's invariants from the services' own stores after a run.

Four statements an auditor would make about the whole system, each checked
saga by saga against what the services themselves recorded:
none stuck, money adds up, stock adds up, no step applied twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from sandbox_services.saga.interface import FINAL_STATES

from .stores import read_only, rows_for

NAMES = {
    "ended": "every saga ended approved or rejected (none stuck)",
    "money": "money charged equals money kept for approved orders (refunds cover the rest)",
    "stock": "stock reserved equals stock shipped for approved orders",
    "once": "no step applied twice",
}
SAMPLE = 5  # saga ids named in a failing invariant's detail


def check(workdir: Path, saga_ids: list[str] | None, *, mode: str) -> list[dict]:
    """Return ``[{"name", "ok", "detail"}]`` for the given sagas (None: every saga in the stores)."""
    workdir = Path(workdir)
    with read_only(workdir, "orders") as conn:
        orders = {
            r["saga_id"]: r
            for r in rows_for(
                conn, "SELECT saga_id, status, quantity, amount_cents FROM orders", saga_ids
            )
        }
    ids = list(orders) if saga_ids is None else list(saga_ids)
    return [
        _ended(workdir, ids, orders, mode),
        _money(workdir, ids, orders),
        _stock(workdir, ids, orders),
        _once(workdir, ids),
    ]


def running(workdir: Path, saga_ids: list[str] | None, *, mode: str) -> list[str]:
    """Return the sagas not yet ended (order not final, or coordinator not final)."""
    with read_only(Path(workdir), "orders") as conn:
        status = {
            r["saga_id"]: r["status"]
            for r in rows_for(conn, "SELECT saga_id, status FROM orders", saga_ids)
        }
    ids = list(status) if saga_ids is None else saga_ids
    stuck = [s for s in ids if status.get(s) not in ("approved", "rejected")]
    if mode == "orchestration":
        with read_only(Path(workdir), "coordinator") as conn:
            state = {
                r["saga_id"]: r["state"]
                for r in rows_for(conn, "SELECT saga_id, state FROM sagas", saga_ids)
            }
        stuck += [s for s in ids if state.get(s) not in FINAL_STATES and s not in stuck]
    return stuck


def _ended(workdir: Path, ids: list[str], orders: dict, mode: str) -> dict:
    stuck = running(workdir, ids, mode=mode)
    counts = Counter(orders[s]["status"] if s in orders else "missing" for s in ids)
    unpublished = 0
    for service in ("orders", "payments", "inventory", "shipping"):
        with read_only(workdir, service) as conn:
            unpublished += len(
                rows_for(conn, "SELECT id FROM outbox WHERE published_ns IS NULL", ids)
            )
    detail = (
        f"{counts.get('approved', 0)} approved, {counts.get('rejected', 0)} rejected, "
        f"{len(stuck)} still running"
    )
    if stuck:
        detail += f" (e.g. {', '.join(stuck[:SAMPLE])})"
    if unpublished:
        detail += f"; {unpublished} outbox rows not yet published"
    return {"name": NAMES["ended"], "ok": not stuck and not unpublished, "detail": detail}


def _money(workdir: Path, ids: list[str], orders: dict) -> dict:
    charged: dict[str, int] = defaultdict(int)
    refunded: dict[str, int] = defaultdict(int)
    # An authorization hold moves no money, but an ended saga must not leave one open.
    held: dict[str, int] = defaultdict(int)
    with read_only(workdir, "payments") as conn:
        for row in rows_for(conn, "SELECT saga_id, kind, amount_cents FROM ledger", ids):
            amount, saga_id = row["amount_cents"], row["saga_id"]
            if row["kind"] == "charge":
                charged[saga_id] += amount
            elif row["kind"] == "refund":
                refunded[saga_id] += amount
            else:
                held[saga_id] += amount if row["kind"] == "hold" else -amount
    wrong = []
    for saga_id in ids:
        order = orders.get(saga_id)
        kept = charged[saga_id] - refunded[saga_id]
        expected = order["amount_cents"] if order and order["status"] == "approved" else 0
        if order and order["status"] in ("approved", "rejected"):
            if kept != expected:
                wrong.append(f"{saga_id}: kept {kept} expected {expected}")
            if held[saga_id]:
                wrong.append(f"{saga_id}: {held[saga_id]} still held on the card")
    total_charged, total_refunded = sum(charged.values()), sum(refunded.values())
    approved = sum(
        o["amount_cents"] for s, o in orders.items() if s in set(ids) and o["status"] == "approved"
    )
    detail = (
        f"charged {_money_text(total_charged)}, refunded {_money_text(total_refunded)}, "
        f"kept {_money_text(total_charged - total_refunded)}; approved orders total "
        f"{_money_text(approved)}"
    )
    if any(held.values()):
        detail += f"; still held on cards {_money_text(sum(held.values()))}"
    if wrong:
        detail += f"; wrong: {'; '.join(wrong[:SAMPLE])}"
    return {"name": NAMES["money"], "ok": not wrong, "detail": detail}


def _stock(workdir: Path, ids: list[str], orders: dict) -> dict:
    reserved: dict[str, int] = defaultdict(int)
    with read_only(workdir, "inventory") as conn:
        for row in rows_for(conn, "SELECT saga_id, kind, quantity FROM movements", ids):
            sign = 1 if row["kind"] == "reserve" else -1
            reserved[row["saga_id"]] += sign * row["quantity"]
    with read_only(workdir, "shipping") as conn:
        shipped = {
            r["saga_id"]: r["quantity"]
            for r in rows_for(
                conn, "SELECT saga_id, quantity FROM shipments WHERE status = 'scheduled'", ids
            )
        }
    wrong = []
    for saga_id in ids:
        order = orders.get(saga_id)
        if not order or order["status"] not in ("approved", "rejected"):
            continue
        expected = order["quantity"] if order["status"] == "approved" else 0
        if reserved[saga_id] != expected or shipped.get(saga_id, 0) != expected:
            wrong.append(
                f"{saga_id}: reserved {reserved[saga_id]}, shipped "
                f"{shipped.get(saga_id, 0)}, expected {expected}"
            )
    detail = (
        f"{sum(reserved.values())} units held by reservations, "
        f"{sum(shipped.values())} units in scheduled shipments"
    )
    if wrong:
        detail += f"; wrong: {'; '.join(wrong[:SAMPLE])}"
    return {"name": NAMES["stock"], "ok": not wrong, "detail": detail}


def _once(workdir: Path, ids: list[str]) -> dict:
    applied: Counter[tuple[str, str, str]] = Counter()
    ignored = 0
    for service in ("orders", "payments", "inventory", "shipping"):
        with read_only(workdir, service) as conn:
            for row in rows_for(conn, "SELECT saga_id, step, status FROM step_log", ids):
                if row["status"] == "done":
                    applied[(service, row["saga_id"], row["step"])] += 1
                elif row["status"] == "duplicate":
                    ignored += 1
    with read_only(workdir, "payments") as conn:
        for row in rows_for(conn, "SELECT saga_id, kind FROM ledger", ids):
            applied[("payments-ledger", row["saga_id"], row["kind"])] += 1
    with read_only(workdir, "inventory") as conn:
        for row in rows_for(conn, "SELECT saga_id, kind FROM movements", ids):
            applied[("inventory-movements", row["saga_id"], row["kind"])] += 1
    twice = [
        f"{service} {step} of {saga_id} x{count}"
        for (service, saga_id, step), count in applied.items()
        if count > 1
    ]
    detail = (
        f"{sum(applied.values())} applications checked; {ignored} repeats recognised and ignored"
    )
    if twice:
        detail += f"; applied twice: {'; '.join(twice[:SAMPLE])}"
    return {"name": NAMES["once"], "ok": not twice, "detail": detail}


def _money_text(cents: int) -> str:
    return f"{cents / 100:.2f}"
