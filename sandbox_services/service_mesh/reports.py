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
    added = {q: _ms(on[q] - off[q]) if on[q] is not None and off[q] is not None else None for q in ("p50", "p90", "p99")}
    cpu = figures["cpu_ms_per_1000"]
    memory = figures["memory_kb"]
    per_sidecar_mb = [round(item["pss"] / 1024, 1) for item in memory.values()]
    errors = sum(figures["errors"].values())
    return {
        "headline": (
            f"Two sidecar hops with mTLS ({figures['mtls']}) added {added['p50']} ms at p50 and"
            f" {added['p90']} ms at p90; Istio publishes +{ISTIO_SIDECAR_P90_MS} ms p90 for its sidecars."
        ),
        "summary": [
            {"label": "added p50", "value": added["p50"], "unit": "ms"},
            {"label": "added p90", "value": added["p90"], "unit": "ms"},
            {"label": "added p99", "value": added["p99"], "unit": "ms"},
            {"label": "client sidecar CPU / 1000 req", "value": round(cpu.get("client-0", 0), 1), "unit": "ms"},
            {"label": "backend sidecar CPU / 1000 req", "value": round(cpu.get("backend-0", 0), 1), "unit": "ms"},
            {"label": "memory per sidecar (PSS)", "value": max(per_sidecar_mb or [0]), "unit": "MB"},
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
                    {"name": "mesh on (mTLS, tracing)", "values": [_ms(on[q]) for q in ("p50", "p90", "p99")]},
                ],
            },
            {
                "title": "Added latency at p90: ours, measured here, beside Istio's published figures",
                "type": "bar",
                "x_label": "",
                "y_label": "ms",
                "categories": ["this lab (HAProxy sidecars)", "Istio sidecar (theirs)", "Istio ambient L4 (theirs)"],
                "series": [{"name": "added p90", "values": [added["p90"], ISTIO_SIDECAR_P90_MS, ISTIO_AMBIENT_L4_P90_MS]}],
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
            f"{figures['params']['traced_percent']:g}% of requests were traced end to end; the sidecars"
            " logged every request, the spans' raw material.",
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
        ["plaintext client -> backend sidecar", verdict, "; ".join(r["reason"] for r in figures["refusals"]) or "-"],
    ]
    for identity in figures["identities"]:
        rows.append(
            [f"{identity['service']} ({identity['kind']})", "mTLS" if identity["mtls"] else "plaintext", identity["peer_spiffe_id"] or "-"]
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
