"""A run's trace, kept with the run: copied from the sandbox when the run ends, replayed, exported.

The sandbox keeps its last spans in Redis only while it lives. A run is listed
long after (the page compares runs of sandboxes gone), so when a run ends its
spans (the ones whose ``run`` is the run's id) are copied into ``RunTrace``,
which lives and dies with the ``Run`` row. Replay in the browser reads them in
the wire shape; the export turns them into OTLP/JSON for any OTLP tool.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from sandbox_services.runtime import client

from .models import Run, RunTrace
from .selectors import run_get_visible

MAX_KEPT_SPANS = 5000
# The sandbox keeps at most this many spans; a run's are among the newest.
REPLAY_LIMIT = 20_000

# OTLP's enums (opentelemetry/proto/trace/v1/trace.proto).
_OTLP_KIND = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_OTLP_STATUS = {"unset": 0, "ok": 1, "error": 2}


def run_trace_keep(*, run: Run, since: int = 0) -> RunTrace | None:
    """Copy the run's spans from its sandbox into the database; merge with what was kept before.

    Called when the run ends and once more a moment later, for spans that were
    still on their way (a service's outbox flushes on its own thread). Returns
    None when the sandbox is gone and nothing was kept.
    """
    try:
        items = client.replay(run.sandbox_id, since=since, limit=REPLAY_LIMIT)
    except Exception:  # Redis away: the run keeps what it has
        items = []
    found = [item for item in items if item.get("run") == run.id]
    trace = RunTrace.objects.filter(run=run).first()
    if not found and trace is None:
        return None
    merged = {span.get("seq"): span for span in (trace.spans if trace else [])}
    for span in found:
        merged[span.get("seq")] = span
    spans = sorted(merged.values(), key=lambda span: span.get("seq") or 0)
    truncated = len(spans) > MAX_KEPT_SPANS or bool(trace and trace.truncated)
    spans = spans[:MAX_KEPT_SPANS]
    trace, _ = RunTrace.objects.update_or_create(
        run=run, defaults={"spans": spans, "truncated": truncated}
    )
    return trace


def run_spans_get_visible(
    *, user: AbstractBaseUser | AnonymousUser, run_id: str
) -> tuple[Run, list[dict], bool] | None:
    """Return (run, its kept spans oldest first, truncated) for anyone who may watch the run."""
    run = run_get_visible(user=user, run_id=run_id)
    if run is None:
        return None
    trace = RunTrace.objects.filter(run=run).first()
    if trace is None and run.sandbox.is_active:
        trace = run_trace_keep(run=run)  # still in the sandbox: copy it now
    if trace is None:
        return run, [], False
    return run, list(trace.spans), trace.truncated


def run_trace_get_owned(
    *, user: AbstractBaseUser | AnonymousUser, run_id: str
) -> tuple[Run, list[dict]] | None:
    """Return the run and its spans only to the run's owner (an export leaves the lab)."""
    found = run_spans_get_visible(user=user, run_id=run_id)
    if found is None or found[0].sandbox.owner_id != getattr(user, "pk", None):
        return None
    return found[0], found[1]


def _otlp_value(value: Any) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 is a string in protobuf's JSON
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_otlp_value(item) for item in value]}}
    return {"stringValue": json.dumps(value, default=str)}


def _otlp_attributes(attributes: dict) -> list[dict]:
    return [
        {"key": str(key), "value": _otlp_value(value)}
        for key, value in attributes.items()
        if value is not None
    ]


def _otlp_span(span: dict) -> dict:
    attributes = dict(span.get("attributes") or {})
    attributes["lab.run"] = span.get("run")
    attributes["lab.seq"] = span.get("seq")
    if span.get("peer"):
        attributes["lab.peer"] = span["peer"]
    start = int(span.get("start_ns") or 0)
    otlp = {
        # OTLP/JSON writes trace and span ids as hex, not as protobuf's base64.
        "traceId": str(span.get("trace_id") or ""),
        "spanId": str(span.get("span_id") or ""),
        "name": str(span.get("name") or ""),
        "kind": _OTLP_KIND.get(str(span.get("kind")), 0),
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(int(span.get("end_ns") or start)),
        "attributes": _otlp_attributes(attributes),
        "status": {"code": _OTLP_STATUS.get(str(span.get("status")), 0)},
    }
    if span.get("parent_id"):
        otlp["parentSpanId"] = str(span["parent_id"])
    return otlp


def otlp_json(*, spans: list[dict], sandbox_id: str) -> dict:
    """Return spans in the wire shape as an OTLP/JSON ExportTraceServiceRequest, one resource a service."""
    by_service: dict[str, list[dict]] = {}
    for span in spans:
        by_service.setdefault(str(span.get("service") or "unknown"), []).append(_otlp_span(span))
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": _otlp_attributes(
                        {"service.name": service, "lab.sandbox": sandbox_id}
                    )
                },
                "scopeSpans": [
                    {"scope": {"name": "microservices-communication-lab"}, "spans": items}
                ],
            }
            for service, items in by_service.items()
        ]
    }
