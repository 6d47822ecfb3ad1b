"""Turn a proxy's log record into a span of the caller's trace (the wire shape of runtime.spans).

Every number comes from HAProxy: its microsecond stamps when the request and
the response headers passed (``t0``/``t1``), its timers (``Tq`` waiting for
the request, ``Tw`` in queue, ``Tc`` connecting, ``Tr`` the server's answer,
``Ta`` total), retries, termination state, and the span id it gave itself and
wrote into the ``traceparent`` it passed on.
"""

from __future__ import annotations


TRACEPARENT_LENGTH = 55


def _int(value: object, default: int = 0) -> int:
    try:
        return int(str(value).lstrip("+"))
    except (TypeError, ValueError):
        return default


def parse_traceparent(value: str) -> tuple[str, str, bool] | None:
    """Return (trace id, parent span id, sampled) of a W3C traceparent, or None."""
    parts = value.split("-") if isinstance(value, str) else []
    if len(value or "") != TRACEPARENT_LENGTH or len(parts) != 4:
        return None
    _version, trace_id, parent_id, flags = parts
    try:
        sampled = bool(int(flags, 16) & 1)
        int(trace_id, 16), int(parent_id, 16)
    except ValueError:
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id, parent_id, sampled


def record_times_ns(record: dict) -> tuple[int, int]:
    """Return the hop's start and end in Unix nanoseconds, to the microsecond where HAProxy stamped them."""
    accepted_ms = _int(record.get("ts")) * 1000 + _int(record.get("ms"))
    start_us = _int(record.get("t0"), 0) or accepted_ms * 1000
    total_ms = max(_int(record.get("ta"), 0), 0)
    end_us = _int(record.get("t1"), 0) or (accepted_ms + total_ms) * 1000
    return start_us * 1000, max(end_us, start_us) * 1000


def is_error(record: dict) -> bool:
    """Tell whether the hop failed: a 5xx, no status at all, or HAProxy ended it abnormally."""
    status = _int(record.get("st"), -1)
    termination = str(record.get("term") or "--")
    return status >= 500 or status < 0 or termination[:1] not in ("-", "")


def span_of_record(
    record: dict,
    *,
    service: str,
    kind: str,
    name: str,
    attributes: dict | None = None,
    sampled_only: bool = True,
) -> dict | None:
    """Return the span of one logged request, or None when it carried no (sampled) trace."""
    parsed = parse_traceparent(str(record.get("tp") or ""))
    span_id = str(record.get("sid") or "")
    if parsed is None or len(span_id) != 16:
        return None
    trace_id, parent_id, sampled = parsed
    if sampled_only and not sampled:
        return None
    start_ns, end_ns = record_times_ns(record)
    status = _int(record.get("st"), -1)
    retries = str(record.get("rc") or "0")
    values = {
        "http.request.method": record.get("m"),
        "url.path": record.get("p"),
        "http.response.status_code": status,
        "haproxy.frontend": record.get("fe"),
        "haproxy.backend": record.get("be"),
        "haproxy.server": record.get("srv"),
        "haproxy.termination_state": record.get("term"),
        "haproxy.retries": _int(retries),
        "haproxy.redispatched": retries.startswith("+"),
        "haproxy.timers_ms": {
            key: _int(record.get(key), -1) for key in ("tq", "tw", "tc", "tr", "ta")
        },
        "tls": record.get("tls") == "1",
        **(attributes or {}),
    }
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_id": parent_id,
        "service": service,
        "name": name,
        "kind": kind,
        "protocol": "http",
        "start_ns": start_ns,
        "end_ns": end_ns,
        "status": "error" if is_error(record) else "ok",
        "attributes": values,
    }
