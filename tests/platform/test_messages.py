"""The "sandbox" and "run" messages have one shape, whichever process publishes them.

The supervisor and the web tier's Celery tasks both publish to a sandbox's
channel-layer group; these tests listen on that group through the real channel
layer (channels-redis) while a real sandbox changes.
"""

import asyncio
import os

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer

from lab.asgi import application
from lab.sandboxes import events
from lab.sandboxes.models import Sandbox
from sandbox_services.runtime import keys

from .helpers import LESSON, api_for, wait_run, wait_state


def shape(payload: dict) -> dict[str, str]:
    """Return each field's type name: two payloads of one shape give equal answers."""
    return {key: type(value).__name__ for key, value in payload.items()}


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Give each test's event loop its own channel layer: channels_redis binds locks to a loop."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def running_sandbox(live_lab, make_user):
    _user, token = make_user(role="learner")
    api = api_for(token)
    sandbox_id = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"]
    wait_state(api, sandbox_id, {"running"})
    yield sandbox_id, token, api
    api.delete(f"/api/sandboxes/{sandbox_id}/")


class GroupListener:
    """A channel in a sandbox's group, on the channel layer the lab uses (Redis db 1 in tests)."""

    def __init__(self, sandbox_id: str) -> None:
        self.layer = RedisChannelLayer(hosts=[os.environ["REDIS_URL"]])
        self.group = keys.channel_group(sandbox_id)
        self.channel = ""

    async def __aenter__(self) -> "GroupListener":
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.layer.group_discard(self.group, self.channel)
        await self.layer.flush()

    async def next_of_type(self, message_type: str, timeout: float = 30.0) -> dict:
        """Return the next message of ``message_type``, skipping spans and metrics."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.layer.receive(self.channel)
                if message["type"] == message_type:
                    return message


@pytest.mark.django_db(transaction=True)
async def test_the_supervisor_and_the_celery_tasks_send_one_sandbox_shape(running_sandbox):
    sandbox_id, token, api = running_sandbox
    async with GroupListener(sandbox_id) as listener:
        # A fault changes a service: only the supervisor says so.
        response = await sync_to_async(api.post)(
            f"/api/sandboxes/{sandbox_id}/faults/",
            {"service": "caller", "action": "clear"},
            format="json",
        )
        assert response.status_code == 200, response.content
        from_supervisor = (await listener.next_of_type("sandbox.state"))["sandbox"]
        # What the Celery tasks send when a sandbox starts or ends.
        sandbox = await database_sync_to_async(Sandbox.objects.get)(id=sandbox_id)
        await database_sync_to_async(events.sandbox_changed)(sandbox)
        from_celery = (await listener.next_of_type("sandbox.state"))["sandbox"]

    assert shape(from_supervisor) == shape(from_celery)
    assert from_supervisor["expires_at"] == from_celery["expires_at"], "one time format"
    assert from_supervisor["expires_at"].endswith("Z"), "ISO 8601 in UTC, as the API writes it"
    assert from_supervisor["services"].keys() == from_celery["services"].keys()
    assert '"pid"' not in str(from_supervisor).replace("'", '"'), "process ids stay on the host"

    # The browser gets what the publishers sent, and its first message has the same shape.
    communicator = WebsocketCommunicator(
        application,
        f"/ws/sandboxes/{sandbox_id}/",
        headers=[(b"authorization", f"Token {token}".encode())],
    )
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert first["type"] == "sandbox"
    assert shape(first["sandbox"]) == shape(from_supervisor)
    assert first["sandbox"]["expires_at"] == from_supervisor["expires_at"]
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_supervisor_and_the_celery_tasks_send_one_run_shape(running_sandbox):
    sandbox_id, _token, api = running_sandbox
    async with GroupListener(sandbox_id) as listener:

        def one_call() -> dict:
            response = api.post(
                f"/api/sandboxes/{sandbox_id}/runs/", {"experiment": "one-call"}, format="json"
            )
            return wait_run(api, response.json()["id"])

        finished = await sync_to_async(one_call)()
        assert finished["state"] == "done", finished["error"]
        runs = []
        while not runs or runs[-1]["state"] != "done":
            runs.append((await listener.next_of_type("sandbox.run"))["run"])

    # Celery marks the run running and then done; the supervisor reports
    # progress in between, starting with "started".
    from_celery = next(run for run in runs if run["state"] == "running" and not run["message"])
    from_supervisor = next(run for run in runs if run["message"] == "started")
    done = runs[-1]
    assert shape(from_supervisor) == shape(from_celery)
    assert {run["id"] for run in runs} == {finished["id"]}
    assert all(run.keys() == done.keys() for run in runs)
    assert isinstance(done["result"], dict) and done["finished_at"].endswith("Z")
    assert done["params"] == from_supervisor["params"] == finished["params"]
