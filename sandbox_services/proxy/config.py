"""Pieces every lab HAProxy configuration shares: global section, defaults, log line, trace rules.

A lesson renders the rest (its listeners, backends, policies) and joins them.
The log line is JSON written by hand (2.6 has no JSON encoder for log-format):
one datagram a request to the unix socket the lab reads, carrying HAProxy's
timers, retries, termination state, the incoming ``traceparent``, the span id
this hop gave itself, the peer certificate's serial and microsecond stamps
(``date(0,us)``) taken when the request and the response headers passed.
"""

from __future__ import annotations

from pathlib import Path

# Each %[...] sample is quoted: a sample that cannot be fetched (no TLS on this
# connection, a request refused before the rules ran) logs as "" and the line
# stays valid JSON.
LOG_FORMAT_FIELDS = (
    ('"w"', '"{workload}"'),
    ('"fe"', '"%f"'),
    ('"be"', '"%b"'),
    ('"srv"', '"%s"'),
    ('"ts"', "%Ts"),
    ('"ms"', '"%ms"'),
    ('"t0"', '"%[var(txn.t0)]"'),
    ('"t1"', '"%[var(txn.t1)]"'),
    ('"tq"', "%Tq"),
    ('"tw"', "%Tw"),
    ('"tc"', "%Tc"),
    ('"tr"', "%Tr"),
    ('"ta"', "%Ta"),
    ('"st"', "%ST"),
    ('"rc"', '"%rc"'),
    ('"term"', '"%tsc"'),
    ('"tp"', '"%[var(txn.tp)]"'),
    ('"sid"', '"%[var(txn.sid)]"'),
    ('"tls"', '"%[ssl_fc]"'),
    ('"btls"', '"%[ssl_bc]"'),
    ('"serial"', '"%[ssl_c_serial,hex]"'),
    ('"sserial"', '"%[ssl_s_serial,hex]"'),
    ('"fault"', '"%[var(txn.fault)]"'),
    ('"m"', '"%HM"'),
    ('"p"', '"%{+E}HP"'),
)


def log_format(workload: str, *, extra_fields: tuple[tuple[str, str], ...] = ()) -> str:
    """Return the ``log-format`` value (already quoted for the config file) for one proxy.

    ``extra_fields`` adds (key, value) pairs written as ``LOG_FORMAT_FIELDS`` are
    (an edge proxy logs its route, its auth verdict and its rate-limit count).
    """
    body = ",".join(f"{key}:{value}" for key, value in (*LOG_FORMAT_FIELDS, *extra_fields))
    body = "{" + body.replace("{workload}", workload) + "}"
    return '"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"'


def error_log_format(workload: str) -> str:
    """Return the ``error-log-format`` for connections that never became a request (a TLS refusal)."""
    body = (
        '{"w":"' + workload + '","event":"connection-error","fe":"%f","ts":%Ts,"ms":"%ms",'
        '"err":"%[fc_err_str]","ssl_err":"%[ssl_fc_err_str]","client":"%ci:%cp"}'
    )
    return '"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"'


def global_section(*, stats_socket: Path, log_socket: Path, threads: int = 1) -> list[str]:
    """Return the global section: one thread, the admin stats socket, logs to the lab's socket.

    Log lines go through a ring buffer that HAProxy streams to ``log_socket``
    (a unix stream socket the lab listens on), one line each. A datagram
    socket would lose lines in any burst: Linux queues only
    net.unix.max_dgram_qlen (10) datagrams for a reader that is busy.
    """
    return [
        "global",
        f"    nbthread {threads}",
        f"    stats socket {stats_socket} mode 600 level admin",
        "    stats timeout 10s",
        "    log ring@lablog len 4096 local0",
        "    ssl-server-verify required",
        # An old worker finishing requests after a reload ends by this time at the latest.
        "    hard-stop-after 15s",
        "    tune.ssl.default-dh-param 2048",
        "",
        "ring lablog",
        "    format raw",  # the line is the JSON and nothing else (no syslog header)
        "    maxlen 4096",
        "    size 1048576",
        "    timeout connect 1s",
        "    timeout server 30s",
        f"    server lab unix@{log_socket}",
        "",
    ]


def defaults_section(
    *,
    workload: str,
    connect_timeout_ms: int = 1000,
    extra_log_fields: tuple[tuple[str, str], ...] = (),
) -> list[str]:
    """Return the defaults: HTTP mode, the JSON log line, generous client timeouts."""
    return [
        "defaults",
        "    mode http",
        "    log global",
        f"    log-format {log_format(workload, extra_fields=extra_log_fields)}",
        f"    error-log-format {error_log_format(workload)}",
        f"    timeout connect {connect_timeout_ms}ms",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout http-keep-alive 30s",
        "    timeout http-request 10s",
        # A reload must lose no request: by default the old worker closes idle
        # client connections at once, and a client sending on one at that moment
        # gets no answer. With this it answers their next request, marked
        # "Connection: close", then closes.
        "    option idle-close-on-response",
    ]


def trace_rules() -> list[str]:
    """Return the http-request/response rules that make this hop a span of the caller's trace.

    The hop reads the incoming ``traceparent``, takes a fresh span id, and passes
    ``traceparent`` on with that id as the parent, as Envoy does; it stamps the
    time (microseconds) when the request and when the response headers pass.
    """
    return [
        "    http-request set-var(txn.t0) date(0,us)",
        "    http-request set-var(txn.tp) req.hdr(traceparent)",
        "    http-request set-var(txn.sid) uuid,regsub(-,,g),bytes(0,16) if { var(txn.tp) -m found }",
        "    http-request set-header traceparent"
        " 00-%[var(txn.tp),field(2,-)]-%[var(txn.sid)]-%[var(txn.tp),field(4,-)]"
        " if { var(txn.tp) -m len 55 }",
        "    http-response set-var(txn.t1) date(0,us)",
    ]


LUA_DIRECTORY = Path(__file__).resolve().parent / "lua"


def lua_load(script: str) -> str:
    """Return the global ``lua-load`` line of one of this package's Lua scripts."""
    return f"    lua-load {LUA_DIRECTORY / script}"


def fault_rules(
    *, delay_percent: float, delay_ms: int, abort_percent: float, abort_status: int
) -> list[str]:
    """Return http-request rules that delay and/or abort a share of requests (percent, 2 decimals).

    As Envoy's fault filter: the delay first, then the abort, each its own draw
    in ten-thousandths ("10%" is ``rand(10000)`` below 1000). The log line
    marks a delayed request ``fault=delay`` and an aborted one ``fault=abort``,
    so the spans show which. Delays need ``lua_load("delay.lua")`` in the
    global section.
    """
    rules: list[str] = []
    if delay_percent > 0 and delay_ms > 0:
        threshold = round(delay_percent * 100)
        rules += [
            "    http-request set-var(txn.roll) rand(10000)",
            f"    http-request set-var(txn.fault) str(delay) if {{ var(txn.roll) -m int lt {threshold} }}",
            f"    http-request lua.lab_delay {delay_ms} if {{ var(txn.roll) -m int lt {threshold} }}",
        ]
    if abort_percent > 0:
        threshold = round(abort_percent * 100)
        rules += [
            "    http-request set-var(txn.roll) rand(10000)",
            f"    http-request set-var(txn.fault) str(abort) if {{ var(txn.roll) -m int lt {threshold} }}",
            f"    http-request return status {abort_status} content-type text/plain"
            f' string "fault injected by policy" if {{ var(txn.roll) -m int lt {threshold} }}',
        ]
    return rules
