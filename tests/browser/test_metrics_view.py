"""The live metrics gauges on a harness page, fed metrics messages as the WebSocket brings them."""

from playwright.sync_api import expect

HARNESS = "/tests/browser/harness/metrics.html"


def open_gauges(page, static_site):
    page.goto(f"{static_site}{HARNESS}")
    page.wait_for_function("window.harnessReady === true")


def feed(page, metrics, source="metrics"):
    page.evaluate("([m, s]) => window.harness.metrics.update(m, s)", [metrics, source])


def test_queue_gauges_are_a_table_whose_cells_carry_value_and_peak(page, static_site, artifacts):
    open_gauges(page, static_site)
    expect(page.locator("#metrics-section")).to_be_hidden()

    for depth in (0, 12, 30, 4):
        feed(page, {"queues": {"email": {"depth": depth, "unacked": 1}, "audit": {"depth": 0}}})

    cell = page.locator('[data-metric="queues email depth"]')
    expect(cell).to_have_attribute("data-value", "4")
    expect(cell).to_have_attribute("data-peak", "30")
    expect(cell.locator(".metric-value")).to_have_text("4")
    expect(page.locator(".metric-table caption")).to_have_text("queues")
    expect(page.locator(".metric-table thead th")).to_have_text(["depth", "unacked"])
    page.locator("main").screenshot(path=str(artifacts / "metrics-queues.png"))
    assert page.js_errors == []


def test_a_map_of_counts_is_tiles_and_a_key_its_source_drops_falls_to_zero(
    page, static_site, artifacts
):
    open_gauges(page, static_site)

    feed(page, {"sagas_running": 2, "coordinator_states": {"CHARGING_PAYMENT": 2}})
    state = page.locator('[data-metric="coordinator_states CHARGING_PAYMENT value"]')
    expect(state).to_have_attribute("data-value", "2")
    feed(page, {"sagas_running": 0, "coordinator_states": {}})
    expect(state).to_have_attribute("data-value", "0")
    expect(state).to_have_attribute("data-peak", "2")

    # Another source leaving the key out says nothing about it.
    feed(page, {"coordinator_states": {"CHARGING_PAYMENT": 1}})
    feed(page, {"received": 5}, source="selftest")
    expect(state).to_have_attribute("data-value", "1")

    expect(page.locator(".metric-tiles")).to_have_count(2)
    expect(page.locator(".metric-tile dt")).to_have_text(
        ["sagas running", "received", "CHARGING PAYMENT"]
    )
    page.locator("main").screenshot(path=str(artifacts / "metrics-tiles.png"))
    assert page.js_errors == []


def test_a_gauge_its_source_stops_sending_shows_zero_then_leaves(page, static_site):
    open_gauges(page, static_site)
    views = {
        "balances": {"next_offset": 500, "lag": 0},
        "statistics": {"next_offset": 500, "lag": 0},
    }
    feed(page, {"views": views}, source="lab")
    dropped = page.locator('[data-metric="views statistics lag"]')
    expect(dropped).to_have_attribute("data-value", "0")
    # The learner dropped "statistics": the lab's gauges stop naming it.
    feed(page, {"views": {"balances": {"next_offset": 510, "lag": 0}}}, source="lab")
    expect(dropped).to_be_attached()
    for offset in range(520, 560, 10):
        feed(page, {"views": {"balances": {"next_offset": offset, "lag": 0}}}, source="lab")
    expect(dropped).not_to_be_attached()
    expect(page.locator('[data-metric="views balances next_offset"]')).to_have_attribute(
        "data-value", "550"
    )
    assert page.js_errors == []
