"""HTTP front of the account service: commands, queries, the log's head, bulk history."""

from __future__ import annotations

import asyncio
from functools import partial

from aiohttp import web

from sandbox_services.runtime.web import fault_middleware, json_body

from sandbox_services.event_sourcing.domain import (
    SCHEMA,
    Command,
    ConcurrencyConflict,
    DomainError,
)
from sandbox_services.event_sourcing import knobs
from sandbox_services.broker.gauges import GaugeReporter
from sandbox_services.broker.publisher import AsyncPublisher, Publisher, PublishFailed
from sandbox_services.broker.sweeper import record_stream
from sandbox_services.runtime.spec import ServiceContext
from sandbox_services.runtime.serve import serve_http

from .backend import AccountBackend

MAX_ACCOUNT_ID = 64


def parse_command(account_id: str, data: dict) -> Command:
    """Return the command of a request body, or raise DomainError naming the bad field."""
    if not 1 <= len(account_id) <= MAX_ACCOUNT_ID:
        raise DomainError(f"account_id: must be 1..{MAX_ACCOUNT_ID} characters")
    amount = data.get("amount", 0)
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise DomainError("amount: must be an integer")
    expected = data.get("expected_version")
    if expected is not None and (not isinstance(expected, int) or expected < 0):
        raise DomainError("expected_version: must be a non-negative integer")
    return Command(account_id, str(data.get("type", "")), amount, expected)


async def execute(request: web.Request) -> web.Response:
    backend: AccountBackend = request.app["backend"]
    try:
        command = parse_command(request.match_info["account_id"], await json_body(request))
        event = await backend.execute(command)
    except ConcurrencyConflict as conflict:
        return web.json_response(
            {
                "detail": str(conflict),
                "expected_version": conflict.expected,
                "actual_version": conflict.actual,
            },
            status=409,
        )
    except DomainError as error:
        return web.json_response({"detail": str(error)}, status=422)
    except PublishFailed as error:
        return web.json_response({"detail": f"log unavailable: {error}"}, status=503)
    return web.json_response(event.as_dict(), status=201)


async def account(request: web.Request) -> web.Response:
    backend: AccountBackend = request.app["backend"]
    as_of = request.query.get("as_of")
    try:
        as_of_version = int(as_of) if as_of is not None else None
        state = await backend.account(request.match_info["account_id"], as_of=as_of_version)
    except ValueError:
        return web.json_response({"detail": "as_of: must be an integer"}, status=400)
    except DomainError as error:
        return web.json_response({"detail": str(error)}, status=400)
    return web.json_response(vars(state))


async def head(request: web.Request) -> web.Response:
    publisher: AsyncPublisher = request.app["publisher"]
    return web.json_response(
        {
            "events": await request.app["backend"].head(),
            "reconnects": publisher.publisher.stats.reconnects,
        }
    )


async def writer_schema(request: web.Request) -> web.Response:
    """Switch the event shape the writer appends (1: the first release's, 2: today's)."""
    backend: AccountBackend = request.app["backend"]
    version = (await json_body(request)).get("version")
    if version not in (1, SCHEMA):
        return web.json_response({"detail": f"version: must be 1 or {SCHEMA}"}, status=400)
    backend.writer_schema = version
    return web.json_response({"version": version})


async def load(request: web.Request) -> web.Response:
    data = await json_body(request)
    limits = {"commands": (1, knobs.MAX_LOAD_COMMANDS), "accounts": (1, 100), "seed": (0, 2**31)}
    values = {}
    for name, (low, high) in limits.items():
        value = data.get(name, low)
        if not isinstance(value, int) or not low <= value <= high:
            return web.json_response(
                {"detail": f"{name}: must be an integer in {low}..{high}"}, status=400
            )
        values[name] = value
    return web.json_response(await request.app["backend"].load(**values))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def main(ctx: ServiceContext) -> None:
    """Serve the account service until cancelled: recover from the log, then take commands."""
    await asyncio.to_thread(record_stream, ctx.redis_url, ctx.prefix + knobs.STREAM)
    publisher = AsyncPublisher(
        Publisher(
            ctx.amqp_url,
            name=f"{ctx.prefix}accounts",
            declare=partial(knobs.declare_log, prefix=ctx.prefix),
            retry_deadline_s=knobs.APPEND_RETRY_DEADLINE_S,
        )
    )
    await publisher.connect()
    backend = AccountBackend(
        publisher=publisher,
        exchange=ctx.prefix + knobs.EXCHANGE,
        amqp_url=ctx.amqp_url,
        stream=ctx.prefix + knobs.STREAM,
    )
    gauges = GaugeReporter(ctx.redis_url, ctx.sandbox_id, f"accounts-{ctx.replica}")
    backend.on_append = lambda: gauges.add(knobs.STREAM, "published")
    gauges.start()
    # This service is the log's only writer. On its first start in a sandbox the
    # log is empty by construction, so there is nothing to replay and no reason
    # to wait for a first message that cannot come; after a restart it replays.
    started_marker = ctx.workdir / f"accounts-{ctx.replica}.started"
    if started_marker.exists():
        await backend.recover()
    else:
        started_marker.touch()
    # The learner's delay and error rate for this service (the runtime applies none).
    app = web.Application(middlewares=[fault_middleware(ctx.faults)])
    app["backend"] = backend
    app["publisher"] = publisher
    app.add_routes(
        [
            web.post("/accounts/{account_id}/commands", execute),
            web.get("/accounts/{account_id}", account),
            web.get("/log/head", head),
            web.post("/log/schema", writer_schema),
            web.post("/load", load),
            web.get("/healthz", healthz),
        ]
    )
    try:
        await serve_http(ctx, app)
    finally:
        gauges.stop()
        await publisher.close()
