"""The selftest experiments: one call per protocol, control, fork, failure and timeout."""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
import grpc
import pika

from sandbox_services.runtime.spec import ExperimentContext

from .broker import QUEUE_ARGUMENTS, queue_name


async def echo(ctx: ExperimentContext, params: dict) -> dict:
    """Call the echo service ``calls`` times, ``interval_ms`` apart, through a traced client."""
    calls = int(params.get("calls", 1))
    interval_s = float(params.get("interval_ms", 0)) / 1000
    statuses = []
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        for number in range(calls):
            url = f"http://{ctx.address('echo')}/echo"
            async with session.get(url, params={"message": f"m{number}"}) as response:
                statuses.append(response.status)
            await ctx.progress((number + 1) / calls, f"call {number + 1} of {calls}")
            if interval_s:
                await asyncio.sleep(interval_s)
    elapsed_ms = (time.perf_counter() - started) * 1000
    return {
        "headline": f"{calls} calls, {statuses.count(200)} answered 200",
        "summary": [{"label": "elapsed", "value": round(elapsed_ms, 1), "unit": "ms"}],
        "statuses": statuses,
        "ok": all(status == 200 for status in statuses),
    }


async def greet(ctx: ExperimentContext, params: dict) -> dict:
    """Call the greeter once over a traced grpc.aio channel."""
    async with grpc.aio.insecure_channel(ctx.address("greeter")) as channel:
        hello = channel.unary_unary("/selftest.Greeter/Hello")
        try:
            answer = await hello(str(params.get("name", "lab")).encode(), timeout=5)
        except grpc.aio.AioRpcError as error:
            return {
                "headline": f"gRPC failed: {error.code().name}",
                "code": error.code().name,
                "ok": False,
            }
    return {"headline": answer.decode(), "code": "OK", "ok": True}


def _publish(amqp_url: str, queue: str, count: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, arguments=QUEUE_ARGUMENTS)
        for number in range(count):
            channel.basic_publish("", queue, f"message {number}".encode())
    finally:
        connection.close()


async def publish(ctx: ExperimentContext, params: dict) -> dict:
    """Publish ``count`` messages to the listener's queue."""
    count = int(params.get("count", 1))
    await asyncio.to_thread(_publish, ctx.amqp_url, queue_name(ctx.prefix), count)
    return {"headline": f"published {count}", "ok": True}


async def control(ctx: ExperimentContext, params: dict) -> dict:
    """Stop and start the echo service from inside an experiment."""
    stopped = await ctx.control("stop", "echo")
    started = await ctx.control("start", "echo")
    return {
        "after_stop": stopped["echo"]["state"],
        "after_start": started["echo"]["state"],
        "ok": True,
    }


def _pid_and_sum(limit: int) -> dict:
    return {"pid": os.getpid(), "sum": sum(range(limit))}


async def fork(ctx: ExperimentContext, params: dict) -> dict:
    """Run two forked workers side by side; return their pids and results."""
    results = await asyncio.gather(ctx.fork(_pid_and_sum, 1000), ctx.fork(_pid_and_sum, 10))
    return {"runner_pid": os.getpid(), "workers": results, "ok": True}


async def fail(ctx: ExperimentContext, params: dict) -> dict:
    """Raise, as a buggy experiment would."""
    raise ValueError("this experiment fails on purpose")


async def sleep(ctx: ExperimentContext, params: dict) -> dict:
    """Sleep past the experiment's timeout."""
    await asyncio.sleep(float(params.get("seconds", 30)))
    return {"ok": True}


async def greet_then_fork(ctx: ExperimentContext, params: dict) -> dict:
    """Use gRPC in the runner, then fork workers that call the greeter themselves."""
    first = await greet(ctx, params)
    started = time.perf_counter()
    workers = await asyncio.gather(
        ctx.fork(_greet_in_worker, ctx.address("greeter")),
        ctx.fork(_pid_and_sum, 10),
    )
    return {
        "first": first["code"],
        "workers": workers,
        "fork_ms": round((time.perf_counter() - started) * 1000, 1),
        "ok": True,
    }


async def _greet_in_worker(address: str) -> dict:
    async with grpc.aio.insecure_channel(address) as channel:
        answer = await channel.unary_unary("/selftest.Greeter/Hello")(b"worker", timeout=5)
    return {"pid": os.getpid(), "answer": answer.decode()}


async def sampled(ctx: ExperimentContext, params: dict) -> dict:
    """Call the echo service ``unsampled`` times untraced, then once traced."""
    ctx.set_sample_ratio(0.0)
    await echo(ctx, {"calls": int(params.get("unsampled", 3))})
    ctx.set_sample_ratio(1.0)
    return await echo(ctx, {"calls": 1})
