"""Per-service controls of the live panel against the real lab: stop/start and injected errors."""

from playwright.sync_api import expect

from tests.browser.live import open_running_sandbox


def test_learner_stops_and_starts_a_service_and_sees_injected_errors_in_the_trace(
    live_lab, page, artifacts
):
    open_running_sandbox(page, live_lab, "rest-vs-grpc")
    grpc_row = page.locator('#sandbox-panel tr[data-service="catalog-grpc"]')

    grpc_row.get_by_role("button", name="Stop").click()
    expect(grpc_row).to_have_attribute("data-state", "stopped", timeout=15_000)
    grpc_row.get_by_role("button", name="Start").click()
    expect(grpc_row).to_have_attribute("data-state", "running", timeout=15_000)

    # The delay and error controls sit behind each service's "Faults" disclosure.
    grpc_row.get_by_text("Faults").click()
    errors = grpc_row.get_by_label("errors")
    errors.fill("1")
    errors.dispatch_event("change")
    expect(grpc_row.locator("output").last).to_have_text("100%")
    expect(page.locator("#sandbox-panel .panel-error")).to_have_text("")

    experiment = page.locator('.experiment[data-experiment="one-call"]')
    experiment.get_by_role("button", name="Run").click()
    page.wait_for_function(
        "() => ['done', 'failed'].includes(document.querySelector('.experiment[data-experiment=\"one-call\"]').dataset.runState)",
        timeout=60_000,
    )
    page.wait_for_function(
        "() => Number(document.getElementById('trace-view').dataset.hopsError) > 0", timeout=15_000
    )
    expect(page.locator('#trace-view .hop.is-error[data-protocol="grpc"]').first).to_be_attached()

    grpc_row.get_by_role("button", name="Clear").click()
    expect(grpc_row.locator("output").last).to_have_text("0%")
    assert page.js_errors == []
    page.locator(".live-panel").screenshot(path=str(artifacts / "faults-panel.png"))
