"""The sandbox WebSocket under bad frames and foreign origins, through the real ASGI stack."""

import json
from datetime import timedelta

import pytest
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from lab.asgi import application
from lab.sandboxes.models import Sandbox, SandboxState

from .helpers import LESSON


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Give each test's event loop its own channel layer: channels_redis binds locks to a loop."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def owned_sandbox(make_user):
    """A learner's token and a sandbox of theirs that has ended (the socket still opens)."""
    owner, token = make_user(role="learner")
    sandbox = Sandbox.objects.create(
        owner=owner,
        lesson=LESSON,
        state=SandboxState.STOPPED,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    return sandbox.id, token


def socket(sandbox_id: str, token: str, **headers: str) -> WebsocketCommunicator:
    pairs = [(b"authorization", f"Token {token}".encode())]
    pairs += [(name.encode(), value.encode()) for name, value in headers.items()]
    return WebsocketCommunicator(application, f"/ws/sandboxes/{sandbox_id}/", headers=pairs)


@pytest.mark.django_db(transaction=True)
async def test_bad_frames_get_an_error_message_and_the_socket_stays_open(owned_sandbox):
    sandbox_id, token = owned_sandbox
    communicator = socket(sandbox_id, token)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "sandbox"
    for frame in (
        {"text_data": "{not json"},
        {"bytes_data": b"\x00\x01binary"},
        {"text_data": "[" * 100_000 + "]" * 100_000},
        {"text_data": json.dumps({"type": "ping", "nested": json.loads("[" * 40 + "]" * 40)})},
    ):
        if "text_data" in frame:
            await communicator.send_to(text_data=frame["text_data"])
        else:
            await communicator.send_to(bytes_data=frame["bytes_data"])
        answer = await communicator.receive_json_from(timeout=5)
        assert answer["type"] == "error" and answer["detail"], answer
    # Still open and still answering.
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from(timeout=5)) == {"type": "pong"}
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8000", True),
        (None, True),  # a script with a token sends no Origin
        ("http://127.0.0.1:9999", False),  # same host, another port
        ("https://127.0.0.1:8000", False),  # same host and port, another scheme
        ("http://evil.example:8000", False),
        ("http://127.0.0.1", False),  # port 80 is not 8000
        ("null", False),
    ],
)
async def test_the_origin_must_match_scheme_host_and_port(owned_sandbox, origin, allowed):
    sandbox_id, token = owned_sandbox
    headers = {"host": "127.0.0.1:8000"}
    if origin is not None:
        headers["origin"] = origin
    communicator = socket(sandbox_id, token, **headers)
    connected, _ = await communicator.connect()
    assert connected is allowed
    await communicator.disconnect()
