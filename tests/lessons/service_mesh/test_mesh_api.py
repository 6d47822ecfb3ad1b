"""The mesh's policy editor API on the real lab: worker, sandbox host, control plane and HAProxy.

The page's editor calls these; a refused policy is a 400 whose errors name the
field, a preview is the generated configuration's diff, an applied policy
reloads the sidecars, and the replicas' state is HAProxy's own.
"""

from __future__ import annotations

import pytest

from tests.platform.helpers import api_for, wait_state

pytestmark = pytest.mark.timeout(240)
LESSON = "service-mesh"


@pytest.fixture
def learner(make_user):
    _, token = make_user(role="learner")
    return api_for(token)


def test_the_policy_editor_previews_applies_and_refuses_naming_the_field(live_lab, learner):
    api = learner
    created = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json")
    assert created.status_code == 201, created.content
    sandbox_id = created.json()["id"]
    try:
        assert wait_state(api, sandbox_id, {"running", "failed"}, timeout=60)["state"] == "running"
        base = f"/api/sandboxes/{sandbox_id}/mesh/"

        shown = api.get(base)
        assert shown.status_code == 200, shown.content
        assert "PeerAuthentication" in shown.json()["policy"]
        states = {s["server"]: s["status"] for s in shown.json()["servers"]["client-0"]}
        assert states["backend-0"] == "no check" and states["backend-1"] == "MAINT"

        refused = api.post(
            base + "policy/",
            {
                "policy": "kind: DestinationRule\nspec: {host: backend, trafficPolicy: {loadBalancer: {simple: FASTEST}}}"
            },
            format="json",
        )
        assert refused.status_code == 400
        assert list(refused.json()["errors"]) == [
            "DestinationRule[0].spec.trafficPolicy.loadBalancer.simple"
        ]

        policy = "kind: DestinationRule\nspec: {host: backend, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}"
        preview = api.post(base + "policy/", {"policy": policy}, format="json")
        assert preview.status_code == 200
        assert "+    balance roundrobin" in preview.json()["diff"]["client-0"]

        applied = api.post(base + "policy/", {"policy": policy, "apply": True}, format="json")
        assert applied.status_code == 200, applied.content
        assert set(applied.json()["changed"]) == {"client-0", "frontend-0"}
        assert api.get(base).json()["version"] == applied.json()["version"]
    finally:
        api.delete(f"/api/sandboxes/{sandbox_id}/")


def test_a_sandbox_of_another_lesson_has_no_mesh(live_lab, learner):
    created = learner.post("/api/sandboxes/", {"lesson": "rest-vs-grpc"}, format="json")
    sandbox_id = created.json()["id"]
    try:
        assert learner.get(f"/api/sandboxes/{sandbox_id}/mesh/").status_code == 404
    finally:
        learner.delete(f"/api/sandboxes/{sandbox_id}/")
