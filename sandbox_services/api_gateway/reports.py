"""Turn each experiment's measured figures into the result the page draws (RESULT_SHAPE)."""

from __future__ import annotations

from sandbox_services.runtime.sample_stats import summary


def _ms(microseconds: float | None) -> float | None:
    return None if microseconds is None else round(microseconds / 1000, 3)


# --- 1. routing -------------------------------------------------------------------------


def routing(figures: dict) -> dict:
    calls = figures["calls"]
    rows = []
    for item in calls:
        span = item.get("gateway_span") or {}
        body = item.get("body") if isinstance(item.get("body"), dict) else {}
        version = body.get("version") or (body.get("order") or {}).get("version") or ""
        rows.append(
            [
                item["call"],
                span.get("route") or "(no span)",
                span.get("backend") or "",
                version,
                str(item["status"]),
                item["ms"],
                span.get("gateway_ms"),
            ]
        )
    ok_statuses = all(item["status"] in (200, "OK") for item in calls)
    canary = [item for item in calls if "canary" in item["call"]]
    plain = [item for item in calls if item["call"] == "gRPC GetOrder"]
    canary_right = all((item.get("body") or {}).get("version") == "v2" for item in canary) and all(
        (item.get("body") or {}).get("version") == "v1" for item in plain
    )
    spans_found = sum(1 for item in calls if item.get("gateway_span"))
    rtt = figures["params"]["wan_rtt_ms"]
    gateway_ms = [item["gateway_span"]["gateway_ms"] for item in calls if item.get("gateway_span")]
    return {
        "headline": (
            f"One entry point served {len(calls)} calls on four routes; the canary header sent gRPC calls"
            f" to orders-v2{'' if canary_right else ' (NOT as expected)'}; the gateway's own span was found"
            f" for {spans_found} of {len(calls)}."
        ),
        "summary": [
            {"label": "calls", "value": len(calls)},
            {"label": "gateway spans", "value": spans_found},
            {
                "label": "client round trip (median)",
                "value": sorted(i["ms"] for i in calls)[len(calls) // 2],
                "unit": "ms",
            },
            {
                "label": "time inside the gateway (median)",
                "value": sorted(gateway_ms)[len(gateway_ms) // 2] if gateway_ms else None,
                "unit": "ms",
            },
            {"label": "link round trips", "value": figures["link"]["round_trips"]},
        ],
        "table": {
            "columns": [
                "call",
                "route (gateway's log)",
                "server",
                "version",
                "status",
                "client ms",
                "gateway span ms",
            ],
            "rows": rows,
        },
        "notes": [
            f"The client sits behind a simulated link of {rtt} ms a round trip; the gateway's span covers"
            " only the time between HAProxy accepting the request and the response passing it.",
            "The gateway's span is made from HAProxy's own log line (its microsecond stamps and timers),"
            " as the mesh lesson does for sidecars; open the trace to see the BFF's gRPC call to orders under"
            " the REST /orders call.",
            "gRPC clients reach the gateway over HTTP/2 in clear text; HAProxy routes on the call's path"
            " (/labapi.gateway.v1.Orders/GetOrder) and on its metadata, which are HTTP/2 headers.",
        ],
        "ok": ok_statuses and canary_right,
        "figures": figures,
    }


# --- 2. edge auth ------------------------------------------------------------------------------


def edge_auth(figures: dict) -> dict:
    cases = figures["cases"]
    rows = [
        [
            case["token"],
            ", ".join(str(s) for s in case["statuses"]),
            case.get("error") or "",
            case["sent"],
            "" if case["reached_catalog"] is None else case["reached_catalog"],
            ((case.get("seen_by_catalog") or {}).get("x-user-id")) or "",
        ]
        for case in cases
    ]
    refused = [
        c for c in cases if c["token"] not in ("valid",) and c["reached_catalog"] is not None
    ]
    leaked = sum(c["reached_catalog"] for c in refused)
    valid = next(c for c in cases if c["token"] == "valid")
    seen = valid.get("seen_by_catalog") or {}
    around = figures["around"]
    around_seen = (
        (around.get("body") or {}).get("seen") or {} if isinstance(around.get("body"), dict) else {}
    )
    ok = (
        leaked == 0
        and valid["reached_catalog"] == valid["sent"]
        and seen.get("x-user-id") == "alice"
    )
    return {
        "headline": (
            f"Every bad token was refused at the gateway ({leaked} of {sum(c['sent'] for c in refused)} reached"
            f" the catalog, by the catalog's own count); the valid one arrived as x-user-id: {seen.get('x-user-id')}"
            f" although the client sent x-user-id: mallory. Around the gateway, the catalog read"
            f" x-user-id: {around_seen.get('x-user-id')} with no token behind it."
        ),
        "summary": [
            {"label": "bad requests that reached the service", "value": leaked},
            {"label": "valid requests that reached it", "value": valid["reached_catalog"]},
            {"label": "identity the service received", "value": seen.get("x-user-id")},
            {
                "label": "forged header believed around the gateway",
                "value": around_seen.get("x-user-id"),
            },
        ],
        "table": {
            "columns": [
                "token",
                "status",
                "gateway's reason",
                "sent",
                "reached catalog",
                "x-user-id the catalog saw",
            ],
            "rows": rows,
        },
        "notes": [
            "HAProxy's jwt_verify checks the signature only; the gateway's rules check the pinned algorithm,"
            " exp, iss and aud themselves, and the route's scopes (403 when a genuine token lacks one).",
            "The gateway deletes any x-user-id a client sends before writing the verified subject: the"
            " client's 'mallory' never reaches a service through it.",
            f"Around the gateway (the catalog's own port), the header was taken at its word; the catalog's own"
            f" check of the bearer token said: {around_seen.get('token_check')!s}. A service that authorizes on"
            " that header alone trusts whoever can reach its port; in the mesh lesson, STRICT mTLS is what"
            " lets it know the caller is the gateway.",
        ],
        "ok": ok,
        "figures": figures,
    }


# --- 3. rate limiting ----------------------------------------------------------------------------


def _buckets(answers: list[list], width_s: float, duration_s: float) -> tuple[list, list]:
    count = max(1, round(duration_s / width_s))
    accepted, refused = [0] * count, [0] * count
    for due, status, _ in answers:
        index = min(count - 1, int(due / width_s))
        if status == 200:
            accepted[index] += 1
        elif status == 429:
            refused[index] += 1
    return accepted, refused


def rate_limiting(figures: dict) -> dict:
    params = figures["params"]
    width = 0.25
    series = []
    totals = {}
    for name, answers in figures["answers"].items():
        accepted, refused = _buckets(answers, width, params["duration_s"])
        scale = 1 / width
        series.append(
            {
                "name": f"{name}: accepted/s",
                "points": [[round(i * width, 2), a * scale] for i, a in enumerate(accepted)],
            }
        )
        series.append(
            {
                "name": f"{name}: refused (429)/s",
                "points": [[round(i * width, 2), r * scale] for i, r in enumerate(refused)],
            }
        )
        retry_after = sorted({str(a[2]) for a in answers if a[1] == 429})
        totals[name] = {
            "sent": len(answers),
            "accepted": sum(1 for a in answers if a[1] == 200),
            "refused": sum(1 for a in answers if a[1] == 429),
            "other": sum(1 for a in answers if a[1] not in (200, 429)),
            "retry_after": ", ".join(retry_after),
        }
    greedy, polite = totals["greedy"], totals["polite"]
    limit, period_s = params["limit"], params["period_ms"] / 1000
    # What to expect: a key well under its limit is never refused, a key over it is. Near the
    # limit the sliding estimate (and the clock's jitter) may refuse a few: no expectation there.
    greedy_over = params["greedy_rate"] * period_s > limit
    polite_under = params["polite_rate"] * period_s <= 0.8 * limit
    ok = (
        (greedy["refused"] > 0 or not greedy_over)
        and (polite["refused"] == 0 or not polite_under)
        and polite["other"] == 0
        and greedy["other"] == 0
    )
    return {
        "headline": (
            f"The greedy key ({params['greedy_rate']}/s) got {greedy['refused']} of {greedy['sent']} refused with"
            f" 429 and Retry-After: {greedy['retry_after'] or '-'}; the polite key ({params['polite_rate']}/s)"
            f" got {polite['refused']} refused. Limit: {limit} per {period_s:g} s per key."
        ),
        "summary": [
            {"label": "greedy accepted", "value": greedy["accepted"]},
            {"label": "greedy refused", "value": greedy["refused"]},
            {"label": "polite refused", "value": polite["refused"]},
            {"label": "polite accepted", "value": polite["accepted"]},
            {"label": "greedy served again after", "value": figures["recovery_ms"], "unit": "ms"},
        ],
        "charts": [
            {
                "title": "Accepted and refused per second, per API key",
                "type": "line",
                "x_label": "seconds",
                "y_label": "requests/s",
                "series": series,
            }
        ],
        "table": {
            "columns": ["key", "sent", "accepted", "refused (429)", "other", "Retry-After"],
            "rows": [
                [name, t["sent"], t["accepted"], t["refused"], t["other"], t["retry_after"]]
                for name, t in totals.items()
            ],
        },
        "notes": [
            f"HAProxy's stick table stores http_req_rate({params['period_ms']}ms) per key: a sliding estimate over"
            " the current and the previous period, not a token bucket. Every tracked request counts, refused"
            " ones too, so a key that keeps sending over its limit stays refused; one that waits a period"
            " gets back in.",
            "HAProxy's own view of the table after the run (show table):\n"
            + figures["table"].strip(),
            f"After its last request the greedy key fell silent, then probed every"
            f" {figures['probe_every_ms']} ms: it was served"
            f" again after {figures['recovery_ms']} ms, against a Retry-After of {greedy['retry_after'] or '-'} s"
            " (two periods: only then is the window surely empty; the probes count too).",
            "Traces were sampled at 5% during this load; the gateway logged every request.",
        ]
        + (
            []
            if polite_under
            else [
                f"The polite key sends {params['polite_rate'] * period_s:g} requests per period against a"
                f" limit of {limit}: at or near the limit, the sliding estimate refuses some of them."
            ]
        ),
        "ok": ok,
        "figures": {k: v for k, v in figures.items() if k != "answers"} | {"totals": totals},
    }


# --- 4. aggregation ----------------------------------------------------------------------------


def aggregation(figures: dict) -> dict:
    params = figures["params"]
    parts, slow = figures["parts"], figures["slow"]
    rows = [
        [
            name,
            part["median_ms"],
            part["round_trips"],
            part["requests"],
            part["new_connections"],
            part["bytes_up"],
            part["bytes_down"],
            ", ".join(str(s) for s in part["statuses"]),
        ]
        for name, part in parts.items()
    ]
    three = parts["three calls, one after another"]
    bff = parts["one BFF call"]
    slow_client = slow["three calls at once: waits for the slowest"]
    slow_bff = slow["one BFF call: answers by its deadline"]
    bff_body = slow_bff["last"].get("body") if isinstance(slow_bff["last"], dict) else {}
    missing = sorted((bff_body or {}).get("missing", {}))
    for name, part in slow.items():
        rows.append(
            [
                f"reviews +{params['slow_ms']} ms: {name}",
                part["median_ms"],
                part["round_trips"],
                part["requests"],
                part["new_connections"],
                part["bytes_up"],
                part["bytes_down"],
                ", ".join(str(s) for s in part["statuses"]),
            ]
        )
    saved = round(three["median_ms"] - bff["median_ms"], 1)
    ok = (
        bff["round_trips"] < three["round_trips"]
        and "reviews" in missing
        and slow_bff["median_ms"] < slow_client["median_ms"]
    )
    return {
        "headline": (
            f"Over a {params['wan_rtt_ms']} ms link, one BFF call took {bff['median_ms']} ms in {bff['round_trips']:g}"
            f" round trip(s) against {three['median_ms']} ms in {three['round_trips']:g} for three calls in turn"
            f" ({saved} ms saved). With reviews {params['slow_ms']} ms slow, the BFF answered in"
            f" {slow_bff['median_ms']} ms without {', '.join(missing) or 'nothing'}; the client that waited took"
            f" {slow_client['median_ms']} ms."
        ),
        "summary": [
            {"label": "three calls in turn", "value": three["median_ms"], "unit": "ms"},
            {"label": "one BFF call", "value": bff["median_ms"], "unit": "ms"},
            {"label": "round trips saved", "value": three["round_trips"] - bff["round_trips"]},
            {"label": "bytes up, three calls", "value": three["bytes_up"], "unit": "B"},
            {"label": "bytes up, BFF", "value": bff["bytes_up"], "unit": "B"},
            {"label": "BFF under a slow back end", "value": slow_bff["median_ms"], "unit": "ms"},
            {
                "label": "client waiting for the slowest",
                "value": slow_client["median_ms"],
                "unit": "ms",
            },
        ],
        "charts": [
            {
                "title": "Time for one screen's data over the link",
                "type": "bar",
                "x_label": "way",
                "y_label": "ms",
                "categories": list(parts) + list(slow),
                "series": [
                    {
                        "name": "median ms",
                        "values": [p["median_ms"] for p in parts.values()]
                        + [p["median_ms"] for p in slow.values()],
                    }
                ],
            }
        ],
        "table": {
            "columns": [
                "way",
                "ms (median)",
                "round trips in sequence",
                "requests",
                "new connections",
                "bytes up",
                "bytes down",
                "statuses",
            ],
            "rows": rows,
        },
        "notes": [
            "Round trips and bytes are counted by the simulated link itself; connections were opened before"
            " timing (a real app keeps them), so none of the figures includes a handshake.",
            "Three calls at once wait about as long as one BFF call (one round trip in sequence), but need"
            " three connections over HTTP/1.1 and send the bearer token and headers three times; HTTP/2 would"
            " multiplex them on one connection but still send three requests. The BFF's gain over a parallel"
            " client is bytes, connections and one place to shape the answer; its gain over a client that calls"
            " in turn (or one call that needs another's answer) is round trips.",
            f"The BFF's deadline was {params['deadline_ms']} ms; its answer lists what is missing and why,"
            " so the screen can show the rest and a placeholder.",
            "The link models delay only: no loss, no bandwidth limit, no TLS handshake.",
        ],
        "ok": ok,
        "figures": figures,
    }


# --- 5. single point ------------------------------------------------------------------------------


def _route_rows(label: str, answers: dict) -> list[list]:
    return [
        [label, route, str(answer["status"]), answer["ms"], (answer.get("error") or "")[:80]]
        for route, answer in answers.items()
    ]


def single_point(figures: dict) -> dict:
    params = figures["params"]
    latency = {
        name: summary(values) for name, values in figures["overhead"]["latencies_us"].items()
    }

    def added(via: str, direct: str, quantile: str) -> float | None:
        a, b = latency[via][quantile], latency[direct][quantile]
        return None if a is None or b is None else _ms(a - b)

    catalog_via = "catalog via gateway (JWT + rate limit)"
    reviews_via = "reviews via gateway (no auth)"
    added_p50 = added(catalog_via, "catalog direct", "p50")
    added_p99 = added(catalog_via, "catalog direct", "p99")
    stopped_failed = sum(1 for a in figures["stopped"].values() if a["status"] not in (200, "OK"))
    slowed = figures["slowed"]
    healthy = figures["healthy"]
    slowed_extra = [round(slowed[r]["ms"] - healthy[r]["ms"], 1) for r in slowed]
    ok = (
        stopped_failed == len(figures["stopped"])
        and figures["direct_while_stopped"]["status"] == 200
    )
    rows = (
        _route_rows("healthy", healthy)
        + _route_rows(f"gateway +{params['gateway_delay_ms']} ms", slowed)
        + _route_rows("gateway stopped", figures["stopped"])
        + [
            [
                "gateway stopped",
                "catalog, direct (around it)",
                str(figures["direct_while_stopped"]["status"]),
                figures["direct_while_stopped"]["ms"],
                "",
            ]
        ]
        + _route_rows("restarted", figures["after"])
    )
    return {
        "headline": (
            f"The gateway added {added_p50} ms at p50 and {added_p99} ms at p99 to a catalog call"
            f" (JWT check and rate limit included). Slowed by {params['gateway_delay_ms']} ms, every route slowed"
            f" ({', '.join(str(x) for x in slowed_extra)} ms); stopped, {stopped_failed} of"
            f" {len(figures['stopped'])} routes failed while the catalog itself answered."
        ),
        "summary": [
            {"label": "added p50", "value": added_p50, "unit": "ms"},
            {"label": "added p99", "value": added_p99, "unit": "ms"},
            {
                "label": "added p50, no auth",
                "value": added(reviews_via, "reviews direct", "p50"),
                "unit": "ms",
            },
            {"label": "routes failed while stopped", "value": stopped_failed},
            {"label": "restart", "value": figures["restart_ms"], "unit": "ms"},
            {
                "label": "slowest route back after restart",
                "value": max(
                    (v for v in figures["recovery_ms"].values() if v is not None), default=None
                ),
                "unit": "ms",
            },
        ],
        "charts": [
            {
                "title": "Latency of the same call, direct and through the gateway",
                "type": "bar",
                "x_label": "percentile",
                "y_label": "ms",
                "categories": ["p50", "p90", "p99"],
                "series": [
                    {"name": name, "values": [_ms(values[q]) for q in ("p50", "p90", "p99")]}
                    for name, values in latency.items()
                ],
            }
        ],
        "table": {"columns": ["gateway", "route", "status", "client ms", "error"], "rows": rows},
        "notes": [
            f"{params['requests']} requests each way, taken in turn one at a time on kept-alive connections,"
            f" untraced, from a process of their own; errors: {figures['overhead']['errors']}.",
            "The slow gateway is a delay inside HAProxy (a Lua action before routing), applied by a hitless"
            " reload; stopping it stops the one HAProxy process every route shares.",
            "After the restart, each route answered again after (ms): "
            + ", ".join(f"{route} {ms}" for route, ms in figures["recovery_ms"].items())
            + ". A gRPC channel that failed to connect waits out its reconnect backoff (about 1 s at"
            " first), so its outage outlasts the gateway's.",
            "In production the gateway runs as several replicas behind a load balancer; that removes the"
            " single process, not the single configuration: a bad policy pushed to all of them fails every"
            " route at once.",
        ],
        "ok": ok,
        "figures": {k: v for k, v in figures.items() if k != "overhead"}
        | {"latency_us": latency, "errors": figures["overhead"]["errors"]},
    }


# --- 6. live policy -------------------------------------------------------------------------------------


def live_policy(figures: dict) -> dict:
    answers = figures["answers"]["traffic"]
    failed = [a for a in answers if a[1] != 200]
    applied = figures["applied"]
    reloads = [a["reload_ms"] for a in applied]
    return {
        "headline": (
            f"{len(applied)} route changes applied under {figures['params']['rate']} requests/s:"
            f" {len(failed)} of {len(answers)} requests failed."
        ),
        "summary": [
            {"label": "failed requests", "value": len(failed)},
            {"label": "requests", "value": len(answers)},
            {"label": "reload (max)", "value": max(reloads) if reloads else None, "unit": "ms"},
        ],
        "table": {
            "columns": ["version", "routes", "reload ms"],
            "rows": [[a["version"], ", ".join(a["routes"]), a["reload_ms"]] for a in applied],
        },
        "notes": [
            "Each change is validated, rendered, checked by haproxy -c and applied by a master-worker reload:"
            " the new worker takes the listening socket, the old one finishes what it carries.",
            "The first change's generated configuration diff:\n"
            + (applied[0]["diff"] if applied else ""),
            "Traces were sampled at 5% during this load.",
        ],
        "ok": not failed,
        "figures": {
            "params": figures["params"],
            "failed": failed[:20],
            "applied": applied,
            "requests": len(answers),
        },
    }
