"""Steps the live-lab browser tests share."""

from concurrent.futures import ThreadPoolExecutor

from playwright.sync_api import Page, expect


def off_the_loop(function, *args, **kwargs):
    """Call a service from another thread: Playwright's loop runs in this one, and a
    service that tells the class view (async_to_sync) refuses a thread with a loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args, **kwargs).result()


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
