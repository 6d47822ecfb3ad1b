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


# The spans of one graph edge in the traces the view shows (the lab's own background calls
# are hidden unless asked for): the caller's sidecar's client spans to one replica, the
# server spans that answered them, and the span ids each drawing shows.
EDGE_SPANS = """
([service, server]) => {
  const view = window.lab.trace;
  const spans = [...view.store.traces.values()]
    .filter((trace) => view.showBackground || trace.run !== "background")
    .flatMap((trace) => [...trace.spans.values()]);
  const edge = new Set(spans.filter((span) => span.service === service && span.kind === "client"
    && (span.attributes || {})["haproxy.server"] === server).map((span) => span.span_id));
  const answered = spans.filter((span) => edge.has(span.parent_id) && span.kind === "server")
    .map((span) => span.span_id);
  const drawn = (selector) => [...document.querySelectorAll(selector)].map((node) => node.dataset.spanId);
  return {
    edge: [...edge],
    answered,
    hops: drawn("#trace-view .seq-window .hop"),
    rows: drawn("#trace-view .wf-window .wf-row"),
  };
}
"""


def test_clicking_a_graph_edge_filters_the_trace_to_its_calls_and_the_chip_clears_it(
    live_lab, page, artifacts
):
    open_running_sandbox(page, live_lab, "service-mesh")
    run = page.locator('.experiment[data-experiment="trace-propagation"]')
    run.get_by_role("button", name="Run").click()
    expect(run).to_have_attribute("data-run-state", "done", timeout=90_000)
    edge = page.locator('#mesh-graph [data-edge="frontend->backend-0"]')
    expect(edge).to_be_attached(timeout=15_000)
    page.wait_for_function(
        f"() => ({EDGE_SPANS})(['frontend-sidecar', 'backend-0']).edge.length >= 2", timeout=15_000
    )
    view = page.locator("#trace-view")
    page.evaluate("window.lab.trace.drawn()")
    every_call = page.evaluate(EDGE_SPANS, ["frontend-sidecar", "backend-0"])
    assert set(every_call["hops"]) - set(every_call["edge"]), "other calls are drawn before"
    hops_before = int(view.get_attribute("data-hops-http"))

    edge.click()
    chip = view.locator(".trace-filter")
    expect(chip).to_be_visible()
    expect(chip).to_contain_text(re.compile(r"^filtered: frontend → backend-0 \(\d+ calls?\)"))
    expect(edge).to_have_attribute("aria-pressed", "true")
    page.evaluate("window.lab.trace.drawn()")
    filtered = page.evaluate(EDGE_SPANS, ["frontend-sidecar", "backend-0"])
    calls = int(view.get_attribute("data-filtered-calls"))
    # Only that edge's calls remain: every arrow is one of them, every waterfall bar is one
    # of them or the server span that answered it, and the chip counts them.
    assert calls == len(filtered["edge"]) >= 2
    assert int(view.get_attribute("data-hops-http")) == calls < hops_before
    assert filtered["hops"] and set(filtered["hops"]) <= set(filtered["edge"])
    assert set(filtered["rows"]) <= set(filtered["edge"]) | set(filtered["answered"])
    assert set(filtered["edge"]) <= set(filtered["rows"])
    expect(chip).to_contain_text(f"({calls} calls)")
    page.locator("#mesh-panel").screenshot(path=str(artifacts / "mesh-edge-filter-graph.png"))
    chip.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "mesh-edge-filter-trace.png"))

    chip.get_by_role("button", name="Clear the filter: show every call").click()
    expect(chip).to_be_hidden()
    expect(edge).to_have_attribute("aria-pressed", "false")
    page.evaluate("window.lab.trace.drawn()")
    assert int(view.get_attribute("data-hops-http")) >= hops_before
    restored = page.evaluate(EDGE_SPANS, ["frontend-sidecar", "backend-0"])
    assert set(restored["hops"]) - set(restored["edge"]), "the other calls are back"

    # The same from the keyboard: the edge is a button, and so is the chip's clear.
    edge.focus()
    page.keyboard.press("Enter")
    expect(chip).to_be_visible()
    expect(view).to_have_attribute("data-filter", "frontend → backend-0")
    chip.get_by_role("button", name="Clear the filter: show every call").focus()
    page.keyboard.press("Enter")
    expect(chip).to_be_hidden()
    assert page.js_errors == []
