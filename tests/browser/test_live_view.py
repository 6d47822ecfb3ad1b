"""The live view shows the learner's own work, fits a 1440×900 screen, replays runs, survives reloads.

Against the real lab (worker, sandbox host, services, daphne) in Debian's Chromium.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from .axe import assert_no_axe_violations

SCREEN = {"width": 1440, "height": 900}


@pytest.fixture
def screen_page(browser):
    """A page at the size the issue measured: 1440×900."""
    # bypass_csp: axe-core is injected as a script the page's CSP would refuse.
    context = browser.new_context(viewport=SCREEN, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(autouse=True)
def stop_sandboxes_afterwards(live_lab):
    """Stop every sandbox a test left running: idle ones would slow the tests after it."""
    yield
    from lab.sandboxes import services
    from lab.sandboxes.models import ACTIVE_STATES, Sandbox, SandboxState

    for sandbox in Sandbox.objects.filter(state__in=ACTIVE_STATES):
        if sandbox.state in (SandboxState.STARTING, SandboxState.RUNNING):
            services.sandbox_stop(sandbox=sandbox)


@pytest.fixture
def become_learner(live_lab, make_user):
    """Sign a new learner in and open a lesson (the site makes at most a few guests an hour)."""

    def sign_in(page: Page, slug: str) -> None:
        password = "correct horse battery staple 10"
        user, _token = make_user(role="learner", password=password)
        page.goto(f"{live_lab}/accounts/login/")
        page.locator("input[name=username]").fill(user.username)
        page.locator("input[name=password]").fill(password)
        page.locator("form button[type=submit]").last.click()
        page.wait_for_load_state()
        page.goto(f"{live_lab}/lessons/{slug}/")
        expect(page.get_by_role("button", name="Start sandbox")).to_be_visible()

    return sign_in


def start_sandbox(page: Page) -> None:
    page.get_by_role("button", name="Start sandbox").click()
    expect(page.locator("#sandbox-panel")).to_have_attribute(
        "data-state", "running", timeout=30_000
    )
    expect(page.locator("#connection-status")).to_have_text("live", timeout=10_000)


def run(page: Page, experiment: str, **params) -> None:
    panel = page.locator(f'.experiment[data-experiment="{experiment}"]')
    for name, value in params.items():
        field = panel.locator(f'[name="{name}"]')
        if field.evaluate("node => node.tagName") == "SELECT":
            field.select_option(str(value))
        else:
            field.fill(str(value))
    panel.get_by_role("button", name="Run").click()


def wait_done(page: Page, experiment: str, timeout: float = 120_000) -> None:
    expect(page.locator(f'.experiment[data-experiment="{experiment}"]')).to_have_attribute(
        "data-run-state", "done", timeout=timeout
    )


def lifeline_names(page: Page) -> list[str]:
    page.evaluate("window.lab.trace.drawn()")
    return page.locator("#trace-view .lifeline-label").all_text_contents()


def inside_viewport(page: Page, selector: str, min_height: float = 0) -> dict:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown"
    assert box["y"] >= 0 and box["x"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= SCREEN["width"], (selector, box)
    visible = min(box["y"] + box["height"], SCREEN["height"]) - box["y"]
    assert visible >= min_height, f"{selector}: only {visible:.0f}px of it on screen ({box})"
    return box


def test_background_spans_are_hidden_by_default_and_one_remembered_switch_shows_them(
    live_lab, screen_page, become_learner
):
    page = screen_page
    become_learner(page, "event-sourcing")
    start_sandbox(page)
    trace = page.locator("#trace-view")
    # The idle event-sourcing sandbox polls its projector: background traces arrive, unseen.
    page.wait_for_function(
        "() => Number(document.getElementById('trace-view').dataset.hiddenBackground) > 2",
        timeout=20_000,
    )
    assert trace.get_attribute("data-shown-traces") == "0"
    shown_runs = page.evaluate("window.lab.trace.shown.map((trace) => trace.run)")
    assert "background" not in shown_runs

    switch = page.get_by_label("Show the lab's own calls")
    expect(switch).not_to_be_checked()
    switch.check()
    page.wait_for_function(
        "() => Number(document.getElementById('trace-view').dataset.shownTraces) > 0"
    )
    assert "background" in page.evaluate("window.lab.trace.shown.map((trace) => trace.run)")

    page.reload()
    expect(page.get_by_label("Show the lab's own calls")).to_be_checked()
    page.get_by_label("Show the lab's own calls").uncheck()
    page.reload()
    expect(page.get_by_label("Show the lab's own calls")).not_to_be_checked()
    assert page.js_errors == []


def test_lifelines_keep_the_lessons_order_across_runs_and_the_picker_names_runs(
    live_lab, screen_page, become_learner
):
    page = screen_page
    become_learner(page, "rest-vs-grpc")
    start_sandbox(page)
    declared = ["learner", "caller", "catalog-rest", "catalog-grpc"]

    run(page, "one-call", items=3)
    wait_done(page, "one-call")
    page.wait_for_function(
        "() => Number(document.getElementById('trace-view').dataset.hopsGrpc) > 0"
    )
    assert lifeline_names(page) == declared
    grpc_label = page.locator("#trace-view .lifeline-label", has_text="catalog-grpc")
    grpc_x = grpc_label.bounding_box()["x"]
    grpc_label.evaluate("(label) => { label.dataset.seen = 'first run'; }")

    run(page, "one-call", items=5)
    page.wait_for_function(
        "() => document.querySelectorAll('.experiment[data-experiment=\"one-call\"] .run-history label').length >= 2",
        timeout=60_000,
    )
    wait_done(page, "one-call")
    assert lifeline_names(page) == declared
    # The column stays where it was (the panel may scroll; its x never moves), and its
    # label is the same element: new spans with the same lifelines do not rebuild the header.
    assert grpc_label.get_attribute("data-seen") == "first run"
    assert grpc_label.bounding_box()["x"] == grpc_x

    # The picker lists runs by experiment and parameters, their traces under them.
    picker = page.locator("#trace-view .trace-picker")
    picker.focus()
    groups = picker.locator("optgroup")
    labels = groups.evaluate_all("(nodes) => nodes.map((node) => node.label)")
    assert any(label.startswith("one-call · items=5") for label in labels), labels
    assert any(label.startswith("one-call · items=3") for label in labels), labels
    first_run = groups.first.locator("option").first
    picker.select_option(first_run.get_attribute("value"))
    page.evaluate("window.lab.trace.drawn()")
    runs = set(page.evaluate("window.lab.trace.shown.map((trace) => trace.run)"))
    assert len(runs) == 1 and "background" not in runs
    assert page.js_errors == []


def test_gauges_and_trace_are_on_screen_together_during_a_run_at_1440_by_900(
    live_lab, screen_page, artifacts, become_learner
):
    page = screen_page
    become_learner(page, "async-messaging")
    start_sandbox(page)
    expect(page.locator("#metrics-section")).to_be_visible(timeout=15_000)
    page.wait_for_timeout(1500)  # a few metrics messages: the gauges' table has its rows
    # Stopping a service changes one badge and one button; the panel does not move.
    audit = page.locator('tr[data-service="audit"]')
    before = page.locator("#trace-view .seq-scroll").bounding_box()
    audit.get_by_role("button", name="Stop audit").click()
    expect(audit).to_have_attribute("data-state", "stopped", timeout=10_000)
    assert page.locator("#trace-view .seq-scroll").bounding_box()["y"] == before["y"]
    row_heights = page.locator("tr[data-service]").evaluate_all(
        "(rows) => rows.map((row) => row.getBoundingClientRect().height)"
    )
    assert max(row_heights) < 40, row_heights
    audit.get_by_role("button", name="Start audit").click()
    expect(audit).to_have_attribute("data-state", "running", timeout=10_000)

    run(page, "temporal-decoupling", orders=40)
    expect(page.locator('.experiment[data-experiment="temporal-decoupling"]')).to_have_attribute(
        "data-run-state", "running", timeout=15_000
    )
    page.wait_for_function(
        "() => Number(document.getElementById('trace-view').dataset.shownTraces) > 0"
    )
    inside_viewport(page, "#metrics-section", min_height=60)
    inside_viewport(page, "#trace-view .seq-scroll", min_height=120)
    page.screenshot(path=str(artifacts / "live-panel-during-run-1440x900.png"))
    wait_done(page, "temporal-decoupling")
    assert page.js_errors == []


def test_a_finished_fast_run_replays_slowly_step_by_step_and_after_the_sandbox_is_gone(
    live_lab, screen_page, become_learner
):
    page = screen_page
    become_learner(page, "async-messaging")
    start_sandbox(page)
    run(page, "poison-messages")
    wait_done(page, "poison-messages")
    result = page.locator('.experiment[data-experiment="poison-messages"] .result').first
    result.get_by_role("button", name="Watch it again slowly").click()
    bar = page.locator("#trace-view .replay-bar")
    expect(bar).to_be_visible()
    expect(page.locator("#trace-view")).to_have_attribute("data-replay", "on")
    expect(bar.locator(".replay-speed")).to_have_value("0.25")
    total = int(bar.get_attribute("data-total"))
    assert total > 3
    bar.get_by_role("button", name="Pause").click()
    shown = int(bar.get_attribute("data-shown"))
    bar.get_by_role("button", name="Step").click()
    expect(bar).to_have_attribute("data-shown", str(shown + 1))
    bar.get_by_label("Position").fill("1000")
    expect(bar).to_have_attribute("data-shown", str(total))
    page.evaluate("window.lab.trace.drawn()")
    assert {
        trace["run"] for trace in page.evaluate("window.lab.trace.shown.map((t) => ({run: t.run}))")
    } == {result.get_attribute("data-run-id")}
    bar.get_by_role("button", name="Back to live").click()
    expect(bar).to_be_hidden()

    # The sandbox goes; the run's spans stayed with the run.
    page.get_by_role("button", name="Stop sandbox").click()
    expect(page.locator("#sandbox-panel")).to_have_attribute(
        "data-state", "stopped", timeout=30_000
    )
    page.reload()
    result = page.locator('.experiment[data-experiment="poison-messages"] .result').first
    result.get_by_role("button", name="Replay in the trace").click()
    expect(bar).to_be_visible()
    expect(bar.locator(".replay-speed")).to_have_value("1")
    assert int(bar.get_attribute("data-total")) == total
    assert page.js_errors == []


def test_a_page_opened_mid_run_shows_its_progress_within_a_second_in_every_tab(
    live_lab, screen_page, become_learner
):
    page = screen_page
    become_learner(page, "rest-vs-grpc")
    start_sandbox(page)
    run(page, "load", duration_s=6)
    experiment = page.locator('.experiment[data-experiment="load"]')
    expect(experiment).to_have_attribute("data-run-state", "running", timeout=15_000)
    expect(page.locator("#run-status-load")).to_be_focused()

    for opened in (page, page.context.new_page()):
        started = time.monotonic()
        if opened is page:
            page.reload()
        else:
            opened.goto(page.url)
        panel = opened.locator('.experiment[data-experiment="load"]')
        expect(panel).to_have_attribute("data-run-state", "running", timeout=1_000)
        expect(panel.locator(".run-progress")).to_be_visible(timeout=1_000)
        # The percentage itself, from the supervisor's kept progress: the load's next
        # progress message is seconds away (each transport runs for duration_s).
        expect(panel.locator(".run-status")).to_contain_text(
            re.compile(r"Running \(\d+%\)"), timeout=1_000
        )
        assert float(panel.locator(".run-progress").evaluate("node => node.value")) > 0
        expect(panel.locator(".run-status")).not_to_contain_text("Run running")
        expect(panel.get_by_role("button", name="Run")).to_be_disabled(timeout=1_000)
        assert (
            time.monotonic() - started < 3.0
        )  # page load included; the run showed within 1 s of it
        for other in panel.page.locator(".experiment button[type=submit]").all():
            expect(other).to_be_disabled()
    wait_done(page, "load", timeout=60_000)
    expect(
        page.locator('.experiment[data-experiment="load"]').get_by_role("button", name="Run")
    ).to_be_enabled()


def test_start_sandbox_is_within_five_tab_presses_and_focus_follows_start(
    live_lab, screen_page, become_learner
):
    page = screen_page
    become_learner(page, "saga")
    page.goto(f"{live_lab}/lessons/saga/")
    for _ in range(2):
        page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to the live sandbox")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Start sandbox")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#sandbox-panel")).to_be_focused(timeout=10_000)
    expect(page.locator("#sandbox-panel")).to_have_attribute(
        "data-state", "running", timeout=30_000
    )


LESSONS_AND_RUNS = [
    ("rest-vs-grpc", "one-call", {}),
    ("async-messaging", "at-least-once", {}),
    ("event-sourcing", "state-as-of", {}),
    ("saga", "crash", {}),
    ("api-gateway", "routing", {}),
    ("service-mesh", "overhead", {"duration_s": 1}),
]


@pytest.mark.parametrize(("slug", "experiment", "params"), LESSONS_AND_RUNS)
def test_lesson_pages_have_no_axe_violations_before_during_and_after_a_run(
    live_lab, screen_page, axe_source, slug, experiment, params, become_learner
):
    page = screen_page
    page.goto(f"{live_lab}/lessons/{slug}/")
    assert_no_axe_violations(page, axe_source, f"{slug}, anonymous")
    become_learner(page, slug)
    start_sandbox(page)
    assert_no_axe_violations(page, axe_source, f"{slug}, sandbox running")
    run(page, experiment, **params)
    assert_no_axe_violations(page, axe_source, f"{slug}, during {experiment}")
    wait_done(page, experiment)
    page.evaluate("window.lab.trace.drawn()")
    assert_no_axe_violations(page, axe_source, f"{slug}, after {experiment}")
    assert page.js_errors == []


def test_starting_another_lessons_sandbox_asks_first_and_the_stopped_one_says_why(
    live_lab, screen_page, become_learner
):
    from lab.sandboxes.models import Sandbox

    page = screen_page
    become_learner(page, "rest-vs-grpc")
    start_sandbox(page)
    first = page.evaluate("window.lab.sandboxPanel.sandbox.id")

    page.goto(f"{live_lab}/lessons/event-sourcing/")
    page.get_by_role("button", name="Start sandbox").click()
    confirm = page.locator("#sandbox-panel .confirm-box")
    expect(confirm).to_contain_text("rest-vs-grpc")
    confirm.get_by_role("button", name="Keep it running").click()
    expect(confirm).to_be_hidden()
    assert Sandbox.objects.get(id=first).state == "running"

    page.get_by_role("button", name="Start sandbox").click()
    confirm.get_by_role("button", name="Stop the rest-vs-grpc sandbox and start this one").click()
    expect(page.locator("#sandbox-panel")).to_have_attribute(
        "data-state", "running", timeout=30_000
    )
    deadline = time.monotonic() + 20
    while Sandbox.objects.get(id=first).state != "stopped" and time.monotonic() < deadline:
        time.sleep(0.2)
    stopped = Sandbox.objects.get(id=first)
    assert stopped.state == "stopped"
    assert "event-sourcing" in stopped.reason, stopped.reason


@pytest.mark.parametrize(
    "path", ["/", "/accounts/login/", "/accounts/signup/", "/lessons/service-mesh/"]
)
def test_other_pages_have_no_axe_violations(live_lab, screen_page, axe_source, path):
    screen_page.goto(f"{live_lab}{path}")
    assert_no_axe_violations(screen_page, axe_source, path)


def test_a_call_to_a_stopped_service_fails_in_the_lessons_terms_with_the_raw_error_behind(
    live_lab, screen_page, become_learner
):
    page = screen_page
    become_learner(page, "rest-vs-grpc")
    start_sandbox(page)
    row = page.locator('tr[data-service="catalog-grpc"]')
    row.get_by_role("button", name="Stop catalog-grpc").click()
    expect(row).to_have_attribute("data-state", "stopped", timeout=10_000)
    run(page, "one-call")
    wait_done(page, "one-call")
    result = page.locator('.experiment[data-experiment="one-call"] .result').first
    explained = result.locator(".explained-error").first
    expect(explained).to_contain_text("catalog-grpc is stopped: the call failed with UNAVAILABLE")
    raw = explained.locator("details.raw-error")
    expect(raw.locator("pre")).to_be_hidden()
    raw.locator("summary").click()
    expect(raw.locator("pre")).to_be_visible()
    assert "lab." not in (result.text_content() or "") or "lab.run" in (result.text_content() or "")


def test_a_long_history_load_reports_its_progress_instead_of_started(
    live_lab, screen_page, become_learner
):
    page = screen_page
    become_learner(page, "event-sourcing")
    start_sandbox(page)
    run(page, "late-projection", events=3000)
    status = page.locator("#run-status-late-projection")
    expect(status).to_contain_text("appended 1000 of 3000 events", timeout=15_000)
    wait_done(page, "late-projection")


def test_three_compared_runs_stay_readable_at_1440_by_900(live_lab, screen_page, become_learner):
    page = screen_page
    become_learner(page, "saga")
    start_sandbox(page)
    for _ in range(3):
        run(page, "failure")
        page.wait_for_function(
            "(n) => document.querySelectorAll('.experiment[data-experiment=\"failure\"] .run-history label').length >= n",
            arg=_ + 1,
            timeout=60_000,
        )
        wait_done(page, "failure")
    compare = page.locator('.experiment[data-experiment="failure"] .run-compare')
    expect(compare.locator("article.result")).to_have_count(3)
    expect(compare.locator(".compare-figures th[scope=col]")).to_have_count(4)
    checks = compare.evaluate(
        """(root) => {
        const box = root.getBoundingClientRect();
        const out = {overflowing: [], small: [], piled: 0, clipped: []};
        for (const bar of root.querySelectorAll('.saga-bar')) {
          const r = bar.getBoundingClientRect();
          const article = bar.closest('article').getBoundingClientRect();
          if (r.right > article.right + 1) out.overflowing.push(r.right - article.right);
        }
        // The size a text is drawn at: its font size times its drawing's scale.
        for (const text of root.querySelectorAll('svg text')) {
          const svg = text.ownerSVGElement;
          const viewBox = svg.viewBox.baseVal;
          const scale = viewBox && viewBox.width ? svg.getBoundingClientRect().width / viewBox.width : 1;
          const size = parseFloat(getComputedStyle(text).fontSize) * scale;
          if (text.textContent.trim() && size < 10.95) out.small.push([text.textContent, Math.round(size * 10) / 10]);
        }
        const labels = [...root.querySelectorAll('.saga-timeline .saga-step text')].map((t) => t.getBoundingClientRect());
        for (let i = 0; i < labels.length; i += 1) for (let j = i + 1; j < labels.length; j += 1) {
          const a = labels[i], b = labels[j];
          // Glyph boxes include line spacing: a shared pixel row or two is not a pile.
          const across = Math.min(a.right, b.right) - Math.max(a.left, b.left);
          const down = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
          if (across > 2 && down > 3) out.piled += 1;
        }
        for (const table of root.querySelectorAll('table')) {
          const wrapper = table.parentElement;
          const scrolls = getComputedStyle(wrapper).overflowX === 'auto';
          if (table.getBoundingClientRect().right > box.right + 1 && !scrolls) out.clipped.push(table.className);
        }
        return out;
      }"""
    )
    assert checks["overflowing"] == [], checks
    assert checks["small"] == [], checks
    assert checks["piled"] == 0, checks
    assert checks["clipped"] == [], checks
