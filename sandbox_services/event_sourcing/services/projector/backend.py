"""The projection engine: one stream consumer per view, all on one thread and connection.

HTTP handlers never touch pika (a channel belongs to one thread): they queue a
request for the engine thread and await its answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from opentelemetry import trace

from sandbox_services.event_sourcing.domain import upcast
from sandbox_services.event_sourcing.projections import KINDS, is_new
from sandbox_services.broker.connection import CONNECTION_ERRORS, IDLE_TURN_S, connect
from sandbox_services.broker.connection import wake as wake_connection
from sandbox_services.broker.stream import close_stream_channel, close_stream_connection
from sandbox_services.broker.tracing import extract_context, untraced_basic_consume

from .interface import ViewError, ViewStatus
from .store import ProjectorStore

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


@dataclass
class View:
    name: str
    kind: str
    next_offset: int = 0
    events: int = 0
    state: dict = field(default_factory=dict)
    # Last version applied per account: a duplicated event (re-sent append) is skipped.
    versions: dict = field(default_factory=dict)
    channel: object = None
    buffer: list = field(default_factory=list)
    rebuild: dict | None = None
    rebuild_started: float = 0.0

    def status(self) -> ViewStatus:
        rebuild = dict(self.rebuild) if self.rebuild else None
        return ViewStatus(self.name, self.kind, self.next_offset, self.events, rebuild)

    def rebuilt_up_to_here(self) -> None:
        """Stop the rebuild's clock once the view reaches the offset it was asked to reach."""
        rebuild = self.rebuild
        if rebuild and rebuild["seconds"] is None and self.next_offset >= rebuild["until_offset"]:
            rebuild["seconds"] = round(time.monotonic() - self.rebuild_started, 4)


class ProjectorEngine:
    def __init__(
        self,
        *,
        amqp_url: str,
        stream: str,
        store: ProjectorStore,
        batch: int,
        prefetch: int,
        max_views: int,
        on_applied=None,
        declare=None,
    ) -> None:
        self._url = amqp_url
        # Declares the log (idempotent, the same as accounts does): subscribing
        # before accounts had declared it failed, and the retry cost a start 0.5 s.
        self._declare = declare
        self._stream = stream
        self._store = store
        self._batch = batch
        self._prefetch = prefetch
        self._max_views = max_views
        self._on_applied = on_applied or (lambda n: None)
        self._views: dict[str, View] = {}
        self._lock = threading.Lock()
        self._requests: queue.Queue = queue.Queue()
        self._connection = None  # the engine thread's, while connected
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.reconnects = 0

    # --- API for the HTTP side (any thread) -----------------------------------------------
    def snapshot(self, name: str) -> tuple[ViewStatus, dict]:
        with self._lock:
            view = self._views.get(name)
            if view is None:
                raise ViewError(f"name: no view called {name!r}")
            return view.status(), json.loads(json.dumps(view.state))

    def statuses(self) -> list[ViewStatus]:
        with self._lock:
            return [view.status() for view in self._views.values()]

    def wake(self) -> None:
        """End the engine thread's idle wait now (after a request or a stop)."""
        wake_connection(self._connection)

    async def request(self, action: str, *args) -> ViewStatus:
        """Ask the engine thread to add, rebuild or drop a view; await its answer."""
        future: Future = Future()
        self._requests.put((action, args, future))
        self.wake()  # served now, rather than at the engine's next turn
        return await asyncio.wrap_future(future)

    # --- the engine thread -------------------------------------------------------------
    def run(self, defaults: dict[str, str]) -> None:
        for name, kind, offset, events, state, versions in self._store.load():
            self._views[name] = View(name, kind, offset, events, state, versions)
        for name, kind in defaults.items():
            self._views.setdefault(name, View(name, kind))
        while not self.stop.is_set():
            try:
                self._run_connected()
            except CONNECTION_ERRORS as error:
                if self.stop.is_set():
                    return
                self.reconnects += 1
                log.warning("projector lost the broker (%r); resuming from stored offsets", error)
                self.stop.wait(0.5)

    def _run_connected(self) -> None:
        connection = connect(self._url, name="projector", deadline_s=3600, stop=self.stop)
        try:
            if self._declare is not None:
                channel = connection.channel()
                self._declare(channel)
                channel.close()
            for view in list(self._views.values()):
                self._subscribe(connection, view)
            self._connection = connection
            self.ready.set()
            while not self.stop.is_set():
                # Returns as soon as deliveries or a request's wake-up arrive; the limit
                # only spaces the idle turns (a wake() ends it early).
                connection.process_data_events(time_limit=IDLE_TURN_S)
                for view in list(self._views.values()):
                    self._apply_buffer(view)
                self._serve_requests(connection)
        finally:
            self._connection = None
            for view in self._views.values():
                view.channel, view.buffer = None, []
            close_stream_connection(connection)

    def _subscribe(self, connection, view: View) -> None:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=self._prefetch)
        view.channel, view.buffer = channel, []

        def on_message(_channel, method, properties, body: bytes, view=view) -> None:
            view.buffer.append((method.delivery_tag, properties.headers or {}, body))

        # Resume where the stored offset says: the log keeps everything, so nothing is lost.
        untraced_basic_consume(
            channel, self._stream, on_message, arguments={"x-stream-offset": view.next_offset}
        )

    def _apply_buffer(self, view: View) -> None:
        _, apply = KINDS[view.kind]
        while view.buffer:
            batch, view.buffer = view.buffer[: self._batch], view.buffer[self._batch :]
            first_headers = batch[0][1]
            with (
                tracer.start_as_current_span(
                    f"project {view.name}", context=extract_context(first_headers)
                ) as span,
                self._lock,
            ):
                applied = 0
                for _tag, headers, body in batch:
                    offset = int(headers["x-stream-offset"])
                    if offset < view.next_offset:
                        continue  # a stream may resend the start of a chunk: skip what we have
                    if view.rebuild is not None and view.rebuild["seconds"] is None:
                        view.rebuild["read"] += 1
                    # v2 code: an event the v1 writer appended is translated as it is read.
                    event = upcast(json.loads(body))
                    view.next_offset = offset + 1
                    if not is_new(view.versions, event):
                        continue
                    view.state = apply(view.state, event)
                    view.events += 1
                    applied += 1
                self._store.save(
                    view.name, view.kind, view.next_offset, view.events, view.state, view.versions
                )
                view.rebuilt_up_to_here()
                span.set_attributes({"events": applied, "next_offset": view.next_offset})
            view.channel.basic_ack(batch[-1][0], multiple=True)
            self._on_applied(applied)

    def _serve_requests(self, connection) -> None:
        while True:
            try:
                action, args, future = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(getattr(self, f"_do_{action}")(connection, *args))
            except ViewError as error:
                future.set_exception(error)

    def _do_add(self, connection, name: str, kind: str) -> ViewStatus:
        if kind not in KINDS:
            raise ViewError(f"kind: must be one of {', '.join(KINDS)}")
        if name in self._views:
            raise ViewError(f"name: a view called {name!r} exists")
        if len(self._views) >= self._max_views:
            raise ViewError(f"name: at most {self._max_views} views")
        view = View(name, kind)
        with self._lock:
            self._views[name] = view
        self._subscribe(connection, view)
        return view.status()

    def _do_rebuild(
        self, connection, name: str, source: str = "zero", until_offset: int | None = None
    ) -> ViewStatus:
        """Rebuild a view from offset 0, or from its snapshot's offset with its state.

        With ``until_offset``, the engine times the rebuild, from this request to
        the batch that brings the view to that offset.
        """
        view = self._views.get(name)
        if view is None:
            raise ViewError(f"name: no view called {name!r}")
        snapshot = self._store.load_snapshot(name) if source == "snapshot" else None
        if source == "snapshot" and (snapshot is None or snapshot[0] != view.kind):
            raise ViewError(f"from: view {name!r} has no snapshot")
        started = time.monotonic()
        # Dropping the channel drops its unacked deliveries; the replay reads them again.
        close_stream_channel(connection, view.channel)
        with self._lock:
            if snapshot is None:
                initial, _ = KINDS[view.kind]
                view.state, view.versions, view.next_offset, view.events = initial(), {}, 0, 0
            else:
                _, view.next_offset, view.events, view.state, view.versions = snapshot
            view.rebuild_started = started
            view.rebuild = None
            if until_offset is not None:
                view.rebuild = {
                    "from": source,
                    "start_offset": view.next_offset,
                    "until_offset": until_offset,
                    "read": 0,
                    "seconds": None,
                }
                view.rebuilt_up_to_here()  # a snapshot may already be at the offset
        self._store.save(
            view.name, view.kind, view.next_offset, view.events, view.state, view.versions
        )
        self._subscribe(connection, view)
        return view.status()

    def _do_snapshot(self, connection, name: str) -> ViewStatus:
        """Store the view's state and the offset it has reached, as one snapshot."""
        view = self._views.get(name)
        if view is None:
            raise ViewError(f"name: no view called {name!r}")
        with self._lock:
            self._store.save_snapshot(
                view.name, view.kind, view.next_offset, view.events, view.state, view.versions
            )
        return view.status()

    def _do_drop(self, connection, name: str) -> ViewStatus:
        view = self._views.get(name)
        if view is None:
            raise ViewError(f"name: no view called {name!r}")
        close_stream_channel(connection, view.channel)
        with self._lock:
            del self._views[name]
        self._store.drop(name)
        return view.status()
