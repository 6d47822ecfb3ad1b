"""Rate limits at a proxy with HAProxy stick tables: what they count and how a refusal reads.

A stick table keyed by client (an API key, a claim, the source address)
stores ``http_req_rate(<period>)``: the requests that key made over the
last period, a sliding window HAProxy estimates from the current and the
previous period (freq_ctr), not a token bucket. There is no burst size to
set: a key is over its limit as soon as the window holds more than the
limit. Every request the table tracks counts, refused ones included, so a
client that keeps hammering stays refused until it slows down.
"""

from __future__ import annotations

import math


def table_name(name: str) -> str:
    """Return the backend name that holds one limit's stick table."""
    return f"ratelimit_{name}"


def table_section(*, name: str, period_ms: int, size: int = 100_000) -> list[str]:
    """Return a table-only backend counting each key's requests over ``period_ms``."""
    # Entries outlive two periods, so a key's previous period still weighs in.
    expire_ms = max(period_ms * 2, 1000)
    return [
        f"backend {table_name(name)}",
        f"    stick-table type string len 128 size {size} expire {expire_ms}ms"
        f" store http_req_rate({period_ms}ms)",
        "",
    ]


def key_sample(key: str) -> str:
    """Return the sample expression for a limit's key: ``header:<name>``, ``claim:<var>`` or ``source``.

    ``claim:sub`` reads ``txn.sub``, which the JWT rules (``proxy.jwt``) set.
    """
    kind, _, value = key.partition(":")
    if kind == "header":
        return f"req.hdr({value})"
    if kind == "claim":
        return f"var(txn.{value})"
    if kind == "source":
        return "src"
    raise ValueError(f"unknown rate-limit key {key!r}")


def limit_rules(*, name: str, when: str, key: str, requests: int, period_ms: int) -> list[str]:
    """Return rules that count requests matching ``when`` per key and answer 429 past the limit.

    A request without the key (no such header) is counted by its source
    address instead, so leaving the key out is no way around the limit.
    ``Retry-After`` says two periods: the rate weighs the previous period in,
    so only after two periods of silence is a key's window surely empty (it
    usually drops under the limit sooner; the lesson measures when).
    """
    retry_after = max(1, math.ceil(2 * period_ms / 1000))
    body = (
        '{"error":"rate limited","limit":'
        + str(requests)
        + ',"period_ms":'
        + str(period_ms)
        + ',"rate":%[sc_http_req_rate(0)]}'
    )
    return [
        f"    http-request set-var(txn.rlkey) {key_sample(key)} if {when}",
        f"    http-request set-var(txn.rlkey) src if {when} !{{ var(txn.rlkey) -m found }}",
        f"    http-request track-sc0 var(txn.rlkey) table {table_name(name)} if {when}",
        f"    http-request set-var(txn.rate) sc_http_req_rate(0) if {when}",
        f"    http-request return status 429 content-type application/json lf-string '{body}'"
        f" hdr Retry-After {retry_after} if {when} {{ sc_http_req_rate(0) gt {requests} }}",
    ]
