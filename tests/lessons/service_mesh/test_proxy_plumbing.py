"""The shared proxy plumbing on its own: certificates, log lines to spans, HAProxy's stat answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cryptography import x509

from sandbox_services.proxy import runtime_api
from sandbox_services.proxy.certs import CertificateAuthority, spiffe_id
from sandbox_services.proxy.logs import LogReceiver
from sandbox_services.proxy.spans import parse_traceparent, record_times_ns, span_of_record
from sandbox_services.service_mesh.telemetry import SidecarTelemetry
from sandbox_services.service_mesh.topology import sidecars

SANDBOX = "cd" * 16
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_workload_certificate_names_its_spiffe_identity_and_is_signed_by_the_sandbox_ca(
    tmp_path: Path,
):
    ca = CertificateAuthority(SANDBOX, tmp_path)
    issued = ca.issue("backend")
    certificate = x509.load_pem_x509_certificate(issued.path.read_bytes())
    uris = certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == [spiffe_id(SANDBOX, "backend")] == [issued.spiffe_id]
    certificate.verify_directly_issued_by(ca.certificate)
    assert len(issued.serial) % 2 == 0  # whole bytes, as HAProxy prints a serial
    assert ca.identity_of(issued.serial.lower()) == issued


def test_a_traceparent_is_read_and_a_bad_one_refused():
    assert parse_traceparent(f"00-{TRACE}-00f067aa0ba902b7-01") == (TRACE, "00f067aa0ba902b7", True)
    assert parse_traceparent(f"00-{TRACE}-00f067aa0ba902b7-00")[2] is False
    assert parse_traceparent("00-zz-00f067aa0ba902b7-01") is None
    assert parse_traceparent(f"00-{'0' * 32}-00f067aa0ba902b7-01") is None


def record(**fields) -> dict:
    base = {
        "w": "client-0",
        "fe": "outbound_backend",
        "be": "backend",
        "srv": "backend-0",
        "ts": 1_800_000_000,
        "ms": "042",
        "t0": "1800000000042100",
        "t1": "1800000000042600",
        "tq": 0,
        "tw": 0,
        "tc": 0,
        "tr": 0,
        "ta": 1,
        "st": 200,
        "rc": "+1",
        "term": "----",
        "tp": f"00-{TRACE}-00f067aa0ba902b7-01",
        "sid": "a1b2c3d4e5f60718",
        "tls": "0",
        "btls": "1",
        "cn": "-",
        "serial": "-",
        "sserial": "-",
        "fault": "-",
        "m": "GET",
        "p": "/quote",
    }
    return {**base, **fields}


def test_a_log_line_becomes_a_child_span_timed_to_the_microsecond():
    span = span_of_record(
        record(), service="client-sidecar", kind="client", name="outbound backend"
    )
    assert (span["trace_id"], span["parent_id"], span["span_id"]) == (
        TRACE,
        "00f067aa0ba902b7",
        "a1b2c3d4e5f60718",
    )
    assert span["end_ns"] - span["start_ns"] == 500_000  # 0.5 ms from HAProxy's own stamps
    assert span["attributes"]["haproxy.retries"] == 1 and span["attributes"]["haproxy.redispatched"]
    assert record_times_ns(record(t0="", t1="")) == (
        1_800_000_000_042 * 10**6,
        1_800_000_000_043 * 10**6,
    )


def test_an_unsampled_or_untraced_request_makes_no_span():
    assert (
        span_of_record(
            record(tp=f"00-{TRACE}-00f067aa0ba902b7-00"), service="s", kind="client", name="n"
        )
        is None
    )
    assert span_of_record(record(tp=""), service="s", kind="client", name="n") is None


def test_telemetry_names_the_peer_identity_and_counts_the_edge(tmp_path: Path):
    ca = CertificateAuthority(SANDBOX, tmp_path)
    backend = ca.issue("backend")
    client = ca.issue("client")
    layout = sidecars(
        {"frontend": [20001], "backend": [20002, 20003, 20004]}, list(range(21000, 21007))
    )
    spans: list[dict] = []
    telemetry = SidecarTelemetry(layout, ca, lambda workload: "STRICT", spans.append)
    telemetry.on_record(record(sserial=backend.serial))
    telemetry.on_record(
        record(
            w="backend-0",
            fe="inbound",
            be="app",
            srv="app",
            serial=client.serial,
            tls="1",
            sid="0123456789abcdef",
        )
    )
    telemetry.on_record(record(tp="", st=503))  # untraced: counted, no span
    outbound, inbound = spans
    assert outbound["attributes"]["peer.spiffe_id"] == backend.spiffe_id
    backend_0 = next(item for item in layout if item.name == "backend-0")
    assert outbound["attributes"]["server.port"] == backend_0.inbound_port  # its sidecar, the peer
    assert inbound["attributes"]["peer.spiffe_id"] == client.spiffe_id
    assert "mesh.fault" not in outbound["attributes"]  # "-" is HAProxy's empty sample
    (edge,) = telemetry.edge_metrics()
    assert (edge["from"], edge["to"], edge["requests"], edge["errors"]) == (
        "client",
        "backend-0",
        2,
        1,
    )


def test_a_refused_handshake_becomes_an_error_span(tmp_path: Path):
    layout = sidecars(
        {"frontend": [20001], "backend": [20002, 20003, 20004]}, list(range(21000, 21007))
    )
    spans: list[dict] = []
    telemetry = SidecarTelemetry(
        layout, CertificateAuthority(SANDBOX, tmp_path), lambda w: "STRICT", spans.append
    )
    telemetry.on_record(
        {
            "w": "backend-0",
            "event": "connection-error",
            "fe": "inbound",
            "ts": 1_800_000_000,
            "ms": "001",
            "err": "SSL handshake failure",
            "ssl_err": "error:0A00009C:SSL routines::http request",
            "client": "127.0.0.1:5555",
        }
    )
    (span,) = spans
    assert span["status"] == "error" and span["attributes"]["mtls.mode"] == "STRICT"
    assert "http request" in span["attributes"]["mesh.refusal"]


def test_show_stat_is_read_into_server_states():
    text = (
        "# pxname,svname,status,check_status,lastchg,scur,stot,hrsp_5xx,wretr,wredis,downtime,chkfail,chkdown\n"
        "backend,backend-0,UP,L7OK,10,0,42,0,1,1,0,0,0\n"
        "backend,backend-1,DOWN 5/20,L7OK,2,0,7,3,0,0,2,0,1\n"
        "backend,BACKEND,UP,,10,0,49,3,1,1,0,,\n"
    )
    states = runtime_api.server_states(text)
    assert [(s.server, s.ejected, s.down_transitions) for s in states] == [
        ("backend-0", False, 0),
        ("backend-1", True, 1),
    ]
    assert runtime_api.certificate_serial("Filename: x.pem\nSerial: 0a1B\n") == "0A1B"


async def test_log_lines_are_read_at_once_after_a_quiet_spell_then_in_batches(tmp_path: Path):
    records: list[dict] = []
    arrived = asyncio.Event()

    def on_record(record: dict) -> None:
        records.append(record)
        arrived.set()

    receiver = LogReceiver(tmp_path / "log.sock", on_record, batch_interval_s=0.2)
    await receiver.start()
    _, writer = await asyncio.open_unix_connection(str(tmp_path / "log.sock"))
    try:
        began = time.monotonic()
        writer.write(b'{"n": 1}\n{"n"')  # a line cut in two by the stream
        await asyncio.wait_for(arrived.wait(), 5)
        assert time.monotonic() - began < 0.15  # the first line waits for no batch
        arrived.clear()
        writer.write(b": 2}\nProxy x stopped.\nnot json\n")
        for n in range(3, 51):
            writer.write(b'{"n": %d}\n' % n)
            await writer.drain()
        while len(records) < 50:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 5)
        assert [record["n"] for record in records] == list(range(1, 51))
        assert receiver.malformed == 0  # the notice and the stray text are not requests
        assert receiver.reads <= 4  # 49 lines written one by one, read in a batch or two
    finally:
        writer.close()
        receiver.close()
