"""The WebSocket a browser watches a sandbox through: spans, state, runs, metrics.

Owners and instructors only. On connect it joins the sandbox's group first and
replays kept spans second, so nothing published in between is lost; a span
that arrives both ways is sent once.
"""

import time
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from lab.parsers import loads_bounded
from sandbox_services.runtime import client, keys

from . import selectors
from .events import run_message, sandbox_state_message
from .models import Run, RunState

REPLAY_CHUNK = 500
TOUCH_EVERY_S = 10.0
# The browser pings every 30 s; a watcher not heard for this long stops counting
# (a daphne that died never said goodbye), and the sandbox's gauges rest.
WATCH_TTL_S = 75.0


def _since(query_string: bytes) -> int:
    values = parse_qs(query_string.decode("latin-1")).get("since", ["0"])
    try:
        return max(0, int(values[0]))
    except ValueError:
        return 0


class SandboxConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        sandbox_id = self.scope["url_route"]["kwargs"]["sandbox_id"]
        user = self.scope.get("user")
        sandbox = (
            await database_sync_to_async(selectors.sandbox_get_visible)(
                user=user, sandbox_id=sandbox_id
            )
            if user is not None
            else None
        )
        if sandbox is None:
            await self.close()  # Before accept: the client gets HTTP 403.
            return
        self.sandbox_id = sandbox.id
        self.group = keys.channel_group(sandbox.id)
        self.is_owner = user.pk == sandbox.owner_id
        self.last_touch = 0.0
        self.replayed: set[int] = set()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._watch()
        await self.send_json({"type": "sandbox", "sandbox": await self._snapshot(sandbox)})
        # A page opened mid-run learns of the run now, not at its next progress message.
        runs = await database_sync_to_async(_runs_in_flight)(sandbox.id)
        items, kept = await client.areplay_with_progress(
            self.sandbox_id,
            _since(self.scope.get("query_string", b"")),
            [run["id"] for run in runs],
        )
        for run in runs:
            await self.send_json({"type": "run", "run": _with_progress(run, kept.get(run["id"]))})
        self.replayed = {item["seq"] for item in items}
        for start in range(0, len(items), REPLAY_CHUNK):
            await self.send_json(
                {"type": "spans", "items": items[start : start + REPLAY_CHUNK], "replay": True}
            )

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await sync_to_async(client.unwatch, thread_sensitive=False)(
                self.sandbox_id, self.channel_name
            )

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Parse a frame with the API's depth limit; answer a bad one and keep the socket."""
        if text_data is None:
            await self.send_json({"type": "error", "detail": "Send JSON as text frames."})
            return
        try:
            content = loads_bounded(text_data)
        except ValueError as error:  # malformed or over-deep JSON
            await self.send_json({"type": "error", "detail": f"Not valid JSON: {error}"[:200]})
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict) or content.get("type") != "ping":
            return
        await self._watch()
        now = time.monotonic()
        if self.is_owner and now - self.last_touch > TOUCH_EVERY_S:
            self.last_touch = now
            await database_sync_to_async(self._touch)()
        await self.send_json({"type": "pong"})

    async def sandbox_spans(self, event):
        items = event.get("items", [])
        if self.replayed:
            items = [item for item in items if item.get("seq") not in self.replayed]
            if items and min(item["seq"] for item in items) > max(self.replayed):
                self.replayed = set()  # Past the replay: no more duplicates possible.
        if items:
            await self.send_json({"type": "spans", "items": items})

    async def sandbox_state(self, event):
        await self.send_json({"type": "sandbox", "sandbox": event["sandbox"]})

    async def sandbox_run(self, event):
        await self.send_json({"type": "run", "run": event["run"]})

    async def sandbox_metrics(self, event):
        message = {"type": "metrics", "metrics": event.get("metrics", {})}
        if "source" in event:
            message["source"] = event["source"]
        await self.send_json(message)

    async def _snapshot(self, sandbox) -> dict:
        """Return the database's view of the sandbox with its services as the supervisor sees them."""
        # Read again, now that this socket is in the group: the row read before the
        # group_add may be older than a "running" sent in between, which this socket
        # missed (a sandbox that starts in 100 ms stayed "starting" on the page, with
        # every service healthy, in two fresh-clone CI runs).
        await database_sync_to_async(sandbox.refresh_from_db)()
        if sandbox.is_active:
            status = await database_sync_to_async(client.status)(sandbox.id)
            if status and isinstance(status.get("services"), dict):
                sandbox.services = status["services"]
        return sandbox_state_message(sandbox)["sandbox"]

    async def _watch(self) -> None:
        """Say this socket watches: the sandbox samples its gauges only while someone does."""
        await sync_to_async(client.watch, thread_sensitive=False)(
            self.sandbox_id, self.channel_name, WATCH_TTL_S
        )

    def _touch(self) -> None:
        client.touch(self.sandbox_id, _idle_timeout())


def _runs_in_flight(sandbox_id: str) -> list[dict]:
    runs = Run.objects.filter(
        sandbox_id=sandbox_id, state__in=(RunState.QUEUED, RunState.RUNNING)
    ).order_by("created_at")
    return [run_message(run)["run"] for run in runs]


def _with_progress(run: dict, kept: dict | None) -> dict:
    """Return the database's view of a run with the supervisor's newest progress, if it kept one."""
    if kept is None:
        return run
    # Kept progress means the runner has started, whatever the database says yet.
    return {
        **run,
        "state": kept.get("state", run["state"]),
        "progress": kept.get("progress", run["progress"]),
        "message": kept.get("message", run["message"]),
    }


def _idle_timeout() -> float:
    from django.conf import settings

    return settings.LAB_SANDBOX_IDLE_TIMEOUT
