"""The browser fixtures of tests/browser (Chromium through Playwright), for this lesson's page tests."""

from tests.browser.conftest import artifacts, browser, page  # noqa: F401 (fixtures)
