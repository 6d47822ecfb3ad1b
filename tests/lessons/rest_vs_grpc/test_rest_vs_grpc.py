"""The REST vs gRPC lesson: real servers in real processes, real calls over 127.0.0.1.

Two sandboxes serve these tests. ``standalone`` forks the lab's services with
the runtime's own contexts and tracing but no supervisor, so the catalog and
caller can be called directly and their spans read from the Redis outbox.
``runtime_sandbox`` is a real sandbox from a real host
(``runtime.client.spawn``), where every experiment runs as the platform runs
it (``command("run")``) and faults are set as a learner sets them.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")

import redis  # noqa: E402

from sandbox_services.rest_vs_grpc.services.caller.client import CallerClient  # noqa: E402
from sandbox_services.rest_vs_grpc.services.catalog.client import GrpcCatalogClient, RestCatalogClient  # noqa: E402
from sandbox_services.rest_vs_grpc.services.catalog.interface import InvalidArgument  # noqa: E402
from sandbox_services.runtime import client as runtime_client  # noqa: E402
from sandbox_services.runtime import keys  # noqa: E402

STANDALONE = "sandbox_services.rest_vs_grpc.standalone"
KEEPALIVE_S = 3.0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _end_group(process: subprocess.Popen) -> None:
    """End a process started in its own session, and everything it forked."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def wait_until(predicate: Callable[[], object], timeout_s: float) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.05)
    return value


@dataclass
class Standalone:
    sandbox_id: str
    ports: dict[str, int]
    workdir: Path

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def spans(self) -> list[dict]:
        """Return every span the sandbox's processes have sent to the outbox so far."""
        connection = redis.Redis.from_url(os.environ["REDIS_URL"])
        spans = []
        for raw in connection.lrange(keys.sandbox_outbox(self.sandbox_id), 0, -1):
            message = json.loads(raw)
            if message.get("kind") == "spans":
                spans.extend(message["items"])
        return spans

    def run(self, experiment: str, params: dict) -> dict:
        """Run one experiment in a fresh process, as a runner would; return its result."""
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                STANDALONE,
                "--sandbox-id",
                self.sandbox_id,
                "--workdir",
                str(self.workdir),
                "run",
                experiment,
                json.dumps(params),
                "--ports",
                json.dumps(self.ports),
            ],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    """Serve the lab's three services, traced, in their own processes."""
    sandbox_id = uuid.uuid4().hex
    workdir = tmp_path_factory.mktemp("rest-vs-grpc")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            STANDALONE,
            "--trace",
            "--sandbox-id",
            sandbox_id,
            "--workdir",
            str(workdir),
            "serve",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "the lab's services did not become healthy within 60 s"
        ports = json.loads(process.stdout.readline())["ports"]
        yield Standalone(sandbox_id, ports, workdir)
    finally:
        _end_group(process)
        redis.Redis.from_url(os.environ["REDIS_URL"]).delete(keys.sandbox_outbox(sandbox_id))


# --- the catalog, both ways -------------------------------------------------


async def test_rest_and_grpc_return_the_same_products(standalone: Standalone) -> None:
    rest = RestCatalogClient(standalone.address("catalog-rest"))
    grpc_ = GrpcCatalogClient(standalone.address("catalog-grpc"))
    try:
        over_rest = await rest.list_products(25, offset=990)
        over_grpc = await grpc_.list_products(25, offset=990)
    finally:
        await rest.close()
        await grpc_.close()
    assert len(over_rest.products) == 25
    assert over_rest == over_grpc
    assert over_rest.products[10].id == 1  # the page wraps past the end of the catalog


async def test_protobuf_carries_the_same_products_in_fewer_bytes(standalone: Standalone) -> None:
    async with CallerClient(standalone.address("caller")) as caller:
        result = await caller.one_call(50)
    rest, grpc_ = result["rest"]["second"], result["grpc"]["second"]
    assert result["same_data"] is True
    assert 0 < grpc_["response_body_bytes"] < 0.7 * rest["response_body_bytes"]
    # Counted at the socket, headers and framing included, on an open connection.
    assert grpc_["wire_received_bytes"] < rest["wire_received_bytes"]
    assert rest["wire_received_bytes"] > rest["response_body_bytes"]
    # HTTP/2's preface, SETTINGS and cold HPACK table make the first gRPC call bigger.
    first = result["grpc"]["first"]
    assert first["wire_sent_bytes"] > grpc_["wire_sent_bytes"]


async def test_wrong_type_is_refused_by_the_rest_server_and_by_the_grpc_stub(
    standalone: Standalone,
) -> None:
    rest = RestCatalogClient(standalone.address("catalog-rest"))
    grpc_ = GrpcCatalogClient(standalone.address("catalog-grpc"))
    try:
        rest_before = (await rest.server_stats()).calls.get("Reserve", 0)
        with pytest.raises(InvalidArgument, match="count must be an integer, got str 'ten'"):
            await rest.reserve(7, "ten")  # type: ignore[arg-type]
        assert (await rest.server_stats()).calls.get("Reserve", 0) == rest_before + 1

        grpc_before = (await grpc_.server_stats()).calls.get("Reserve", 0)
        with pytest.raises(TypeError):
            await grpc_.reserve(7, "ten")  # type: ignore[arg-type]
        assert (await grpc_.server_stats()).calls.get("Reserve", 0) == grpc_before
    finally:
        await rest.close()
        await grpc_.close()


async def test_contract_trace_has_a_rest_error_span_and_no_grpc_span_for_the_bad_call(
    standalone: Standalone,
) -> None:
    async with CallerClient(standalone.address("caller")) as caller:
        result = await caller.contract()
    wrong = {a["transport"]: a for a in result["attempts"] if a["case"] == "wrong type"}
    assert wrong["rest"]["server_saw_it"] and not wrong["grpc"]["server_saw_it"]

    def contract_trace() -> list[dict] | None:
        spans = standalone.spans()
        roots = [
            s
            for s in spans
            if s["service"] == "caller" and "contract" in s["name"] and s["kind"] == "server"
        ]
        if not roots:
            return None
        trace = [s for s in spans if s["trace_id"] == roots[-1]["trace_id"]]
        # Wait for the catalogs' batches too: three REST and two gRPC reservations.
        reservations = [
            s
            for s in trace
            if s["kind"] == "server" and s["service"].startswith("catalog") and "eserv" in s["name"]
        ]
        return trace if len(reservations) >= 5 else None

    trace = wait_until(contract_trace, 10)
    caller_span = next(s for s in trace if s["service"] == "caller" and s["kind"] == "server")
    assert "cannot be interpreted as an integer" in caller_span["attributes"]["exception.message"]
    rest_reservations = [
        s
        for s in trace
        if s["service"] == "catalog-rest" and s["kind"] == "server" and "eserv" in s["name"]
    ]
    grpc_reservations = [
        s
        for s in trace
        if s["service"] == "catalog-grpc"
        and s["kind"] == "server"
        and s["name"].endswith("/Reserve")
    ]
    assert len(rest_reservations) == 3  # "ten", 0 and 10 all reached the REST server
    assert sum(s["status"] == "error" for s in rest_reservations) == 2
    assert len(grpc_reservations) == 2  # "ten" never left the caller
    assert any(
        "must be an integer" in s["attributes"].get("status.description", "")
        for s in rest_reservations
    )


async def test_one_stream_delivers_every_update_while_polling_misses_some(
    standalone: Standalone,
) -> None:
    async with CallerClient(standalone.address("caller")) as caller:
        result = await caller.streaming(duration_s=1.2, poll_interval_ms=200)
    stream, polling = result["grpc"], result["rest"]
    assert stream["requests_made"] == 1
    assert stream["updates_missed"] == 0
    assert stream["updates_delivered"] >= 10  # a 50 ms ticker for 1.2 s, on a busy machine
    assert 3 <= polling["requests_made"] <= 8
    assert polling["updates_missed"] > 0
    assert polling["updates_delivered"] < stream["updates_delivered"]


async def test_grpc_multiplexes_calls_on_one_connection_while_rest_opens_several(
    standalone: Standalone,
) -> None:
    async with CallerClient(standalone.address("caller")) as caller:
        result = await caller.multiplexing(calls=16, hold_ms=150, rest_connection_limit=4)
    assert result["grpc"]["connections_seen_by_server"] == 1
    assert result["grpc"]["calls_seen_by_server"] == 16
    assert result["rest"]["connections_seen_by_server"] == 4
    assert result["rest"]["connections_opened_by_client"] == 4
    # Four rounds of 150 ms over HTTP/1.1 against one round over HTTP/2.
    assert result["rest"]["elapsed_ms"] >= 4 * 150
    assert result["grpc"]["elapsed_ms"] < result["rest"]["elapsed_ms"]


def test_load_experiment_measures_both_transports_and_keeps_runs(standalone: Standalone) -> None:
    params = {"concurrency": 2, "duration_s": 1, "items": 5, "sample_ratio": 0.01}
    first = standalone.run("load", params)
    second = standalone.run("load", params)
    for transport in ("rest", "grpc"):
        figures = second["results"][transport]
        assert figures["requests"] > 0 and figures["errors"] == 0
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert first["ok"] and second["ok"]
    assert len(second["table"]["rows"]) >= 2  # this run beside the previous one
    assert any("sampled at 1%" in note for note in second["notes"])
    costs = second["serialization"]
    assert costs["protobuf"]["bytes"] < costs["json"]["bytes"]


def test_lesson_parameters_match_the_lab_knobs() -> None:
    from lab.curriculum.lessons import load_lesson
    from sandbox_services.rest_vs_grpc import LAB, config

    lesson = load_lesson(ROOT / "lessons" / "rest-vs-grpc" / "lesson.md")
    assert {e.name for e in lesson.experiments} == {e.name for e in LAB.experiments}
    declared = {
        (experiment.name, parameter.name): parameter
        for experiment in lesson.experiments
        for parameter in experiment.parameters
    }
    assert set(declared) == set(config.BOUNDS)
    for key, bound in config.BOUNDS.items():
        parameter = declared[key]
        assert (parameter.default, parameter.min, parameter.max) == (
            bound.default,
            bound.low,
            bound.high,
        ), key


def test_codegen_writes_an_importable_package(tmp_path: Path) -> None:
    from sandbox_services.codegen import PROTOS_DIR, generate

    written = generate(PROTOS_DIR, tmp_path)
    stub = tmp_path / "sandbox_services/protos_gen/labapi/catalog/v1/catalog_pb2_grpc.py"
    assert stub in written
    assert (
        "from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2" in stub.read_text()
    )
    assert (tmp_path / "sandbox_services/protos_gen/labapi/catalog/v1/__init__.py").exists()


# --- every experiment in a real sandbox -------------------------------------


@dataclass
class RuntimeSandbox:
    sandbox_id: str

    def run(self, experiment: str, params: dict) -> dict:
        """Run an experiment as the platform does; return the supervisor's reply."""
        return runtime_client.command(
            self.sandbox_id,
            "run",
            timeout_s=90,
            run_id=uuid.uuid4().hex,
            experiment=experiment,
            params=params,
        )

    def fault(self, service: str, op: str, **params: object) -> None:
        runtime_client.command(self.sandbox_id, "service", service=service, op=op, **params)

    def spans_since(self, seq: int) -> list[dict]:
        return runtime_client.replay(self.sandbox_id, since=seq)

    def last_seq(self) -> int:
        spans = runtime_client.replay(self.sandbox_id, since=0, limit=100_000)
        return spans[-1]["seq"] if spans else 0


@pytest.fixture(scope="module")
def runtime_sandbox() -> Iterator[RuntimeSandbox]:
    """Start a sandbox host for a fake worker and a rest-vs-grpc sandbox on it."""
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    name = f"test-rest-grpc-{uuid.uuid4().hex[:8]}"
    alive = keys.worker_alive(name)
    connection.set(alive, 1, px=int(KEEPALIVE_S * 1000))
    stop = threading.Event()

    def beat() -> None:  # what the Celery worker does for its host
        while not stop.wait(KEEPALIVE_S / 3):
            connection.set(alive, 1, px=int(KEEPALIVE_S * 1000))

    threading.Thread(target=beat, daemon=True).start()
    host = subprocess.Popen(
        [sys.executable, "-m", "sandbox_services.runtime.host", "--name", name],
        cwd=ROOT,
        env=_env(),
        start_new_session=True,
    )
    sandbox_id = uuid.uuid4().hex
    try:
        runtime_client.spawn(
            host=name,
            sandbox_id=sandbox_id,
            lesson="rest-vs-grpc",
            hard_deadline=time.time() + 600,
            idle_timeout_s=300,
            timeout_s=60,
        )
        yield RuntimeSandbox(sandbox_id)
    finally:
        try:
            runtime_client.command(sandbox_id, "stop", timeout_s=15)
        except runtime_client.SandboxError:
            pass
        stop.set()
        _end_group(host)
        connection.delete(alive)


SHORT_PARAMS = {
    "one-call": {"items": 5},
    "load": {"concurrency": 2, "duration_s": 1, "items": 5, "sample_ratio": 0.01},
    "streaming": {"duration_s": 1, "poll_interval_ms": 200},
    "contract": {},
    "multiplexing": {"calls": 8, "hold_ms": 50, "rest_connections": 4},
}


@pytest.mark.parametrize("experiment", list(SHORT_PARAMS))
def test_every_experiment_runs_end_to_end_in_a_real_sandbox(
    runtime_sandbox: RuntimeSandbox, experiment: str
) -> None:
    reply = runtime_sandbox.run(experiment, SHORT_PARAMS[experiment])
    assert reply["state"] == "done", reply
    result = reply["result"]
    assert result["ok"] is True, result
    assert result["headline"] and result["summary"]


def test_multiplexing_charts_connections_apart_from_milliseconds(
    runtime_sandbox: RuntimeSandbox,
) -> None:
    reply = runtime_sandbox.run("multiplexing", SHORT_PARAMS["multiplexing"])
    assert reply["state"] == "done", reply
    charts = {chart["y_label"]: chart for chart in reply["result"]["charts"]}
    assert set(charts) == {"ms", "connections"}
    assert charts["ms"]["categories"] == ["elapsed", "expected"]
    connections = {s["name"]: s["values"] for s in charts["connections"]["series"]}
    tiles = {t["label"]: t["value"] for t in reply["result"]["summary"]}
    assert connections == {
        "REST": [tiles["REST connections"]],
        "gRPC": [tiles["gRPC connections"]],
    }


def test_one_call_traces_learner_caller_and_both_catalogs(runtime_sandbox: RuntimeSandbox) -> None:
    since = runtime_sandbox.last_seq()
    assert runtime_sandbox.run("one-call", {"items": 3})["state"] == "done"

    def services_seen() -> set[str] | None:
        seen = {s["service"] for s in runtime_sandbox.spans_since(since)}
        return seen if {"learner", "caller", "catalog-rest", "catalog-grpc"} <= seen else None

    wait_until(services_seen, 10)
    spans = runtime_sandbox.spans_since(since)
    sized = [
        s
        for s in spans
        if s["kind"] == "server"
        and s["service"].startswith("catalog")
        and (
            "http.response.body.size" in s["attributes"]
            or "rpc.response.body.size" in s["attributes"]
        )
    ]
    assert {s["service"] for s in sized} == {"catalog-rest", "catalog-grpc"}
    # The caller's client spans name their callee: the diagram draws caller -> catalog.
    peers = {s["peer"] for s in spans if s["service"] == "caller" and s["kind"] == "client"}
    assert {"catalog-rest", "catalog-grpc"} <= peers


def test_slowed_and_broken_catalogs_show_in_results_and_traces(
    runtime_sandbox: RuntimeSandbox,
) -> None:
    runtime_sandbox.fault("catalog-rest", "delay", delay_ms=150)
    runtime_sandbox.fault("catalog-grpc", "error", error_rate=1.0)
    since = runtime_sandbox.last_seq()
    try:
        reply = runtime_sandbox.run("one-call", {"items": 3})
    finally:
        runtime_sandbox.fault("catalog-rest", "clear")
        runtime_sandbox.fault("catalog-grpc", "clear")
    assert reply["state"] == "done"
    assert reply["result"]["ok"] is False  # the gRPC side failed, and the result says so

    def grpc_error_span() -> list[dict]:
        return [
            s
            for s in runtime_sandbox.spans_since(since)
            if s["service"] == "catalog-grpc" and s["kind"] == "server" and s["status"] == "error"
        ]

    wait_until(grpc_error_span, 10)
    slow_rest = [
        s
        for s in runtime_sandbox.spans_since(since)
        if s["service"] == "catalog-rest" and s["kind"] == "server"
    ]
    assert slow_rest and min(s["end_ns"] - s["start_ns"] for s in slow_rest) >= 150e6


def test_load_traces_only_a_sample_of_its_requests(runtime_sandbox: RuntimeSandbox) -> None:
    since = runtime_sandbox.last_seq()
    params = {"concurrency": 4, "duration_s": 1, "items": 1, "sample_ratio": 0.1}
    reply = runtime_sandbox.run("load", params)
    assert reply["state"] == "done", reply
    requests = reply["result"]["results"]["rest"]["requests"]
    assert requests >= 20
    calls = requests + 50  # the measured calls and the warm-up

    def sampled() -> list[dict]:
        return [
            s
            for s in runtime_sandbox.spans_since(since)
            if s["service"] == "catalog-rest" and s["kind"] == "server"
        ]

    served = wait_until(sampled, 10)
    # About a tenth of the calls reach the trace, each under a "load call" span.
    assert len(served) < 0.3 * calls
    load_calls = [
        s
        for s in runtime_sandbox.spans_since(since)
        if s["service"] == "learner" and s["name"] == "load call"
    ]
    assert load_calls
