"""Load for the experiments: clients at fixed rates (async), and an interleaved latency probe (forked).

``fixed_rate_clients`` is open-loop: each client sends on its schedule
whether or not earlier answers came back, as independent users do, so a
refusal never slows a client down. ``interleaved`` runs in a forked process
of its own (``ctx.fork``) with plain ``http.client``, keep-alive and Nagle
off, taking the targets in turn request by request so that every target
sees the same machine at the same moments.
"""

from __future__ import annotations

import asyncio
import http.client
import time

import aiohttp


async def fixed_rate_clients(
    port: int, path: str, headers: dict[str, dict], rates: dict[str, int], duration_s: float
) -> dict[str, list[list]]:
    """Send each client's requests at its rate for ``duration_s``; return [t_s, status, retry_after] each."""
    answers: dict[str, list[list]] = {name: [] for name in rates}
    started = time.monotonic()

    async def one(session: aiohttp.ClientSession, name: str, due: float) -> None:
        try:
            async with session.get(
                f"http://127.0.0.1:{port}{path}", headers=headers[name]
            ) as response:
                await response.read()
                answers[name].append(
                    [round(due, 3), response.status, response.headers.get("Retry-After")]
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            answers[name].append([round(due, 3), 0, type(error).__name__])

    async def client(name: str, rate: int) -> None:
        connector = aiohttp.TCPConnector(limit=16, keepalive_timeout=30)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=10)
        ) as session:
            pending = []
            for index in range(int(rate * duration_s)):
                due = index / rate
                wait = started + due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                pending.append(asyncio.ensure_future(one(session, name, due)))
            await asyncio.gather(*pending)

    await asyncio.gather(*(client(name, rate) for name, rate in rates.items()))
    for values in answers.values():
        values.sort()
    return answers


def _get(connection: http.client.HTTPConnection, path: str, headers: dict) -> int:
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def interleaved(
    targets: dict[str, tuple[int, dict]], paths: dict[str, str], requests: int, warmup: int = 30
) -> dict:
    """Send ``requests`` to each target in turn, one at a time; return latencies (us) and errors."""
    connections = {
        name: http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for name, (port, _) in targets.items()
    }
    latencies: dict[str, list[float]] = {name: [] for name in targets}
    errors: dict[str, int] = {name: 0 for name in targets}
    try:
        for _ in range(warmup):
            for name, (_, headers) in targets.items():
                _get(connections[name], paths[name], headers)
        give_up = time.monotonic() + 30
        for _ in range(requests):
            if time.monotonic() > give_up:
                break
            for name, (_, headers) in targets.items():
                started = time.perf_counter_ns()
                try:
                    status = _get(connections[name], paths[name], headers)
                except (OSError, http.client.HTTPException):
                    status = 0
                    connections[name].close()
                elapsed = (time.perf_counter_ns() - started) / 1000
                if status == 200:
                    latencies[name].append(elapsed)
                else:
                    errors[name] += 1
    finally:
        for connection in connections.values():
            connection.close()
    return {"latencies_us": latencies, "errors": errors}
