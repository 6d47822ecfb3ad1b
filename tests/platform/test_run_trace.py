"""A run's trace is kept with the run: replayable after its sandbox is gone, exported as OTLP/JSON.

The export is decoded with ``opentelemetry-proto``'s own message and
``json_format``, as an OTLP collector would. OTLP/JSON writes trace and span
ids as hex where protobuf's JSON mapping expects base64, so the test turns the
ids into base64 first, as OTLP's JSON decoders do, and checks the bytes.
"""

import base64
import json
import copy

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .helpers import LESSON, api_for, wait_run, wait_state


def _as_protobuf_json(document: dict) -> dict:
    document = copy.deepcopy(document)
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return document


def test_a_runs_spans_outlive_its_sandbox_and_export_as_otlp_json_to_its_owner_only(
    live_lab, make_user
):
    _user, token = make_user(role="learner")
    api = api_for(token)
    sandbox = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()
    assert wait_state(api, sandbox["id"], {"running", "failed"})["state"] == "running"
    queued = api.post(
        f"/api/sandboxes/{sandbox['id']}/runs/",
        {"experiment": "one-call", "params": {}},
        format="json",
    ).json()
    run = wait_run(api, queued["id"])
    assert run["state"] == "done", run["error"]

    # Stop the sandbox: its Redis spans go, the run's stay with the run.
    assert api.delete(f"/api/sandboxes/{sandbox['id']}/").status_code == 202
    wait_state(api, sandbox["id"], {"stopped"})

    kept = api.get(f"/api/runs/{run['id']}/spans/")
    assert kept.status_code == 200, kept.content
    spans = kept.json()["spans"]
    assert spans, "the run's spans were kept"
    assert {span["run"] for span in spans} == {run["id"]}, "only this run's spans, no background"
    services = {span["service"] for span in spans}
    assert {"learner", "caller"} <= services, services
    assert [span["seq"] for span in spans] == sorted(span["seq"] for span in spans)

    exported = api.get(f"/api/runs/{run['id']}/trace/")
    assert exported.status_code == 200, exported.content
    document = exported.json()
    request = json_format.Parse(
        json.dumps(_as_protobuf_json(document)), ExportTraceServiceRequest()
    )
    decoded = {}
    for resource_spans in request.resource_spans:
        service = next(
            attribute.value.string_value
            for attribute in resource_spans.resource.attributes
            if attribute.key == "service.name"
        )
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                decoded[span.span_id.hex()] = (service, span)
    assert len(decoded) == len(spans)
    for original in spans:
        service, span = decoded[original["span_id"]]
        assert service == original["service"]
        assert span.trace_id.hex() == original["trace_id"]
        assert span.name == original["name"]
        assert span.start_time_unix_nano == int(original["start_ns"])
        assert span.end_time_unix_nano >= span.start_time_unix_nano
        attributes = {attribute.key: attribute.value for attribute in span.attributes}
        assert attributes["lab.run"].string_value == run["id"]
    kinds = {span.kind for _service, span in decoded.values()}
    assert {2, 3} <= kinds, "server and client spans keep their OTLP kinds"

    # Another learner sees neither the spans nor the export.
    _other, other_token = make_user(role="learner")
    other = api_for(other_token)
    assert other.get(f"/api/runs/{run['id']}/trace/").status_code == 404
    assert other.get(f"/api/runs/{run['id']}/spans/").status_code == 404
