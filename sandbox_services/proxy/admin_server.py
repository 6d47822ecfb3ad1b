"""What every proxy-owning service serves beside its proxy: an untraced admin API and its spans.

The mesh's control plane and the gateway each own HAProxy processes, turn
their log lines into spans and answer the lab over HTTP. The pieces they share
live here, so there is one of each.
"""

from __future__ import annotations

from collections import deque

from aiohttp import web

from sandbox_services.runtime import tracing

SPANS_KEPT = 5000
SPANS_KEY = web.AppKey("proxy_spans", deque)


def untraced_application() -> web.Application:
    """Return an aiohttp application the lab's tracing does not instrument.

    The runtime swaps in OpenTelemetry's traced Application. A proxy owner's
    admin API is the lab's plumbing (the page and the experiments call it), not
    the learner's traffic, so it is served by aiohttp's class underneath.
    """
    plain = next(cls for cls in web.Application.__mro__ if cls.__module__ == "aiohttp.web_app")
    return plain()


class SpanSink:
    """Keep the proxy's spans for the admin API and send each to the sandbox's trace."""

    def __init__(self, kept: int = SPANS_KEPT) -> None:
        self.kept: deque = deque(maxlen=kept)
        self._writer = tracing.outbox_writer()

    def put(self, span: dict) -> None:
        """Keep one span and hand it to the outbox, as a traced process's own spans go."""
        self.kept.append(span)
        if self._writer is not None:
            self._writer.put_span(span)

    def serve(self, app: web.Application, path: str) -> None:
        """Serve the kept spans at ``path`` (``?trace_id=`` narrows them)."""
        app[SPANS_KEY] = self.kept
        app.router.add_get(path, spans)


async def spans(request: web.Request) -> web.Response:
    wanted = set(request.query.getall("trace_id", []))
    return web.json_response(
        [span for span in request.app[SPANS_KEY] if not wanted or span["trace_id"] in wanted]
    )


def invalid_response(error: Exception) -> web.Response:
    """Answer 400 in the lab's error shape for a refused policy (``error.errors`` names fields)."""
    return web.json_response(
        {"detail": str(error), "errors": getattr(error, "errors", {})}, status=400
    )
