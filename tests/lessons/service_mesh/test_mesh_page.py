"""The mesh panel in a real browser against the real lab: the policy editor's error and the breaker widget."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from sandbox_services.service_mesh import LAB
from tests.browser.live import open_running_sandbox

pytestmark = pytest.mark.timeout(240)
BAD_POLICY = "kind: DestinationRule\nspec: {host: backend, trafficPolicy: {loadBalancer: {simple: FASTEST}}}\n"


def test_the_policy_editor_shows_the_refused_field_and_a_preview_diff(live_lab, page, artifacts):
    open_running_sandbox(page, live_lab, "service-mesh")
    panel = page.locator("#mesh-panel")
    editor = panel.locator("#mesh-policy")
    expect(editor).to_have_value(re.compile("PeerAuthentication"), timeout=15_000)
    editor.fill(BAD_POLICY)
    panel.get_by_role("button", name="Preview diff").click()
    error = panel.locator(".mesh-error .mesh-field")
    expect(error).to_have_text(
        "DestinationRule[0].spec.trafficPolicy.loadBalancer.simple", timeout=15_000
    )
    editor.fill(BAD_POLICY.replace("FASTEST", "ROUND_ROBIN"))
    panel.get_by_role("button", name="Preview diff").click()
    expect(panel.locator(".mesh-diff summary").first).to_have_text("client-0.cfg", timeout=15_000)
    expect(
        panel.locator(".mesh-diff .diff-add", has_text="balance roundrobin").first
    ).to_be_attached()
    assert page.js_errors == []
    panel.screenshot(path=str(artifacts / "mesh-policy-editor.png"))


def test_the_breaker_widget_follows_haproxy_as_a_replica_is_ejected_and_readmitted(
    live_lab, page, artifacts
):
    open_running_sandbox(page, live_lab, "service-mesh")
    breakers = page.locator("#mesh-breakers")
    expect(
        breakers.locator('li[data-caller="client-0"][data-server="backend-0"]')
    ).to_have_attribute("data-state", "closed", timeout=15_000)
    experiment = page.locator('.experiment[data-experiment="outlier-detection"]')
    experiment.get_by_role("button", name="Run").click()
    replica = breakers.locator('li[data-caller="client-0"][data-server="backend-1"]')
    # Ejected, then probed: HAProxy's "DOWN n/20" shows as probing.
    expect(replica).to_have_attribute("data-state", re.compile("^(open|probing)$"), timeout=30_000)
    page.locator("#mesh-panel").screenshot(path=str(artifacts / "mesh-breaker-ejected.png"))
    expect(replica).to_have_attribute("data-state", "closed", timeout=30_000)
    assert page.js_errors == []


@pytest.mark.parametrize("experiment", [spec.name for spec in LAB.experiments])
def test_an_experiment_runs_from_the_page_with_its_defaults(live_lab, page, experiment):
    open_running_sandbox(page, live_lab, "service-mesh")
    panel = page.locator(f'.experiment[data-experiment="{experiment}"]')
    panel.get_by_role("button", name="Run").click()
    expect(panel).to_have_attribute("data-run-state", "done", timeout=90_000)
    assert page.js_errors == []
