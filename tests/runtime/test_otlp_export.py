"""OTLP export: a sandbox's spans reach a real OTLP receiver over OTLP/gRPC and OTLP/HTTP.

The receivers here are built from ``opentelemetry-proto``: a gRPC TraceService
server and an HTTP server that takes ``POST /v1/traces``. Both decode what the
lab's exporter sent, so the test checks the collector's view, not the lab's.
"""

from __future__ import annotations

import gzip
import os
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from sandbox_services.runtime import client

from .conftest import wait_until


class Received:
    """What a receiver has decoded: service name -> set of hex trace ids."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.traces: dict[str, set[str]] = {}

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        attribute.value.string_value
                        for attribute in resource_spans.resource.attributes
                        if attribute.key == "service.name"
                    ),
                    "?",
                )
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.traces.setdefault(service, set()).add(span.trace_id.hex())


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request, context):  # the proto names the method
        self.received.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def grpc_receiver(received: Received) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def http_receiver(received: Received) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            received.add(request)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_sandbox_spans_reach_a_real_otlp_receiver(protocol, host_with_env):
    received = Received()
    if protocol == "grpc":
        server, port = grpc_receiver(received)
        stop = lambda: server.stop(0)  # noqa: E731
    else:
        server, port = http_receiver(received)
        stop = server.shutdown
    try:
        host = host_with_env(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_BSP_SCHEDULE_DELAY": "100",
            }
        )
        sandbox_id, _ = host.spawn()
        reply = client.command(
            sandbox_id,
            "run",
            run_id=os.urandom(4).hex(),
            experiment="greet",
            params={},
            timeout_s=30,
        )
        assert reply.get("state", "done") != "failed", reply
        # The spans the lab kept for the browser are the ground truth: every
        # service's trace ids must reach the collector under that service's name.
        kept = wait_until(
            lambda: (
                (
                    by_service := {
                        service: {
                            span["trace_id"]
                            for span in client.replay(sandbox_id)
                            if span["service"] == service
                        }
                        for service in ("learner", "greeter")
                    }
                )
                and all(by_service.values())
                and by_service
            ),
            15,
        )
        wait_until(
            lambda: all(ids <= received.traces.get(name, set()) for name, ids in kept.items()),
            15,
        )
        assert kept["learner"] == kept["greeter"]  # one trace across the two processes
    finally:
        stop()


def test_the_readme_points_the_default_protocol_at_the_matching_port():
    # The lab exports OTLP/HTTP unless told grpc; OTLP/HTTP listens on 4318, gRPC on 4317.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    commands = re.findall(r"^(.*OTEL_EXPORTER_OTLP_ENDPOINT=\S+.*)$", readme, flags=re.M)
    assert commands
    for command in commands:
        grpc_chosen = "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in command
        port = re.search(r"OTEL_EXPORTER_OTLP_ENDPOINT=\S+:(\d+)", command).group(1)
        assert port == ("4317" if grpc_chosen else "4318"), command
