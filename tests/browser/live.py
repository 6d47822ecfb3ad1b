"""Steps the live-lab browser tests share."""

from playwright.sync_api import Page, expect


def try_as_guest(page: Page) -> None:
    """On a lesson page, become a guest if not signed in (the only way a guest is made)."""
    guest = page.get_by_role("button", name="Try as a guest")
    if guest.count():
        guest.click()
        expect(page.get_by_role("button", name="Start sandbox")).to_be_visible()


def open_running_sandbox(page: Page, live_lab: str, slug: str) -> None:
    """Open a lesson, start its sandbox and wait until it runs and the WebSocket is live."""
    page.goto(f"{live_lab}/lessons/{slug}/")
    try_as_guest(page)
    page.get_by_role("button", name="Start sandbox").click()
    expect(page.locator("#sandbox-panel")).to_have_attribute(
        "data-state", "running", timeout=30_000
    )
    expect(page.locator("#connection-status")).to_have_text("live", timeout=10_000)
