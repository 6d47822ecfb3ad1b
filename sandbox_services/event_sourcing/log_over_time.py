"""Experiments about a log that lives long: snapshots, upcasting, retention.

Each experiment drives the sandbox and returns measured figures; its report
function (``*_report``) turns them into the result the page draws.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass

from sandbox_services.broker.connection import connect
from sandbox_services.broker.probes import wait_until
from sandbox_services.broker.naming import stream_arguments
from sandbox_services.broker.stream import read_stream
from sandbox_services.broker.sweeper import delete_objects, forget_streams, record_stream
from sandbox_services.event_sourcing.domain import SCHEMA, Command, DomainError, upcast
from sandbox_services.event_sourcing.experiments import (
    LedgerServices,
    load_with_progress,
    reported,
    seed,
)
from sandbox_services.event_sourcing.projections import project
from sandbox_services.runtime.spec import ExperimentContext

from . import knobs

# --- retention drops the head -----------------------------------------------------------


def _declare_short_log(amqp_url: str, prefix: str, kept_bytes: int) -> None:
    """Declare the short stream, with small segments, and bind it beside the log."""
    arguments = stream_arguments(max_age="1D", max_length_bytes=kept_bytes)
    arguments["x-stream-max-segment-size-bytes"] = knobs.RETENTION_SEGMENT_BYTES
    connection = connect(amqp_url, name="short-log-declare", deadline_s=5)
    try:
        channel = connection.channel()
        channel.queue_declare(prefix + knobs.RETENTION_STREAM, durable=True, arguments=arguments)
        channel.queue_bind(prefix + knobs.RETENTION_STREAM, prefix + knobs.EXCHANGE)
    finally:
        connection.close()


def _replay_from_zero(amqp_url: str, stream: str) -> list[tuple[int, dict]]:
    """Read a stream asking for offset 0, as a rebuild does; return (offset, event) pairs."""
    return [(offset, event) for offset, event, _ in read_stream(amqp_url, stream, start=0)]


@dataclass
class RetentionFigures:
    appended: int
    kept_bytes: int
    first_offset: int | None
    read: int
    this_run_read: int
    # (account, aggregate's balance, replayed balance, version of its first event read)
    accounts: list[tuple[str, int, int | None, int | None]]


@reported
async def retention(ctx: ExperimentContext, p: dict) -> dict:
    """Bind a stream that keeps a few kB beside the log, append, and rebuild from offset 0."""
    lab = LedgerServices(ctx)
    stream = ctx.prefix + knobs.RETENTION_STREAM
    kept_bytes = p["kept_kb"] * 1000
    try:
        await asyncio.to_thread(record_stream, ctx.redis_url, stream)
        await asyncio.to_thread(_declare_short_log, ctx.amqp_url, ctx.prefix, kept_bytes)
        start = await lab.accounts.head()
        await ctx.progress(0.1, f"appending {p['events']} events through the aggregate")
        loaded = await lab.accounts.load(commands=p["events"], accounts=10, seed=seed())
        end = await lab.accounts.head()
        await ctx.progress(0.6, "replaying the short stream from offset 0")
        read = await asyncio.to_thread(_replay_from_zero, ctx.amqp_url, stream)
        events = [event for _, event in read]
        replayed = project("balances", events)
        first_version: dict[str, int] = {}
        for event in events:
            first_version.setdefault(event["account_id"], event["version"])
        accounts = [
            (
                name,
                (await lab.accounts.account(name)).balance,
                replayed.get(name),
                first_version.get(name),
            )
            for name in loaded["accounts"]
        ]
        this_run = {
            event["meta"]["seq"]
            for event in events
            if start <= event.get("meta", {}).get("seq", -1) < end
        }
        figures = RetentionFigures(
            appended=end - start,
            kept_bytes=kept_bytes,
            first_offset=read[0][0] if read else None,
            read=len(read),
            this_run_read=len(this_run),
            accounts=accounts,
        )
        return retention_report(figures)
    finally:
        await asyncio.to_thread(delete_objects, ctx.amqp_url, queues=[stream])
        await asyncio.to_thread(forget_streams, ctx.redis_url, [stream])
        await lab.close()


def retention_report(f: RetentionFigures) -> dict:
    """Turn the retention run's figures into its result."""
    dropped = f.appended - f.this_run_read
    wrong = [row for row in f.accounts if row[2] != row[1]]
    # What a rebuild could have checked: an account's history starts at version 1.
    gapped = [row for row in f.accounts if row[3] != 1]
    first = "nothing" if f.first_offset is None else f"offset {f.first_offset}"
    headline = (
        f"Asked for offset 0, the replay began at {first}: retention had deleted "
        f"{dropped} of the {f.appended} events, and {len(wrong)} of {len(f.accounts)} "
        "rebuilt balances are wrong. No error was raised."
        if dropped > 0
        else f"Retention deleted nothing ({f.appended} events fit in {f.kept_bytes} bytes "
        "with room to spare): the replay began at offset 0 and every balance is right."
    )
    return {
        "headline": headline,
        "summary": [
            {"label": "first offset read", "value": f.first_offset, "unit": ""},
            {"label": "events appended", "value": f.appended, "unit": ""},
            {"label": "events deleted by retention", "value": dropped, "unit": ""},
            {"label": "wrong balances", "value": len(wrong), "unit": ""},
            {"label": "accounts not starting at version 1", "value": len(gapped), "unit": ""},
        ],
        "table": {
            "columns": [
                "account",
                "balance (aggregate)",
                "balance (replay from offset 0)",
                "first version read",
            ],
            "rows": [
                [
                    name,
                    truth,
                    "(no event kept)" if replayed is None else replayed,
                    "(none)" if first is None else first,
                ]
                for name, truth, replayed, first in f.accounts
            ],
        },
        "notes": [
            f"The short stream was declared with x-max-length-bytes {f.kept_bytes} and "
            f"x-stream-max-segment-size-bytes {knobs.RETENTION_SEGMENT_BYTES}, bound to the "
            "events exchange beside the log for this run, and deleted afterwards. The "
            "lesson's own log keeps 200 MB in 500 MB segments, so it never loses a thing here.",
            f"The replay read {f.read} messages, and folded them with the balances projection "
            "the projector runs (projections.project); the aggregate's balances come from "
            "its own state, built from every event.",
            f"{len(gapped)} of {len(f.accounts)} accounts' first event read had a version "
            "above 1: the projection applies it all the same, but a rebuild that checked "
            "each account's history starts at version 1 would have refused.",
            "RabbitMQ deletes whole segments, oldest first, and never the one being "
            "written, so the kept size is only within about a segment of the limit.",
        ],
        # What the lesson claims: an offset no longer kept starts the reader at the oldest.
        "ok": f.first_offset is not None and (dropped == 0 or f.first_offset > 0),
    }


# --- upcasting: v1 events read by v2 code -----------------------------------------------


def _history_of(amqp_url: str, stream: str, account_id: str, version: int) -> list[dict]:
    """Read the log from offset 0 up to an account's event ``version``; return its events raw."""
    return [
        event
        for _, event, _ in read_stream(
            amqp_url,
            stream,
            until=lambda _o, e: e["account_id"] == account_id and e["version"] >= version,
        )
        if event["account_id"] == account_id
    ]


@dataclass
class UpcastingFigures:
    account_id: str
    v1_events: int
    v2_events: int
    expected: int  # the balance the commands sent should leave
    view: int | None  # the balances view (v2 code, with the upcaster)
    aggregate: int  # the aggregate rebuilt from the log (v2 code, with the upcaster)
    without_upcaster: int | None  # v2 code folding the stored events as they are
    v1_sample: dict | None
    v1_sample_upcast: dict | None


async def _send(
    lab: LedgerServices, account_id: str, commands: int, rng, balance: int
) -> tuple[int, int]:
    """Send ``commands`` deposits or withdrawals; return (events appended, balance after)."""
    appended = 0
    for _ in range(commands):
        kind = rng.choice(("deposit", "deposit", "withdraw"))
        amount = rng.randint(1, 300)
        try:
            await lab.accounts.execute(Command(account_id, kind, amount))
        except DomainError:
            continue  # an overdraft is refused: no event
        appended += 1
        balance += amount if kind == "deposit" else -amount
    return appended, balance


@reported
async def upcasting(ctx: ExperimentContext, p: dict) -> dict:
    """Append one account's history with the v1 writer, then v2; read it all with v2 code."""
    lab = LedgerServices(ctx)
    account_id = f"acct-{uuid.uuid4().hex[:8]}"
    rng = random.Random(seed())
    try:
        # The first release: its events are BalanceChanged with a signed delta.
        await lab.accounts.set_writer_schema(1)
        await lab.accounts.execute(Command(account_id, "open"))
        v1_events, balance = await _send(lab, account_id, p["v1_commands"], rng, 0)
        # The upgrade: from here on the writer appends Deposited and Withdrawn.
        await lab.accounts.set_writer_schema(SCHEMA)
        v2_events, balance = await _send(lab, account_id, p["v2_commands"], rng, balance)
        await ctx.progress(0.5, "history appended by v1 then v2; reading it with v2 code")
        version = (await lab.accounts.account(account_id)).version
        await lab.caught_up("balances")
        view = (await lab.projector.view("balances"))["state"].get(account_id)
        aggregate = (await lab.accounts.account(account_id, as_of=version)).balance
        stored = await asyncio.to_thread(
            _history_of, ctx.amqp_url, ctx.prefix + knobs.STREAM, account_id, version
        )
        sample = next((event for event in stored if event.get("type") == "BalanceChanged"), None)
        figures = UpcastingFigures(
            account_id=account_id,
            v1_events=1 + v1_events,  # the opening was written by v1 too
            v2_events=v2_events,
            expected=balance,
            view=view,
            aggregate=aggregate,
            without_upcaster=project("balances", stored, upcasting=False).get(account_id),
            v1_sample=sample,
            v1_sample_upcast=upcast(sample) if sample else None,
        )
        return upcasting_report(figures)
    finally:
        await lab.accounts.set_writer_schema(SCHEMA)
        await lab.close()


def upcasting_report(f: UpcastingFigures) -> dict:
    """Turn the upcasting run's figures into its result."""
    right = f.view == f.aggregate == f.expected
    wrong_without = int(f.without_upcaster != f.expected)
    rows = [
        ["balances view (v2 code, upcaster)", f.view],
        ["aggregate rebuilt from the log (v2 code, upcaster)", f.aggregate],
        ["v2 code over the stored events, no upcaster", f.without_upcaster],
        ["what the commands should leave", f.expected],
    ]
    if f.v1_sample is not None:
        rows += [
            ["a v1 event as stored in the log", json.dumps(f.v1_sample, sort_keys=True)],
            ["the same event after the upcaster", json.dumps(f.v1_sample_upcast, sort_keys=True)],
        ]
    return {
        "headline": (
            f"{f.account_id}: {f.v1_events} events written by v1, {f.v2_events} by v2. "
            f"Read through the upcaster, v2 code gets {f.view} in the view and {f.aggregate} "
            f"in the aggregate ({'right' if right else 'WRONG'}); without it, {f.without_upcaster}."
        ),
        "summary": [
            {"label": "v1 events in the log", "value": f.v1_events, "unit": ""},
            {"label": "v2 events in the log", "value": f.v2_events, "unit": ""},
            {"label": "balance (v2 view, upcaster)", "value": f.view, "unit": ""},
            {"label": "balance (no upcaster)", "value": f.without_upcaster, "unit": ""},
            {"label": "wrong balances without the upcaster", "value": wrong_without, "unit": ""},
        ],
        "table": {"columns": ["", "value"], "rows": rows},
        "notes": [
            "The balances view and the aggregate ran in the services; the row without the "
            "upcaster is the same balances projection applied here to the stored events "
            "of this account, read from the log in this run, with the upcaster left out.",
            "Nothing in the log was rewritten: the v1 events are still there in their old "
            "shape, and every reader translates them as it reads.",
        ],
        "ok": right,
    }


# --- snapshots: a rebuild that starts late --------------------------------------------


async def _timed_rebuild(
    lab: LedgerServices, view: str, source: str, until_offset: int, timeout_s: float = 90
) -> dict | None:
    """Rebuild a view from zero or its snapshot; return the projector's timing, or None."""
    await lab.projector.rebuild(view, source=source, until_offset=until_offset)
    timing: dict = {}

    async def done() -> bool:
        status = await lab.projector.view(view)
        timing.update(status.get("rebuild") or {}, state=status["state"])
        return timing.get("seconds") is not None

    if not await wait_until(done, timeout_s=timeout_s, every_s=0.05):
        return None
    # The clock stopped at the batch that reached the offset; a view read then is complete.
    return timing


@dataclass
class SnapshotFigures:
    view: str
    snapshot_offset: int
    until_offset: int
    tail: int
    from_zero: dict
    from_snapshot: dict
    identical_zero: bool
    identical_snapshot: bool


@reported
async def snapshots(ctx: ExperimentContext, p: dict) -> dict:
    """Snapshot a view, append a tail, then rebuild it from offset 0 and from the snapshot."""
    lab = LedgerServices(ctx)
    view = knobs.SNAPSHOT_VIEW
    try:
        await load_with_progress(ctx, lab, events=p["events"], accounts=20, until=0.4)
        if not await lab.caught_up(view):
            return {"headline": "The view did not catch up with the log.", "ok": False}
        taken = await lab.projector.snapshot(view)
        await ctx.progress(0.45, f"snapshot taken at offset {taken['next_offset']}")
        if p["tail"]:
            await lab.accounts.load(commands=p["tail"], accounts=5, seed=seed())
        if not await lab.caught_up(view):
            return {"headline": "The view did not catch up with the log.", "ok": False}
        before = await lab.projector.view(view)
        until = before["next_offset"]
        await ctx.progress(0.5, "rebuilding from offset 0")
        from_zero = await _timed_rebuild(lab, view, "zero", until)
        await ctx.progress(0.75, "rebuilding from the snapshot")
        from_snapshot = await _timed_rebuild(lab, view, "snapshot", until)
        if from_zero is None or from_snapshot is None:
            return {"headline": "A rebuild did not reach the log's end in time.", "ok": False}
        figures = SnapshotFigures(
            view=view,
            snapshot_offset=taken["next_offset"],
            until_offset=until,
            tail=p["tail"],
            from_zero=from_zero,
            from_snapshot=from_snapshot,
            identical_zero=from_zero["state"] == before["state"],
            identical_snapshot=from_snapshot["state"] == before["state"],
        )
        return snapshots_report(figures)
    finally:
        await lab.close()


def snapshots_report(f: SnapshotFigures) -> dict:
    """Turn the snapshot run's figures into its result."""
    zero, snap = f.from_zero, f.from_snapshot
    faster = zero["seconds"] / snap["seconds"] if snap["seconds"] else None
    ratio = f"{faster:.1f}x faster" if faster else "immediately"
    return {
        "headline": (
            f"Rebuilding '{f.view}' from offset 0 read {zero['read']} events in "
            f"{zero['seconds']:.3f} s; from the snapshot at offset {f.snapshot_offset}, "
            f"{snap['read']} events in {snap['seconds']:.3f} s ({ratio}). "
            + (
                "Both equal the view they replaced."
                if f.identical_zero and f.identical_snapshot
                else "A rebuilt view DIFFERS from the one it replaced!"
            )
        ),
        "summary": [
            {"label": "rebuild time (from zero)", "value": zero["seconds"], "unit": "s"},
            {"label": "rebuild time (from snapshot)", "value": snap["seconds"], "unit": "s"},
            {"label": "events read (from zero)", "value": zero["read"], "unit": ""},
            {"label": "events read (from snapshot)", "value": snap["read"], "unit": ""},
            {
                "label": "identical",
                "value": f.identical_zero and f.identical_snapshot,
                "unit": "",
            },
        ],
        "charts": [
            {
                "title": "Rebuild time",
                "type": "bar",
                "x_label": "rebuild",
                "y_label": "seconds",
                "categories": ["from offset 0", "from the snapshot"],
                "series": [{"name": "seconds", "values": [zero["seconds"], snap["seconds"]]}],
            }
        ],
        "table": {
            "columns": ["", "from offset 0", "from the snapshot"],
            "rows": [
                ["first offset read", zero["start_offset"], snap["start_offset"]],
                ["events read", zero["read"], snap["read"]],
                ["seconds", zero["seconds"], snap["seconds"]],
                ["equal to the view it replaced", f.identical_zero, f.identical_snapshot],
            ],
        },
        "notes": [
            "Each time is the projector's own: from the rebuild request to the batch that "
            f"brought the view to offset {f.until_offset}, the log's end. It includes the "
            "broker's start of a stream reader, which the two rebuilds share.",
            f"The snapshot is the view's state, per-account versions and offset, stored in "
            f"the projector's SQLite; {f.tail} events were appended after it.",
        ],
        "ok": f.identical_zero and f.identical_snapshot and snap["read"] <= zero["read"],
    }
