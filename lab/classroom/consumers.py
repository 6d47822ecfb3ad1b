"""The WebSocket an instructor watches a cohort through: the class state, pushed on change.

On connect it joins the cohort's group and sends the class; each
``classroom.changed`` in the group sends it again, read with this viewer's rights,
and so does a minute without one (idle minutes grow with time alone).
"""

import asyncio
import contextlib
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import selectors
from sandbox_services.runtime.keys import cohort_group


# Minutes idle on a step only grow with time: the class is sent again this often
# even when nothing changed, so "stuck for N minutes" keeps counting.
REFRESH_EVERY_S = 60.0


def _lesson_slug(query_string: bytes) -> str | None:
    return (parse_qs(query_string.decode("latin-1")).get("lesson") or [None])[0]


class ClassConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        cohort_id = int(self.scope["url_route"]["kwargs"]["cohort_id"])
        cohort = (
            await database_sync_to_async(selectors.cohort_get_taught)(
                instructor=user, cohort_id=cohort_id
            )
            if user is not None
            else None
        )
        if cohort is None:
            await self.close()  # Before accept: the client gets HTTP 403.
            return
        self.user, self.cohort = user, cohort
        self.lesson_slug = _lesson_slug(self.scope.get("query_string", b""))
        self.group = cohort_group(cohort.id)
        self.busy, self.again = False, False
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._send_class()
        self.refresher = asyncio.create_task(self._refresh())

    async def disconnect(self, code):
        if hasattr(self, "refresher"):
            self.refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.refresher
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _refresh(self):
        while True:
            await asyncio.sleep(REFRESH_EVERY_S)
            await self._send_class()

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def classroom_changed(self, event):
        await self._send_class()

    async def _send_class(self):
        # Changes come in bursts (a run saves several rows): while one read is
        # under way, further changes fold into one more read after it.
        if self.busy:
            self.again = True
            return
        self.busy = True
        try:
            while True:
                self.again = False
                state = await database_sync_to_async(self._read)()
                await self.send_json({"type": "class", "class": state})
                if not self.again:
                    break
        finally:
            self.busy = False

    def _read(self) -> dict:
        lesson = selectors.lesson_or_first(self.lesson_slug)
        return selectors.class_state(viewer=self.user, cohort=self.cohort, lesson=lesson)
