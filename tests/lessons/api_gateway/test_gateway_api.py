"""The gateway lesson through the lab's public API: worker, sandbox host, gateway service and HAProxy.

The page's policy editor calls /api/sandboxes/<id>/gateway/; experiments run
through /api/sandboxes/<id>/runs/ with their declared parameters, defaults or
changed, and a parameter outside its declaration is a 400 naming it.
"""

from __future__ import annotations

import pytest

from tests.platform.helpers import api_for, wait_run, wait_state

pytestmark = pytest.mark.timeout(240)
LESSON = "api-gateway"


@pytest.fixture
def learner(make_user):
    _, token = make_user(role="learner")
    return api_for(token)


def test_the_policy_editor_api_and_a_run_with_changed_parameters(live_lab, learner):
    api = learner
    created = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json")
    assert created.status_code == 201, created.content
    sandbox_id = created.json()["id"]
    try:
        assert wait_state(api, sandbox_id, {"running", "failed"}, timeout=60)["state"] == "running"
        base = f"/api/sandboxes/{sandbox_id}/gateway/"
        shown = api.get(base)
        assert shown.status_code == 200, shown.content
        assert "rateLimits:" in shown.json()["policy"]
        assert "jwt_verify" in shown.json()["config"]

        refused = api.post(
            base + "policy/",
            {"policy": "routes:\n  - {name: x, backend: catalog, auth: none, timeout: soon}\n"},
            format="json",
        )
        assert refused.status_code == 400
        assert list(refused.json()["errors"]) == ["routes[0].timeout"]

        policy = shown.json()["policy"].replace("    timeout: 2s\n", "    timeout: 750ms\n")
        preview = api.post(base + "policy/", {"policy": policy}, format="json")
        assert preview.status_code == 200, preview.content
        assert "+    timeout server 750ms" in preview.json()["diff"]["gateway"]
        applied = api.post(base + "policy/", {"policy": policy, "apply": True}, format="json")
        assert applied.status_code == 200, applied.content
        assert api.get(base).json()["version"] == applied.json()["version"]

        bad = api.post(
            f"/api/sandboxes/{sandbox_id}/runs/",
            {"experiment": "aggregation", "params": {"wan_rtt_ms": 1000}},
            format="json",
        )
        assert bad.status_code == 400
        assert any(field.endswith("wan_rtt_ms") for field in bad.json()["errors"])

        queued = api.post(
            f"/api/sandboxes/{sandbox_id}/runs/",
            {
                "experiment": "aggregation",
                "params": {"wan_rtt_ms": 80, "slow_ms": 300, "repeats": 2},
            },
            format="json",
        )
        assert queued.status_code == 202, queued.content
        run = wait_run(api, queued.json()["id"])
        assert run["state"] == "done", run
        figures = run["result"]["figures"]
        assert figures["params"]["wan_rtt_ms"] == 80
        # Measured over the 80 ms link: three calls in turn wait three round trips, the BFF one.
        assert figures["parts"]["three calls, one after another"]["median_ms"] >= 240
        assert figures["parts"]["one BFF call"]["round_trips"] == 1
    finally:
        api.delete(f"/api/sandboxes/{sandbox_id}/")
