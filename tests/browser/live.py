"""Steps the live-lab browser tests share."""

from playwright.sync_api import Page, expect


def open_running_sandbox(page: Page, live_lab: str, slug: str) -> None:
    """Open a lesson, start its sandbox and wait until it runs and the WebSocket is live."""
    page.goto(f"{live_lab}/lessons/{slug}/")
    page.get_by_role("button", name="Start sandbox").click()
    expect(page.locator("#sandbox-panel")).to_have_attribute(
        "data-state", "running", timeout=30_000
    )
    expect(page.locator("#connection-status")).to_have_text("live", timeout=10_000)
