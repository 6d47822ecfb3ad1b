"""The experiment panel on a harness page: generated form, bounds, server errors, runs compared.

The page's API calls are answered by the test (page.route), so each answer is
exactly the shape the lab's API documents.
"""

import json

from playwright.sync_api import expect

HARNESS = "/tests/browser/harness/experiment.html"


def open_panel(page, static_site, runs_answer):
    posted = []

    def answer_runs(route):
        if route.request.method == "POST":
            body = json.loads(route.request.post_data)
            posted.append(body)
            status, payload = runs_answer(body)
            route.fulfill(status=status, json=payload)
        else:
            route.fulfill(json=[])

    page.route("**/api/sandboxes/*/runs/**", answer_runs)
    page.goto(f"{static_site}{HARNESS}")
    page.wait_for_function("window.harnessReady === true")
    return posted


def result(headline, ok=True):
    return {
        "headline": headline,
        "summary": [{"label": "bytes", "value": 10, "unit": "B"}],
        "ok": ok,
    }


def test_form_has_a_typed_field_per_parameter_with_defaults(page, static_site):
    open_panel(page, static_site, lambda body: (202, {"id": "r1", "state": "queued"}))
    slot = page.locator("#slot")

    expect(slot.get_by_label("items", exact=True)).to_have_value("10")
    assert slot.get_by_label("items", exact=True).get_attribute("type") == "number"
    assert slot.get_by_label("items", exact=True).get_attribute("max") == "1000"
    expect(slot.get_by_label("mode")).to_have_value("both")
    expect(slot.get_by_label("traced")).to_be_checked()
    expect(slot.get_by_text("Products in the response · 1–1000")).to_be_visible()


def test_out_of_bounds_value_is_refused_in_the_browser_without_a_request(page, static_site):
    posted = open_panel(page, static_site, lambda body: (202, {"id": "r1", "state": "queued"}))
    slot = page.locator("#slot")

    slot.get_by_label("items", exact=True).fill("5000")
    slot.get_by_role("button", name="Run").click()

    expect(slot.locator('[data-param="items"] .field-error')).to_have_text("At most 1000.")
    expect(slot.get_by_label("items", exact=True)).to_have_attribute("aria-invalid", "true")
    assert posted == []


def test_server_errors_appear_next_to_the_field_they_name(page, static_site):
    errors = {
        "detail": "Invalid input.",
        "errors": {"params.ratio": ["must be between 0.0 and 1.0"]},
    }
    posted = open_panel(page, static_site, lambda body: (400, errors))
    slot = page.locator("#slot")

    slot.get_by_role("button", name="Run").click()

    expect(slot.locator('[data-param="ratio"] .field-error')).to_have_text(
        "must be between 0.0 and 1.0"
    )
    assert posted == [
        {
            "experiment": "one-call",
            "params": {"items": 10, "ratio": 0.5, "mode": "both", "traced": True},
        }
    ]


def test_finished_runs_are_kept_and_can_be_compared_side_by_side(page, static_site):
    open_panel(
        page,
        static_site,
        lambda body: (202, {"id": f"r{body['params']['items']}", "state": "queued"}),
    )
    slot = page.locator("#slot")

    slot.get_by_role("button", name="Run").click()
    expect(slot.locator("progress.run-progress")).to_be_visible()
    page.evaluate(
        """r => window.harness.panel.handleRun(r)""",
        {
            "id": "r10",
            "experiment": "one-call",
            "state": "done",
            "params": {"items": 10},
            "result": result("ten"),
        },
    )
    slot.get_by_label("items", exact=True).fill("20")
    slot.get_by_role("button", name="Run").click()
    page.evaluate(
        """r => window.harness.panel.handleRun(r)""",
        {
            "id": "r20",
            "experiment": "one-call",
            "state": "done",
            "params": {"items": 20},
            "result": result("twenty", ok=False),
        },
    )

    expect(slot.locator(".run-history input[type=checkbox]")).to_have_count(2)
    expect(slot.locator(".run-compare .result-headline")).to_have_text(
        ["expectation failed twenty", "ten"]
    )
    assert slot.locator(".run-compare .result").nth(0).get_attribute("data-ok") == "false"

    slot.locator(".run-history input[type=checkbox]").nth(1).uncheck()
    expect(slot.locator(".run-compare .result")).to_have_count(1)
    assert page.js_errors == []


def test_a_run_told_of_again_leaves_its_result_and_the_focused_checkbox_in_place(page, static_site):
    open_panel(page, static_site, lambda body: (202, {"id": "r1", "state": "queued"}))
    slot = page.locator("#slot")
    done = {
        "id": "r1",
        "experiment": "one-call",
        "state": "done",
        "params": {"items": 10},
        "result": result("ten"),
    }
    for run in (done, {**done, "id": "r2", "result": result("eleven")}):
        page.evaluate("r => window.harness.panel.handleRun(r)", run)
    expect(slot.locator(".run-compare .result")).to_have_count(2)
    # The same end again (the socket, then the list fetched after it): nothing is redrawn.
    slot.locator(".run-compare .result").first.evaluate("e => { e.dataset.seen = 'yes'; }")
    page.evaluate(
        "r => window.harness.panel.handleRun(r)", {**done, "id": "r2", "result": result("eleven")}
    )
    page.evaluate("() => window.harness.panel.loadRuns()")
    assert slot.locator(".run-compare .result").first.get_attribute("data-seen") == "yes"
    # A keyboard user unticking a run keeps their place in the list.
    first_box = slot.locator(".run-history input[type=checkbox]").first
    first_box.focus()
    page.keyboard.press("Space")
    expect(slot.locator(".run-compare .result")).to_have_count(1)
    focused = page.evaluate("() => document.activeElement.id")
    assert focused == first_box.get_attribute("id") and focused.startswith("run-")
    assert page.js_errors == []
