"""The API-gateway lesson against the real lab: the policy editor's error, diff and apply; a run's result."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.live import open_running_sandbox

pytestmark = pytest.mark.timeout(240)
BAD_ROUTE = "routes:\n  - {name: shop, match: {pathPrefix: shop}, backend: catalog, auth: none}\n"


def test_the_gateway_policy_editor_names_the_refused_field_then_shows_and_applies_the_diff(
    live_lab, page, artifacts
):
    open_running_sandbox(page, live_lab, "api-gateway")
    panel = page.locator("#gateway-panel")
    editor = panel.locator("#gateway-policy")
    expect(editor).to_have_value(re.compile("rateLimits:"), timeout=15_000)
    running = editor.input_value()

    editor.fill(BAD_ROUTE)
    panel.get_by_role("button", name="Preview diff").click()
    expect(panel.locator(".gateway-error .gateway-field").first).to_have_text(
        "routes[0].match.pathPrefix", timeout=15_000
    )
    expect(panel.locator(".gateway-error")).to_contain_text("a path starting with /")

    # A new route before the others: the diff shows its rule and its back end.
    editor.fill(running.replace("routes:\n", BAD_ROUTE.replace("shop}", "/shop/}"), 1))
    panel.get_by_role("button", name="Preview diff").click()
    diff = panel.locator(".gateway-diff")
    expect(diff.locator("summary")).to_have_text("gateway.cfg", timeout=15_000)
    expect(diff.locator(".diff-add", has_text="str(shop)").first).to_be_attached()
    expect(diff.locator(".diff-add", has_text="backend route_shop").first).to_be_attached()

    panel.get_by_role("button", name="Apply").click()
    expect(panel.locator(".gateway-summary")).to_contain_text("Applied as version", timeout=15_000)
    panel.screenshot(path=str(artifacts / "gateway-policy-editor.png"))
    assert page.js_errors == []


def test_the_rate_limiting_result_shows_the_greedy_key_refused_and_the_polite_one_served(
    live_lab, page, artifacts
):
    open_running_sandbox(page, live_lab, "api-gateway")
    experiment = page.locator('.experiment[data-experiment="rate-limiting"]')
    experiment.get_by_label("limit", exact=True).fill("8")
    experiment.get_by_label("duration s", exact=True).fill("2")
    experiment.get_by_role("button", name="Run").click()
    expect(experiment).to_have_attribute("data-run-state", "done", timeout=60_000)
    result = experiment.locator(".result").first
    expect(result).to_have_attribute("data-ok", "true")
    expect(result.locator(".result-headline")).to_contain_text("Limit: 8 per 1 s per key")
    expect(result.locator("svg").first).to_be_visible()
    result.screenshot(path=str(artifacts / "gateway-rate-limiting-result.png"))
    assert page.js_errors == []
