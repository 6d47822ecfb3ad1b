"""Commands from the web tier to one service of a running sandbox, through Redis.

The web tier never dials a sandbox's ports. A service that takes commands
(the service mesh's control plane takes policies) serves them with
``serve_commands``; the web tier sends them with ``send_command`` and waits
for the reply, as it does with the supervisor's commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

import redis
import redis.asyncio as aioredis

from . import keys

log = logging.getLogger(__name__)
REPLY_TTL_S = 60


class ServiceCommandFailed(RuntimeError):
    """The service did not answer in time, or the sandbox is gone."""


def send_command(
    redis_url: str, sandbox_id: str, service: str, payload: dict, *, timeout_s: float = 15.0
) -> dict:
    """Send one command to a sandbox's service and return its reply (a dict it chose)."""
    client = redis.Redis.from_url(redis_url)
    try:
        if not client.exists(keys.sandbox_alive(sandbox_id)):
            raise ServiceCommandFailed(f"sandbox {sandbox_id} is not running")
        command_id = uuid.uuid4().hex
        client.rpush(
            keys.service_commands(sandbox_id, service), json.dumps({**payload, "id": command_id})
        )
        client.expire(keys.service_commands(sandbox_id, service), REPLY_TTL_S)
        item = client.blpop([keys.sandbox_reply(sandbox_id, command_id)], timeout=timeout_s)
    finally:
        client.close()
    if item is None:
        raise ServiceCommandFailed(f"{service} did not answer within {timeout_s:g} s")
    return json.loads(item[1])


async def serve_commands(
    redis_url: str,
    sandbox_id: str,
    service: str,
    handle: Callable[[dict], Awaitable[dict]],
) -> None:
    """Answer this service's commands, one at a time, until cancelled."""
    connection = aioredis.Redis.from_url(redis_url)
    key = keys.service_commands(sandbox_id, service)
    try:
        while True:
            try:
                item = await connection.blpop([key], timeout=1)
            except (redis.RedisError, OSError) as error:
                log.warning("command list %s: %s", key, error)
                await asyncio.sleep(1)
                continue
            if item is None:
                continue
            command = json.loads(item[1])
            try:
                answer = await handle(command)
            except Exception as error:  # a bad command must not end the service
                log.exception("command %s failed", command.get("op"))
                answer = {"status": 500, "body": {"detail": str(error)}}
            reply_key = keys.sandbox_reply(sandbox_id, str(command.get("id", "")))
            async with connection.pipeline(transaction=False) as pipe:
                pipe.rpush(reply_key, json.dumps(answer, default=str))
                pipe.expire(reply_key, REPLY_TTL_S)
                await pipe.execute()
    finally:
        await connection.aclose()
