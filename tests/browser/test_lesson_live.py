"""The lesson page against the real lab: a real worker, sandbox host, services and daphne."""

import re

from playwright.sync_api import expect

from tests.browser.live import try_as_guest

# Record every sandbox state the panel shows, and whether its progress bar was
# visible then: a sandbox can start in well under a second, too fast to poll.
RECORD_STATES = """
window.seenStates = [];
const panel = document.getElementById("sandbox-panel");
new MutationObserver(() => {
  const progress = panel.querySelector(".sandbox-progress");
  const entry = { state: panel.dataset.state, progress: Boolean(progress && !progress.hidden) };
  const last = window.seenStates.at(-1);
  if (!last || last.state !== entry.state || last.progress !== entry.progress) window.seenStates.push(entry);
}).observe(panel, { attributes: true, subtree: true, attributeFilter: ["data-state", "hidden"] });
"""


def test_guest_starts_the_rest_vs_grpc_sandbox_runs_one_call_and_inspects_a_span(
    live_lab, page, artifacts
):
    # The Content-Security-Policy allows no inline script and no eval: nothing here needs one.
    violations = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and violations.append(message.text)
        ),
    )
    page.goto(f"{live_lab}/lessons/rest-vs-grpc/")
    expect(page.get_by_role("heading", name="REST vs gRPC", level=1)).to_be_visible()
    try_as_guest(page)
    page.evaluate(RECORD_STATES)

    page.get_by_role("button", name="Start sandbox").click()

    panel = page.locator("#sandbox-panel")
    expect(panel).to_have_attribute("data-state", "running", timeout=30_000)
    seen = page.evaluate("window.seenStates")
    assert {"state": "starting", "progress": True} in seen, seen
    expect(panel.locator("tr[data-service]").first).to_have_attribute("data-state", "running")
    expect(page.locator("#connection-status")).to_have_text("live", timeout=10_000)

    experiment = page.locator('.experiment[data-experiment="one-call"]')
    experiment.get_by_role("button", name="Run").click()
    expect(experiment).to_have_attribute("data-run-state", "done", timeout=60_000)
    expect(experiment.locator(".result .result-headline")).to_contain_text("products")
    expect(experiment.locator(".result .tile").first).to_be_visible()
    # The server passes the run checkpoint; the page learns it without a reload.
    expect(page.locator("#checkpoint-ran-one-call")).to_have_attribute(
        "data-passed", "true", timeout=10_000
    )

    trace = page.locator("#trace-view")
    page.wait_for_function(
        """() => {
            const data = document.getElementById("trace-view").dataset;
            return Number(data.hopsHttp) > 0 && Number(data.hopsGrpc) > 0;
        }""",
        timeout=15_000,
    )
    expect(trace.locator('.hop[data-protocol="http"]').first).to_be_attached()
    expect(trace.locator('.hop[data-protocol="grpc"]').first).to_be_attached()
    assert trace.locator(".lifeline-label").first.text_content() == "learner"

    trace.locator('.hop[data-protocol="grpc"]').last.click()
    details = trace.locator(".span-details")
    expect(details.locator("dl")).to_contain_text("grpc")
    expect(details.locator(".span-attributes")).to_be_visible()
    expect(details.locator("dl")).to_contain_text(re.compile(r"trace\s*[0-9a-f]{32}"))

    # A dropped socket reconnects asking only for what came after the last span seen.
    spans_before = trace.get_attribute("data-spans")
    last_seq = trace.get_attribute("data-last-seq")
    with page.expect_websocket(lambda socket: "since=" in socket.url, timeout=15_000) as reconnect:
        page.evaluate("window.lab.socket().socket.close()")
    assert reconnect.value.url.endswith(f"?since={last_seq}")
    expect(page.locator("#connection-status")).to_have_text("live", timeout=15_000)
    page.evaluate("window.lab.trace.drawn()")
    assert trace.get_attribute("data-spans") == spans_before

    assert page.js_errors == []
    assert violations == []
    experiment.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "lesson-rest-vs-grpc.png"))
    page.locator(".live-panel").screenshot(path=str(artifacts / "lesson-rest-vs-grpc-panel.png"))
