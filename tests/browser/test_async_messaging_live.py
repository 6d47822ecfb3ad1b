"""The async messaging lesson against the real lab: a stopped consumer's queue fills, then drains."""

from playwright.sync_api import expect

from tests.browser.live import open_running_sandbox

# Record every value the live gauge of email's queue depth shows, as it is drawn.
# The metrics view redraws its tables on each message, so watch the subtree.
RECORD_DEPTH = """
window.emailDepths = [];
new MutationObserver(() => {
  const cell = document.querySelector('#metrics-view [data-metric="queues email depth"]');
  if (!cell) return;
  const value = Number(cell.dataset.value);
  if (window.emailDepths.at(-1) !== value) window.emailDepths.push(value);
}).observe(document.getElementById("metrics-view"), { childList: true, subtree: true });
"""
PEAK_AT_LEAST = 10
# Some depth at or above the threshold, and a zero after it.
ROSE_THEN_FELL = f"""() => {{
  const depths = window.emailDepths;
  const peak = depths.findIndex((value) => value >= {PEAK_AT_LEAST});
  return peak >= 0 && depths.slice(peak).includes(0);
}}"""


def test_queue_gauge_of_a_stopped_consumer_rises_while_orders_flow_and_falls_after_restart(
    live_lab, page, artifacts
):
    open_running_sandbox(page, live_lab, "async-messaging")
    expect(page.get_by_role("heading", name="Async messaging", level=1)).to_be_visible()
    depth = page.locator('#metrics-view [data-metric="queues email depth"]')
    expect(depth).to_have_attribute("data-value", "0", timeout=15_000)
    page.evaluate(RECORD_DEPTH)

    experiment = page.locator('.experiment[data-experiment="temporal-decoupling"]')
    # 40 orders at 10 a second: about four seconds of load, four or more gauge samples.
    experiment.get_by_label("orders", exact=True).fill("40")
    experiment.get_by_label("consumer", exact=True).select_option("email")
    experiment.get_by_label("fault", exact=True).select_option("stop")
    experiment.get_by_label("rate", exact=True).fill("10")
    experiment.get_by_role("button", name="Run").click()

    page.wait_for_function(
        f"() => window.emailDepths.some((value) => value >= {PEAK_AT_LEAST})", timeout=30_000
    )
    email_row = page.locator('#sandbox-panel tr[data-service="email"]')
    expect(email_row).to_have_attribute("data-state", "stopped")
    page.locator(".live-panel").screenshot(path=str(artifacts / "async-decoupling-queue-full.png"))

    expect(experiment).to_have_attribute("data-run-state", "done", timeout=45_000)
    page.wait_for_function(ROSE_THEN_FELL, timeout=15_000)
    expect(email_row).to_have_attribute("data-state", "running")
    depths = page.evaluate("window.emailDepths")
    assert max(depths) <= 45, depths  # one message per order, and the five healthy ones drained
    assert int(depth.get_attribute("data-peak")) >= PEAK_AT_LEAST

    result = experiment.locator(".run-compare .result").first
    expect(result).to_have_attribute("data-ok", "true")
    expect(result.locator(".result-headline")).to_contain_text("email's queue rose to")
    assert page.js_errors == []
    experiment.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "async-decoupling.png"))
