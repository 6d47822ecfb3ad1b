"""Spans from a real run reach a real WebSocket; a reconnect with since= misses nothing."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from lab.asgi import application

from .helpers import LESSON, api_for, wait_run, wait_state


def connect(sandbox_id: str, token: str | None, since: int | None = None) -> WebsocketCommunicator:
    path = f"/ws/sandboxes/{sandbox_id}/" + (f"?since={since}" if since is not None else "")
    headers = [(b"authorization", f"Token {token}".encode())] if token else []
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_until(communicator, predicate, timeout: float = 30.0) -> list[dict]:
    """Collect messages until ``predicate(messages)`` holds."""
    messages: list[dict] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate(messages):
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(
                f"gave up after {len(messages)} messages: {[m.get('type') for m in messages][-10:]}"
            )
        messages.append(await communicator.receive_json_from(timeout=remaining))
    return messages


def spans_in(messages: list[dict]) -> list[dict]:
    return [
        span for message in messages if message.get("type") == "spans" for span in message["items"]
    ]


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


@pytest.mark.django_db(transaction=True)
async def test_spans_of_a_run_stream_live_and_a_reconnect_gets_what_it_missed(running_sandbox):
    sandbox_id, token, api = running_sandbox
    communicator = connect(sandbox_id, token)
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert first["type"] == "sandbox" and first["sandbox"]["state"] == "running"
    assert '"pid"' not in json.dumps(first["sandbox"]), "process ids stay on the host"

    def one_call():
        run = api.post(
            f"/api/sandboxes/{sandbox_id}/runs/", {"experiment": "one-call"}, format="json"
        )
        return wait_run(api, run.json()["id"])

    run = await sync_to_async(one_call)()
    assert run["state"] == "done", run["error"]
    live = await receive_until(
        communicator,
        lambda messages: {"http", "grpc"} <= {span["protocol"] for span in spans_in(messages)},
    )
    seen = spans_in(live)
    for span in seen:
        assert {
            "seq",
            "trace_id",
            "span_id",
            "service",
            "name",
            "kind",
            "start_ns",
            "end_ns",
            "status",
        } <= set(span)
    last_seq = max(span["seq"] for span in seen)
    await communicator.disconnect()

    # While nobody watches, another run happens.
    run = await sync_to_async(one_call)()
    assert run["state"] == "done"

    again = connect(sandbox_id, token, since=last_seq)
    connected, _ = await again.connect()
    assert connected
    replayed = await receive_until(
        again,
        lambda messages: {"http", "grpc"} <= {span["protocol"] for span in spans_in(messages)},
    )
    seqs = sorted(span["seq"] for span in spans_in(replayed))
    assert seqs[0] == last_seq + 1, "the first missed span must come first"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap and no duplicate"
    await again.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_another_learner_and_an_anonymous_visitor_are_refused(running_sandbox, make_user):
    sandbox_id, _token, _api = running_sandbox
    _other, other_token = await sync_to_async(make_user)(role="learner")
    for token in (other_token, None, "0" * 40):
        communicator = connect(sandbox_id, token)
        connected, _code = await communicator.connect()
        assert not connected
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_instructor_may_watch(running_sandbox, make_user):
    sandbox_id, _token, _api = running_sandbox
    teacher, teacher_token = await sync_to_async(make_user)(role="instructor")

    def teach_the_owner() -> None:
        from lab.sandboxes.models import Sandbox
        from lab.users.models import Cohort

        cohort = Cohort.objects.create(name="the owner's class")
        cohort.instructors.add(teacher)
        cohort.learners.add(Sandbox.objects.get(id=sandbox_id).owner)

    await sync_to_async(teach_the_owner)()
    communicator = connect(sandbox_id, teacher_token)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "sandbox"
    await communicator.disconnect()
