"""A run's progress reaches the channel layer and stays in Redis while the run is in flight."""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer

from sandbox_services.runtime import client, keys
from sandbox_services.runtime.runs import EXIT_GRACE_S, PROGRESS_KEY_MARGIN_S
from sandbox_services.selftest import LAB

ECHO_TIMEOUT_S = LAB.experiment("echo").timeout_s


async def _watch_a_run(sandbox_id: str, run_id: str) -> dict:
    """Run echo slowly; on each of its progress messages, read what the key holds then."""
    layer = RedisChannelLayer(hosts=[os.environ["REDIS_URL"]])
    redis = aioredis.Redis.from_url(os.environ["REDIS_URL"])
    channel = await layer.new_channel()
    await layer.group_add(keys.channel_group(sandbox_id), channel)
    ending = asyncio.ensure_future(
        asyncio.to_thread(
            client.command,
            sandbox_id,
            "run",
            run_id=run_id,
            experiment="echo",
            # Half a second between calls: each call's progress goes out at once, alone.
            params={"calls": 4, "interval_ms": 500},
            timeout_s=30,
        )
    )
    seen: list[tuple[dict, dict | None, int]] = []
    try:
        async with asyncio.timeout(20):
            while True:
                message = await layer.receive(channel)
                if message["type"] != "sandbox.run" or message["run"]["id"] != run_id:
                    continue
                _, progress = await client.areplay_with_progress(sandbox_id, 0, [run_id])
                kept = progress.get(run_id)
                seen.append(
                    (message["run"], kept, await redis.ttl(keys.run_progress(sandbox_id, run_id)))
                )
                if message["run"]["progress"] == 1.0:
                    break
            outcome = await ending
    finally:
        await layer.group_discard(keys.channel_group(sandbox_id), channel)
        await redis.aclose()
    _, after = await client.areplay_with_progress(sandbox_id, 0, [run_id])
    return {"outcome": outcome, "seen": seen, "after": after}


def test_the_runs_newest_progress_is_kept_while_it_runs_and_removed_when_it_ends(shared_host):
    sandbox_id, _ = shared_host.spawn()
    run_id = os.urandom(4).hex()
    watched = asyncio.run(_watch_a_run(sandbox_id, run_id))

    assert watched["outcome"]["state"] == "done", watched["outcome"]
    calls = [(sent, kept, ttl) for sent, kept, ttl in watched["seen"] if sent["progress"] < 1.0]
    assert [sent["message"] for sent, _, _ in calls][-3:] == [
        "call 1 of 4",
        "call 2 of 4",
        "call 3 of 4",
    ]
    for sent, kept, ttl in calls:
        assert kept is not None, sent
        # Nothing newer came in between: the key holds exactly what the browsers were sent.
        if sent["message"].startswith("call"):
            assert kept == sent
        else:  # "started" may already be overtaken by the first call
            assert kept["progress"] >= sent["progress"] and kept["state"] == "running"
        assert ECHO_TIMEOUT_S < ttl <= ECHO_TIMEOUT_S + EXIT_GRACE_S + PROGRESS_KEY_MARGIN_S + 1
    assert kept["experiment"] == "echo" and kept["params"] == {"calls": 4, "interval_ms": 500.0}
    assert (
        watched["after"] == {}
    )  # the run ended: a page opened now reads its end from the database
