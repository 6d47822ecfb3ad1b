"""Turn each experiment's measured figures into the result the page draws (RESULT_SHAPE)."""

from __future__ import annotations

from .knobs import (
    ISTIO_AMBIENT_L4_P90_MS,
    ISTIO_FIGURES_SOURCE,
    ISTIO_SIDECAR_P90_MS,
)


def _ms(microseconds: float | None) -> float | None:
    return None if microseconds is None else round(microseconds / 1000, 3)


def overhead(figures: dict) -> dict:
    off, on = figures["latency_us"]["mesh off"], figures["latency_us"]["mesh on"]
    added = {
        q: _ms(on[q] - off[q]) if on[q] is not None and off[q] is not None else None
        for q in ("p50", "p90", "p99")
    }
    cpu = figures["cpu_ms_per_1000"]
    memory = figures["memory_kb"]
    per_sidecar_mb = [round(item["pss"] / 1024, 1) for item in memory.values()]
    errors = sum(figures["errors"].values())
    return {
        "headline": (
            f"Two sidecar hops with mTLS ({figures['mtls']}) added {added['p50']} ms at p50 and"
            f" {added['p90']} ms at p90; Istio publishes +{ISTIO_SIDECAR_P90_MS} ms p90 for its sidecars (1.16.2)."
        ),
        "summary": [
            {"label": "added p50", "value": added["p50"], "unit": "ms"},
            {"label": "added p90", "value": added["p90"], "unit": "ms"},
            {"label": "added p99", "value": added["p99"], "unit": "ms"},
            {
                "label": "client sidecar CPU / 1000 req",
                "value": round(cpu.get("client-0", 0), 1),
                "unit": "ms",
            },
            {
                "label": "backend sidecar CPU / 1000 req",
                "value": round(cpu.get("backend-0", 0), 1),
                "unit": "ms",
            },
            {
                "label": "memory per sidecar (PSS)",
                "value": max(per_sidecar_mb or [0]),
                "unit": "MB",
            },
        ],
        "charts": [
            {
                "title": "Latency of the same call, direct and through two sidecars",
                "type": "bar",
                "x_label": "percentile",
                "y_label": "ms",
                "categories": ["p50", "p90", "p99"],
                "series": [
                    {"name": "mesh off", "values": [_ms(off[q]) for q in ("p50", "p90", "p99")]},
                    {
                        "name": "mesh on (mTLS, tracing)",
                        "values": [_ms(on[q]) for q in ("p50", "p90", "p99")],
                    },
                ],
            },
            {
                "title": "Added latency at p90: ours, measured here, beside Istio's published figures",
                "type": "bar",
                "x_label": "",
                "y_label": "ms",
                "categories": [
                    "this lab (HAProxy sidecars)",
                    "Istio 1.16.2 sidecar (theirs)",
                    "Istio 1.22 ambient L4 (theirs)",
                ],
                "series": [
                    {
                        "name": "added p90",
                        "values": [added["p90"], ISTIO_SIDECAR_P90_MS, ISTIO_AMBIENT_L4_P90_MS],
                    }
                ],
            },
        ],
        "table": {
            "columns": ["mode", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"],
            "rows": [
                [name, figures["requests"][name], figures["errors"][name]]
                + [_ms(values[q]) for q in ("p50", "p90", "p99", "max")]
                for name, values in figures["latency_us"].items()
            ],
        },
        "notes": [
            f"Both modes ran in the same seconds, request by request in turn, at a fixed total rate of"
            f" {figures['params']['rate']} requests/s, so the machine's state is the same for both.",
            "Mesh on: load generator -> its sidecar (plaintext, loopback) -> mTLS -> backend's sidecar ->"
            " backend. Mesh off: load generator -> backend.",
            f"{figures['params']['traced_percent']:g}% of requests were traced end to end. The client's"
            " sidecar logged every request (the edge's counts) and the backend's every traced one: the"
            " spans' raw material.",
            f"Sidecar CPU is per 1,000 requests through the mesh, from each HAProxy process's own CPU clock."
            f" The control plane spent {figures['control_plane_cpu_ms_per_1000']:.1f} ms per 1,000 turning"
            " log lines into spans: the telemetry's cost, paid off the request path.",
            f"This sandbox runs {figures['sidecars']} sidecars (each a HAProxy master and worker) and"
            f" {figures['config_lines']} lines of generated configuration: the operational cost, counted.",
            f"Istio's figures are theirs, not measured here: {ISTIO_FIGURES_SOURCE}. Envoy does more per"
            " request (HTTP/2 to the peer, telemetry in-process); HAProxy here stands in for it.",
        ],
        "figures": figures,
        "ok": errors == 0,
    }


def mtls(figures: dict) -> dict:
    mode = figures["params"]["mode"]
    plaintext = figures["plaintext"]
    expected_refusal = mode == "STRICT"
    verdict = "refused" if not plaintext["accepted"] else f"accepted ({plaintext.get('status')})"
    rotation = figures["rotation"]
    rows = [
        [
            "plaintext client -> backend sidecar",
            verdict,
            "; ".join(r["reason"] for r in figures["refusals"]) or "-",
        ],
    ]
    for identity in figures["identities"]:
        rows.append(
            [
                f"{identity['service']} ({identity['kind']})",
                "mTLS" if identity["mtls"] else "plaintext",
                identity["peer_spiffe_id"] or "-",
            ]
        )
    summary = [{"label": "plaintext client", "value": verdict}]
    notes = [
        "The plaintext client dialled the backend sidecar's inbound port directly, as a workload outside the mesh would.",
        "The peer identities come from the certificates the sidecars verified: HAProxy logs the peer"
        " certificate's serial, and the control plane's CA names the SPIFFE ID it issued under it.",
        "In this lab the app's own port is still reachable on 127.0.0.1; in Kubernetes the pod's iptables"
        " rules send every inbound connection through the sidecar, so STRICT cannot be bypassed that way.",
    ]
    ok = plaintext["accepted"] != expected_refusal
    if rotation is not None:
        summary.append({"label": "requests during rotation", "value": rotation["requests"]})
        summary.append({"label": "failed during rotation", "value": rotation["failed"]})
        loaded = {
            sidecar: serial
            for item in rotation["rotated"].values()
            for sidecar, serial in item["loaded_by_sidecars"].items()
        }
        notes.append(
            "Rotation: every workload got a new key and certificate, swapped into its sidecar in memory"
            " with the runtime API (set ssl cert, commit ssl cert): no restart, no reload. HAProxy now"
            f" serves serials {', '.join(sorted(set(loaded.values())))[:200]}."
        )
        ok = ok and rotation["failed"] == 0
    return {
        "headline": (
            f"PeerAuthentication {mode}: a plaintext client was {verdict}"
            + (
                f"; {rotation['failed']} of {rotation['requests']} requests failed while every certificate was rotated."
                if rotation
                else "."
            )
        ),
        "summary": summary,
        "table": {"columns": ["who", "transport", "peer identity / refusal"], "rows": rows},
        "notes": notes,
        "figures": figures,
        "ok": ok,
    }


def _percent(part: float, whole: float) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def load_balancing(figures: dict) -> dict:
    runs = figures["runs"]
    slow_ms = figures["params"]["slow_ms"]
    rows = []
    for balancer, run in runs.items():
        own = run["by_replica_own_count"]
        total = sum(own.values()) or 1
        rows.append(
            [balancer]
            + [f"{own.get(str(r), 0)} ({_percent(own.get(str(r), 0), total)}%)" for r in range(3)]
            + [round(run["latency_ms"][q] or 0, 2) for q in ("p50", "p90", "p99")]
            + [round(run["elapsed_s"], 2), run["failed"]]
        )
    rr, lr = runs["ROUND_ROBIN"], runs["LEAST_REQUEST"]
    share = {
        name: _percent(
            run["by_replica_own_count"].get("2", 0), sum(run["by_replica_own_count"].values())
        )
        for name, run in runs.items()
    }
    return {
        "headline": (
            f"With replica 2 slower by {slow_ms} ms, ROUND_ROBIN sent it {share['ROUND_ROBIN']}% of requests"
            f" (p99 {rr['latency_ms']['p99']:.1f} ms); LEAST_REQUEST sent it {share['LEAST_REQUEST']}%"
            f" (p99 {lr['latency_ms']['p99']:.1f} ms)."
        ),
        "summary": [
            {
                "label": "slow replica's share, ROUND_ROBIN",
                "value": share["ROUND_ROBIN"],
                "unit": "%",
            },
            {
                "label": "slow replica's share, LEAST_REQUEST",
                "value": share["LEAST_REQUEST"],
                "unit": "%",
            },
            {
                "label": "p90 ROUND_ROBIN",
                "value": round(rr["latency_ms"]["p90"] or 0, 2),
                "unit": "ms",
            },
            {
                "label": "p90 LEAST_REQUEST",
                "value": round(lr["latency_ms"]["p90"] or 0, 2),
                "unit": "ms",
            },
            {
                "label": "p99 ROUND_ROBIN",
                "value": round(rr["latency_ms"]["p99"] or 0, 2),
                "unit": "ms",
            },
            {
                "label": "p99 LEAST_REQUEST",
                "value": round(lr["latency_ms"]["p99"] or 0, 2),
                "unit": "ms",
            },
            {
                "label": "seconds for all, ROUND_ROBIN",
                "value": round(rr["elapsed_s"], 2),
                "unit": "s",
            },
            {
                "label": "seconds for all, LEAST_REQUEST",
                "value": round(lr["elapsed_s"], 2),
                "unit": "s",
            },
        ],
        "charts": [
            {
                "title": "Requests each replica served (its own count)",
                "type": "bar",
                "x_label": "replica",
                "y_label": "requests",
                "categories": ["backend-0", "backend-1", "backend-2 (slow)"],
                "series": [
                    {
                        "name": name,
                        "values": [run["by_replica_own_count"].get(str(r), 0) for r in range(3)],
                    }
                    for name, run in runs.items()
                ],
            }
        ],
        "table": {
            "columns": [
                "algorithm",
                "backend-0",
                "backend-1",
                "backend-2 (slow)",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "seconds",
                "failed",
            ],
            "rows": rows,
        },
        "notes": [
            "Counts are the replicas' own; HAProxy's per-server counters agreed: "
            + "; ".join(f"{name}: {run['by_server_haproxy']}" for name, run in runs.items()),
            "ROUND_ROBIN ignores how busy a replica is, so the slow one gets its third and every"
            " request sent there waits. LEAST_REQUEST (HAProxy's leastconn: fewest requests in flight;"
            " Envoy's picks the better of two random choices) sends less to a replica that holds on to requests.",
            f"{figures['params']['concurrency']} requests in flight at once: with one at a time,"
            " every replica is idle when chosen and both algorithms behave alike.",
        ],
        "figures": figures,
        "ok": all(run["failed"] == 0 for run in runs.values()),
    }


def outlier_detection(figures: dict) -> dict:
    timeline = figures["timeline"]
    ejected = next((t for t, status, *_ in timeline if status.startswith("DOWN")), None)
    readmitted = next(
        (
            t
            for t, status, *_ in timeline
            if ejected is not None and t > ejected and status.startswith("UP")
        ),
        None,
    )
    transitions = timeline[-1][3] if timeline else 0
    buckets: dict[float, list[int]] = {}
    for sent, status, _ in figures["requests"]:
        bucket = round(int(sent / 0.25) * 0.25, 2)
        counts = buckets.setdefault(bucket, [0, 0])
        counts[0] += 1
        counts[1] += status != 200
    error_series = [
        [t, round(100 * errors / total, 1)] for t, (total, errors) in sorted(buckets.items())
    ]
    state_series = [[t, 0 if status.startswith("DOWN") else 1] for t, status, *_ in timeline]
    failed = sum(1 for _, status, _ in figures["requests"] if status != 200)
    return {
        "headline": (
            f"backend-1 failed from {figures['failed_at_s']} s; HAProxy ejected it at {ejected} s and readmitted it"
            f" at {readmitted} s after probing; the caller saw {failed} errors in {len(figures['requests'])} requests."
        ),
        "summary": [
            {"label": "ejected at", "value": ejected, "unit": "s"},
            {"label": "readmitted at", "value": readmitted, "unit": "s"},
            {"label": "times ejected (chkdown)", "value": transitions},
            {"label": "errors seen by the caller", "value": failed},
            {"label": "503s the replica sent", "value": figures["replica_1_failed"]},
        ],
        "charts": [
            {
                "title": "Caller's error rate (%, per 250 ms) and backend-1 in rotation (1) or ejected (0)",
                "type": "line",
                "x_label": "s",
                "y_label": "",
                "series": [
                    {"name": "error rate %", "points": error_series},
                    {"name": "backend-1 in rotation", "points": state_series},
                ],
            }
        ],
        "table": {
            "columns": ["s", "HAProxy status", "last check", "times marked down"],
            "rows": [
                row
                for index, row in enumerate(timeline)
                if index == 0 or row[1].split()[0] != timeline[index - 1][1].split()[0]
            ],
        },
        "notes": [
            "The state is HAProxy's own (show stat on the client's sidecar), polled every 100 ms; nothing"
            ' here computes it. "DOWN 5/20" is HAProxy saying the ejected replica has passed 5 of the 20'
            " probes it needs to come back: the probing phase.",
            f"The replica healed at {figures['healed_at_s']} s. Readmission came from a health check after"
            " baseEjectionTime; if it still failed, it was ejected again after"
            f" {figures['params']['consecutive_errors']} more errors. Envoy readmits without a probe and"
            " doubles the ejection time each time.",
            "Unlike a Hystrix-style breaker, which guards the caller's whole dependency and opens for"
            " every replica at once, outlier detection ejects one replica from the pool and keeps"
            " sending to the others.",
        ],
        "figures": figures,
        "ok": ejected is not None and readmitted is not None,
    }


def connection_pool(figures: dict) -> dict:
    params = figures["params"]
    limited, open_ = figures["parts"]["with the limit"], figures["parts"]["without a limit"]
    expected_refused = max(0, params["burst"] - params["max_connections"] - params["max_pending"])
    rows = [
        [
            label,
            part["calls"],
            part["caller_ok"],
            part["caller_503"],
            part["haproxy_denied"],
            part["haproxy_queue_max"],
            part["spans_queued"],
            part["spans_refused"],
            part["backend_max_in_flight"],
            round(part["latency_ms"]["p50"] or 0, 1),
            round(part["latency_ms"]["max"] or 0, 1),
        ]
        for label, part in figures["parts"].items()
    ]
    return {
        "headline": (
            f"{params['burst']} calls at once against maxConnections {params['max_connections']} and"
            f" http1MaxPendingRequests {params['max_pending']}: HAProxy queued {limited['spans_queued']}"
            f" and refused {limited['spans_refused']} with 503 at once; without the limit all"
            f" {open_['caller_ok']} were served, {open_['backend_max_in_flight']} in flight at the backend."
        ),
        "summary": [
            {"label": "refused with 503, with the limit", "value": limited["spans_refused"]},
            {"label": "queued, with the limit", "value": limited["spans_queued"]},
            {
                "label": "most in flight at the backend, with the limit",
                "value": limited["backend_max_in_flight"],
            },
            {
                "label": "most in flight at the backend, without",
                "value": open_["backend_max_in_flight"],
            },
            {
                "label": "slowest call, with the limit",
                "value": round(limited["latency_ms"]["max"] or 0, 1),
                "unit": "ms",
            },
            {
                "label": "slowest call, without",
                "value": round(open_["latency_ms"]["max"] or 0, 1),
                "unit": "ms",
            },
        ],
        "charts": [
            {
                "title": "What became of the burst's calls",
                "type": "bar",
                "x_label": "",
                "y_label": "calls",
                "categories": ["served at once", "queued, then served", "refused (503)"],
                "series": [
                    {
                        "name": label,
                        "values": [
                            part["caller_ok"] - part["spans_queued"],
                            part["spans_queued"],
                            part["spans_refused"],
                        ],
                    }
                    for label, part in figures["parts"].items()
                ],
            }
        ],
        "table": {
            "columns": [
                "part",
                "calls",
                "200",
                "503 seen by the caller",
                "HAProxy denied (dreq)",
                "HAProxy peak queue (qmax)",
                "spans that waited (Tw > 0)",
                "spans ended PR",
                "most in flight at the backend",
                "p50 ms",
                "max ms",
            ],
            "rows": rows,
        },
        "notes": [
            "The evidence is HAProxy's own: its stats counters on the client's sidecar (dreq: requests"
            " it denied; qmax: the longest its queue got) and each call's log line, read back as a span"
            " (Tw: milliseconds spent in the queue; termination state PR: refused by the proxy before"
            " any server was tried). The backend's own count of calls in flight shows the limit held.",
            f"Envoy would answer the same: {params['max_connections']} calls run, {params['max_pending']}"
            f" wait for one of them, and the other {expected_refused} overflow with 503 at once (its UO"
            " flag), instead of joining a queue that grows while the backend is slow.",
            f"The backend held each call for {params['work_ms']} ms, so the queued calls waited about"
            f" that long (queue wait p50 {limited['spans_queue_wait_ms']['p50']} ms) before being served.",
            "maxConnections counts for the whole host in Envoy; HAProxy limits each server, so the"
            " control plane shares it among the running replicas (one here). Retries were off, so each"
            " refusal reached the caller as HAProxy gave it.",
        ],
        "figures": figures,
        "ok": (
            limited["spans_refused"] == limited["caller_503"] == limited["haproxy_denied"]
            and limited["backend_max_in_flight"] <= params["max_connections"]
            and open_["caller_ok"] == open_["calls"]
        ),
    }


def retries(figures: dict) -> dict:
    rescue, storm, timeouts = figures["rescue"], figures["storm"], figures["timeouts"]
    rows = []
    for label, run in rescue.items():
        rows.append(
            [
                f"flaky replica, {label}",
                f"{_percent(run['caller_failed'], run['caller_requests'])}% of {run['caller_requests']}",
                f"{_percent(run['flaky_replica_failed'], run['flaky_replica_received'])}% of {run['flaky_replica_received']}",
                run["backend_received_total"],
                run["haproxy_retries"],
            ]
        )
    for label, run in storm.items():
        rows.append(
            [
                f"failing backend, {label}",
                f"{_percent(run['client_failed'], run['client_requests'])}% of {run['client_requests']}",
                "100%",
                run["backend_received"],
                f"x{run['amplification']}",
            ]
        )
    attempts = figures["params"]["attempts"]
    with_retries = next(run for label, run in rescue.items() if label != "no retries")
    without = rescue["no retries"]
    two = storm["retries at two hops"]
    notes = [
        "Caller error rates are what the load generator saw; replica figures are the replica's own"
        " counters; retries are HAProxy's own count (wretr).",
        f"A retry storm: with {attempts} retries at each of two hops, one request can reach the failing"
        f" backend (1+{attempts}) x (1+{attempts}) = {(1 + attempts) ** 2} times. Envoy's retry budget"
        " (and Finagle's) caps retries at a share of live traffic; HAProxy has none, so retry at one hop.",
    ]
    for label, run in timeouts.items():
        notes.append(
            f"{label}: status {run['statuses']}, {run['elapsed_ms']['p50']:.0f} ms to answer (p50),"
            f" backend received {run['backend_received']} for {run['calls']} calls."
        )
    return {
        "headline": (
            f"Retries cut the caller's errors from {_percent(without['caller_failed'], without['caller_requests'])}%"
            f" to {_percent(with_retries['caller_failed'], with_retries['caller_requests'])}% while the flaky"
            f" replica still failed {_percent(with_retries['flaky_replica_failed'], with_retries['flaky_replica_received'])}%;"
            f" with retries at two hops each request hit the failing backend {two['amplification']} times."
        ),
        "summary": [
            {
                "label": "caller errors, no retries",
                "value": _percent(without["caller_failed"], without["caller_requests"]),
                "unit": "%",
            },
            {
                "label": "caller errors, with retries",
                "value": _percent(with_retries["caller_failed"], with_retries["caller_requests"]),
                "unit": "%",
            },
            {
                "label": "amplification, one hop",
                "value": storm["retries at one hop"]["amplification"],
            },
            {"label": "amplification, two hops", "value": two["amplification"]},
        ],
        "table": {
            "columns": ["case", "caller errors", "replica errors", "backend received", "retries"],
            "rows": rows,
        },
        "notes": notes,
        "figures": figures,
        "ok": with_retries["caller_failed"] <= without["caller_failed"],
    }


def fault_injection(figures: dict) -> dict:
    params = figures["params"]
    return {
        "headline": (
            f"By policy alone, {figures['spans_delayed']} of {figures['requests']} calls were delayed"
            f" {params['delay_ms']} ms and {figures['spans_aborted']} aborted with 503: the client's sidecar"
            " spans say which, and the aborted ones never reached the backend."
        ),
        "summary": [
            {"label": "delayed (spans)", "value": figures["spans_delayed"]},
            {"label": "aborted (spans)", "value": figures["spans_aborted"]},
            {"label": "503s the caller saw", "value": figures["caller_503"]},
            {"label": "requests the backend received", "value": figures["backend_received"]},
        ],
        "table": {
            "columns": ["", "count", "sidecar span p50 ms"],
            "rows": [
                [
                    "delayed",
                    figures["spans_delayed"],
                    round(figures["delayed_span_ms"]["p50"] or 0, 2),
                ],
                ["aborted", figures["spans_aborted"], "-"],
                [
                    "untouched",
                    figures["spans"] - figures["spans_delayed"] - figures["spans_aborted"],
                    round(figures["other_span_ms"]["p50"] or 0, 2),
                ],
            ],
        },
        "notes": [
            f"Asked for: delay {params['delay_percent']}%, abort {params['abort_percent']}%; each draw is"
            " independent, so the counts scatter around those shares.",
            f"{figures['requests']} sent - {figures['spans_aborted']} aborted = "
            f"{figures['requests'] - figures['spans_aborted']}; the backend counted {figures['backend_received']}.",
            "The fault lives in the caller's sidecar (outbound), as Envoy's fault filter does for a"
            " VirtualService: no application changed, and other callers of the backend are untouched.",
        ],
        "figures": figures,
        "ok": figures["backend_received"] == figures["requests"] - figures["spans_aborted"],
    }


def trace_propagation(figures: dict) -> dict:
    traces = figures["traces"]
    calls = figures["params"]["calls"]
    forwarded, dropped = traces["forwarded"], traces["not forwarded"]
    joined = sum(1 for services in forwarded if "frontend" in services and "backend" in services)
    rows = [
        [label, len(items), " | ".join(", ".join(services) for services in items[:4])]
        for label, items in traces.items()
    ]
    return {
        "headline": (
            f"{calls} calls with the frontend forwarding traceparent made {len(forwarded)} traces;"
            f" the same calls without it made {len(dropped)}: the sidecars cannot join what the app drops."
        ),
        "summary": [
            {"label": "traces, forwarded", "value": len(forwarded)},
            {"label": "traces, not forwarded", "value": len(dropped)},
        ],
        "table": {"columns": ["frontend", "traces", "services per trace"], "rows": rows},
        "notes": [
            "Each sidecar continues the trace of the request it carries, but the frontend's outgoing call"
            " is a new request: only the app knows it was caused by the incoming one. Istio's docs say the"
            " same: applications must forward the trace headers.",
            "In the broken case the first trace ends at the frontend, and a second one starts at its call to"
            " the backend, with no parent.",
        ],
        "figures": figures,
        "ok": len(forwarded) == calls and joined == calls and len(dropped) == 2 * calls,
    }


def live_policy(figures: dict) -> dict:
    failed = len(figures["failed"])
    reloads = sum(len(change["changed"]) for change in figures["changes"])
    slowest = max(
        (ms for change in figures["changes"] for ms in change["reload_ms"].values()), default=0
    )
    diff_text = "\n".join(figures["last_diff"].values())
    return {
        "headline": (
            f"{len(figures['changes'])} policy changes ({reloads} sidecar reloads) under"
            f" {figures['params']['rate']} requests/s across two hops: {failed} of {figures['requests']} requests failed."
        ),
        "summary": [
            {"label": "failed requests", "value": failed},
            {"label": "sidecar reloads", "value": reloads},
            {"label": "slowest reload", "value": slowest, "unit": "ms"},
        ],
        "table": {
            "columns": ["version", "sidecars changed", "applied in ms"],
            "rows": [
                [c["version"], ", ".join(c["changed"]), c["applied_in_ms"]]
                for c in figures["changes"]
            ],
        },
        "notes": [
            "Each change: the control plane validated the YAML, rendered every sidecar's configuration,"
            " asked HAProxy to check it, and reloaded only the sidecars whose file changed: a new worker"
            " takes the listening sockets while the old one finishes what it carries.",
            "The last change, as a diff of generated configuration:",
            diff_text[:4000],
        ],
        "figures": {key: value for key, value in figures.items() if key != "last_diff"},
        "diff": figures["last_diff"],
        "ok": failed == 0,
    }
