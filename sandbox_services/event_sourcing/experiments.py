"""The five experiments of the event sourcing lesson."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pika.exceptions

from sandbox_services.event_sourcing.services.accounts.client import AccountsClient
from sandbox_services.event_sourcing.domain import Command, ConcurrencyConflict, DomainError
from sandbox_services.event_sourcing.projections import project
from sandbox_services.event_sourcing.services.projector.client import ProjectorClient
from sandbox_services.broker.connection import connect
from sandbox_services.broker.probes import wait_until
from sandbox_services.broker.stream import read_stream
from sandbox_services.runtime.spec import ExperimentContext

from . import knobs


class LedgerServices:
    """The experiment's handles on the sandbox: the account service and the projector."""

    def __init__(self, ctx: ExperimentContext) -> None:
        self.ctx = ctx
        self.accounts = AccountsClient(ctx.address("accounts"))
        self.projector = ProjectorClient(ctx.address("projector"))

    async def caught_up(self, view: str, *, timeout_s: float = 60) -> bool:
        """Wait until a view has applied every event of the log."""
        head = await self.accounts.head()
        return await wait_until(lambda: self._at(view, head), timeout_s=timeout_s, every_s=0.05)

    async def _at(self, view: str, head: int) -> bool:
        # Distinct events applied, not offsets: a duplicated append takes an offset too.
        return (await self.projector.view(view))["events"] >= head

    async def reconnects(self) -> int:
        return await self.accounts.reconnects() + await self.projector.reconnects()

    async def close(self) -> None:
        await self.accounts.close()
        await self.projector.close()


def reported(experiment):
    """Wrap an experiment so its result says whether the broker connection dropped."""

    async def run(ctx: ExperimentContext, params: dict) -> dict:
        lab = LedgerServices(ctx)
        try:
            before = await lab.reconnects()
            result = await experiment(ctx, params)
            lost = await lab.reconnects() - before
            if lost > 0:
                result.setdefault("notes", []).append(
                    f"The broker connection dropped {lost} time(s) during the run, as the "
                    "services counted their reconnects. What they are built to do then: the "
                    "account service re-sends unconfirmed appends and each view resumes from "
                    "its stored offset; the run's other figures show whether it worked."
                )
            return result
        finally:
            await lab.close()

    run.__doc__, run.__name__ = experiment.__doc__, experiment.__name__
    return run


def seed() -> int:
    return random.randint(0, 2**31)


# Events appended per call while loading a history: progress after each, so a run
# of 10,000 events says how far it is instead of "started" for twenty seconds.
LOAD_CHUNK = 1000


async def load_with_progress(
    ctx: ExperimentContext, lab: LedgerServices, *, events: int, accounts: int, until: float
) -> float:
    """Append ``events`` commands in chunks, reporting progress up to ``until``.

    Return the seconds the appends took, progress reports left out.
    """
    done, appending_s = 0, 0.0
    while done < events:
        chunk = min(LOAD_CHUNK, events - done)
        started = time.monotonic()
        await lab.accounts.load(commands=chunk, accounts=accounts, seed=seed())
        appending_s += time.monotonic() - started
        done += chunk
        await ctx.progress(until * done / events, f"appended {done} of {events} events")
    return appending_s


def replay_headline(
    *, view: str, replayed: int, appended: int, elapsed_s: float, equal: bool
) -> str:
    """Say what the rebuild did; the log holds earlier runs' events too, so say how many."""
    rate = round(replayed / elapsed_s) if elapsed_s else 0
    earlier = replayed - appended
    source = (
        f"all {replayed} events in the log ({appended} appended by this run, "
        f"{earlier} by earlier ones)"
        if earlier > 0
        else f"the {replayed} events in the log"
    )
    verdict = (
        "identical to the view it replaced." if equal else "it differs from the view it replaced!"
    )
    return f"Rebuilt '{view}' from {source} in {elapsed_s:.2f} s ({rate} events/s): {verdict}"


@reported
async def replay(ctx: ExperimentContext, p: dict) -> dict:
    """Drop a view and rebuild it from offset 0; compare it with what it was."""
    lab = LedgerServices(ctx)
    try:
        appending_s = await load_with_progress(ctx, lab, events=p["events"], accounts=10, until=0.3)
        await ctx.progress(0.3, "history appended; waiting for the view")
        if not await lab.caught_up(p["view"]):
            return {"headline": "The view did not catch up with the log.", "ok": False}
        before = await lab.projector.view(p["view"])
        started = time.monotonic()
        await lab.projector.rebuild(p["view"])
        await ctx.progress(0.6, "view dropped; replaying the log from offset 0")
        rebuilt = await lab.caught_up(p["view"], timeout_s=90)
        elapsed = time.monotonic() - started
        after = await lab.projector.view(p["view"])
        equal = after["state"] == before["state"]
        rate = round(after["events"] / elapsed) if elapsed else 0
        # The appends of this run, timed as they happened: one confirmed write per command.
        append_rate = round(p["events"] / appending_s) if appending_s else 0
        return {
            "headline": replay_headline(
                view=p["view"],
                replayed=after["events"],
                appended=p["events"],
                elapsed_s=elapsed,
                equal=equal,
            ),
            "summary": [
                {"label": "events replayed", "value": after["events"], "unit": ""},
                {"label": "rebuild time", "value": round(elapsed, 3), "unit": "s"},
                {"label": "replay rate", "value": rate, "unit": "events/s"},
                {"label": "append time", "value": round(appending_s, 3), "unit": "s"},
                {"label": "append rate", "value": append_rate, "unit": "events/s"},
                {"label": "identical", "value": equal, "unit": ""},
            ],
            "table": {
                "columns": ["", "before", "after"],
                "rows": [
                    ["next offset", before["next_offset"], after["next_offset"]],
                    ["events applied", before["events"], after["events"]],
                    ["entries in the view", len(before["state"]), len(after["state"])],
                ],
            },
            "notes": [
                f"This run appended {p['events']} events in {appending_s:.2f} s "
                f"({append_rate} events/s, one command and one confirmed publish at a time) "
                f"and replayed {after['events']} in {elapsed:.2f} s ({rate} events/s, "
                "read in batches). Both figures are timed in this run."
            ],
            "ok": rebuilt and equal,
        }
    finally:
        await lab.close()


@reported
async def state_as_of(ctx: ExperimentContext, p: dict) -> dict:
    """Give one account a history, then rebuild it at several versions from the log."""
    lab = LedgerServices(ctx)
    account_id = f"acct-{uuid.uuid4().hex[:8]}"
    try:
        expected = [0]  # balance after each version; version 1 is the opening
        await lab.accounts.execute(Command(account_id, "open"))
        expected.append(0)
        rng = random.Random(seed())
        while len(expected) <= p["history"]:
            kind = rng.choice(("deposit", "deposit", "withdraw"))
            amount = rng.randint(1, 300)
            try:
                await lab.accounts.execute(Command(account_id, kind, amount))
            except DomainError:
                continue  # an overdraft is refused: no event, no version
            expected.append(expected[-1] + (amount if kind == "deposit" else -amount))
        versions = sorted(
            set(rng.sample(range(0, p["history"] + 1), min(p["points"], p["history"] + 1)))
        )
        rows, points, wrong = [], [], 0
        for i, version in enumerate(versions):
            started = time.monotonic()
            account = await lab.accounts.account(account_id, as_of=version)
            elapsed_ms = round((time.monotonic() - started) * 1000, 1)
            right = account.balance == expected[version]
            wrong += not right
            rows.append(
                [version, account.balance, expected[version], "yes" if right else "NO", elapsed_ms]
            )
            points.append([version, account.balance])
            await ctx.progress((i + 1) / len(versions), f"rebuilt at version {version}")
        return {
            "headline": (
                f"Rebuilt {account_id} at {len(versions)} points of its {p['history']}-event history: "
                + ("every balance matched." if not wrong else f"{wrong} did not match!")
            ),
            "charts": [
                {
                    "title": f"{account_id}: balance as of version N",
                    "type": "line",
                    "x_label": "version",
                    "y_label": "balance",
                    "series": [{"name": "balance", "points": points}],
                }
            ],
            "table": {
                "columns": ["version", "balance rebuilt", "expected", "match", "ms"],
                "rows": rows,
            },
            "notes": [
                "Each point is a fresh read of the log from offset 0, stopped at that version."
            ],
            "ok": wrong == 0,
        }
    finally:
        await lab.close()


@reported
async def late_projection(ctx: ExperimentContext, p: dict) -> dict:
    """Append thousands of events, then add a new view: it catches up from the start."""
    lab = LedgerServices(ctx)
    name = f"late-{p['kind']}-{uuid.uuid4().hex[:4]}"
    try:
        await load_with_progress(ctx, lab, events=p["events"], accounts=20, until=0.4)
        head = await lab.accounts.head()
        await ctx.progress(0.4, f"{head} events in the log; adding view {name}")
        started = time.monotonic()
        await lab.projector.add_view(name, p["kind"])
        caught_up = await lab.caught_up(name, timeout_s=120)
        elapsed = time.monotonic() - started
        view = await lab.projector.view(name)
        # The reference: the same projection computed here, straight from the log.
        events = await asyncio.to_thread(
            lambda: [e for _, e, _ in read_stream(ctx.amqp_url, ctx.prefix + knobs.STREAM)]
        )
        equal = view["state"] == project(p["kind"], events)
        await lab.projector.drop(name)
        rate = round(view["events"] / elapsed) if elapsed else 0
        return {
            "headline": (
                f"The new view '{name}' read {view['events']} past events in {elapsed:.2f} s "
                f"({rate} events/s) and "
                + (
                    "matches a projection computed from the log."
                    if equal
                    else "does NOT match the log!"
                )
            ),
            "summary": [
                {"label": "events caught up", "value": view["events"], "unit": ""},
                {"label": "catch-up time", "value": round(elapsed, 3), "unit": "s"},
                {"label": "catch-up rate", "value": rate, "unit": "events/s"},
            ],
            "table": {
                "columns": ["", "value"],
                "rows": [
                    ["log head when added", head],
                    ["view next offset", view["next_offset"]],
                    ["matches the log", equal],
                ],
            },
            "notes": [f"The view was dropped afterwards (at most {knobs.MAX_VIEWS} views)."],
            "ok": caught_up and equal,
        }
    finally:
        await lab.close()


def _drain_queue(amqp_url: str, queue: str, expected: int, timeout_s: float = 30) -> int:
    """Consume a classic queue until it is empty and ``expected`` arrived; return how many."""
    connection = connect(amqp_url, name="compare-consumer", deadline_s=5)
    got = 0
    try:
        channel = connection.channel()
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            method, _, _ = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                got += 1
            elif got >= expected:
                return got  # empty, and everything sent has come (a re-sent append may add one)
            else:
                time.sleep(0.02)
        return got
    finally:
        connection.close()


# The longest the queue's second reader may take; it stops at its first empty get.
SECOND_READ_S = 5.0


def _count_in_log(amqp_url: str, stream: str, start: int, end: int) -> int:
    """Read the whole log from offset 0; count the distinct events with seq in [start, end)."""
    seqs = {
        event["meta"]["seq"]
        for _, event, _ in read_stream(amqp_url, stream)
        if start <= event.get("meta", {}).get("seq", -1) < end
    }
    return len(seqs)


def _depth(amqp_url: str, queue: str) -> int | None:
    connection = connect(amqp_url, name="compare-depth", deadline_s=5)
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if connection.is_open:
            connection.close()


def _declare_compare(amqp_url: str, prefix: str) -> None:
    connection = connect(amqp_url, name="compare-declare", deadline_s=5)
    try:
        knobs.declare_compare_queue(connection.channel(), prefix)
    finally:
        connection.close()


def _delete(amqp_url: str, queue: str) -> None:
    connection = connect(amqp_url, name="compare-delete", deadline_s=5)
    try:
        connection.channel().queue_delete(queue)
    finally:
        connection.close()


@reported
async def log_vs_queue(ctx: ExperimentContext, p: dict) -> dict:
    """Send the same events to a classic queue and the stream; consume both; replay both."""
    lab = LedgerServices(ctx)
    queue = ctx.prefix + knobs.COMPARE_QUEUE
    stream = ctx.prefix + knobs.STREAM
    try:
        await asyncio.to_thread(_declare_compare, ctx.amqp_url, ctx.prefix)
        start = await lab.accounts.head()
        await lab.accounts.load(commands=p["events"], accounts=3, seed=seed())
        end = await lab.accounts.head()
        sent = end - start
        queued = await asyncio.to_thread(_depth, ctx.amqp_url, queue)
        # A stream's declare-ok count, asked the same way: not a ready count (see the note).
        stream_before = await asyncio.to_thread(_depth, ctx.amqp_url, stream)
        await ctx.progress(0.4, "consuming the queue")
        consumed = await asyncio.to_thread(_drain_queue, ctx.amqp_url, queue, sent)
        queue_after = await asyncio.to_thread(_depth, ctx.amqp_url, queue)
        stream_after = await asyncio.to_thread(_depth, ctx.amqp_url, stream)
        # Consuming a queue removes; a second consumer finds nothing. Reading the stream
        # twice gives the same events twice: readers keep their own offsets.
        first_read = await asyncio.to_thread(_count_in_log, ctx.amqp_url, stream, start, end)
        second_read = await asyncio.to_thread(_count_in_log, ctx.amqp_url, stream, start, end)
        # The queue read a second time, by a new consumer, as the stream was.
        queue_second = await asyncio.to_thread(_drain_queue, ctx.amqp_url, queue, 0, SECOND_READ_S)
        ok = (
            consumed >= sent
            and queue_after == 0
            and queue_second == 0
            and first_read == second_read == sent
        )
        return {
            "headline": (
                f"{sent} events went to both: read a second time, the queue gave {queue_second} "
                f"and the stream {second_read}."
            ),
            "table": {
                "columns": ["", "classic queue", "stream"],
                "rows": [
                    ["events sent", sent, sent],
                    ["message count before consuming", queued, stream_before],
                    ["first read", consumed, first_read],
                    ["left after reading", queue_after, stream_after],
                    ["second read", queue_second, second_read],
                ],
            },
            "notes": [
                "Both message counts are the broker's queue.declare-ok answers, asked in this "
                "run. A queue's is its ready messages; a stream's is not: reading never lowers "
                f"it, and it can lag the log (the log holds {end} distinct events). The second "
                "read is the evidence of what each kept."
            ],
            "ok": ok,
        }
    finally:
        await asyncio.to_thread(_delete, ctx.amqp_url, queue)
        await lab.close()


@reported
async def optimistic_concurrency(ctx: ExperimentContext, p: dict) -> dict:
    """Send commands at once, all expecting the same version: one wins, the others are refused."""
    lab = LedgerServices(ctx)
    account_id = f"acct-{uuid.uuid4().hex[:8]}"
    try:
        await lab.accounts.execute(Command(account_id, "open"))
        await lab.accounts.execute(Command(account_id, "deposit", 1000))
        version = (await lab.accounts.account(account_id)).version
        head_before = await lab.accounts.head()
        # Each contender read the account at `version` and decided to withdraw.
        contenders = [
            Command(account_id, "withdraw", 100 + i, expected_version=version)
            for i in range(p["contenders"])
        ]
        outcomes = await asyncio.gather(
            *(lab.accounts.execute(c) for c in contenders), return_exceptions=True
        )
        rows, won, refused = [], 0, 0
        for command, outcome in zip(contenders, outcomes, strict=True):
            if isinstance(outcome, ConcurrencyConflict):
                refused += 1
                rows.append([f"withdraw {command.amount}", "refused (409)", str(outcome)])
            elif isinstance(outcome, Exception):
                rows.append([f"withdraw {command.amount}", "error", str(outcome)])
            else:
                won += 1
                rows.append(
                    [f"withdraw {command.amount}", f"appended as version {outcome.version}", ""]
                )
        head_after = await lab.accounts.head()
        account = await lab.accounts.account(account_id)
        await lab.caught_up("balances")
        projected = (await lab.projector.view("balances"))["state"].get(account_id)
        ok = (
            won == 1
            and refused == p["contenders"] - 1
            and head_after == head_before + 1
            and account.version == version + 1
            and projected == account.balance
        )
        return {
            "headline": (
                f"{p['contenders']} commands expected version {version}: {won} appended, "
                f"{refused} refused; the log grew by {head_after - head_before}."
            ),
            "summary": [
                {"label": "appended", "value": won, "unit": ""},
                {"label": "refused", "value": refused, "unit": ""},
                {"label": "balance", "value": account.balance, "unit": ""},
            ],
            "table": {"columns": ["command", "outcome", "error"], "rows": rows},
            "notes": ["The refused contender should reload the account and decide again."],
            "ok": ok,
        }
    finally:
        await lab.close()
