"""The saga lesson against the real lab: a step fails and the compensations run in reverse."""

from playwright.sync_api import expect

from tests.browser.live import open_running_sandbox

# The saga's step table (sandbox_services/saga/interface.py): each step's compensation.
UNDOES = {"create": "reject", "charge": "refund", "reserve": "release", "schedule": "cancel"}
READ_STEPS = "groups => groups.map((g) => ({...g.dataset}))"


def test_failure_at_a_chosen_step_draws_compensations_in_reverse_order_of_the_forward_steps(
    live_lab, page, artifacts
):
    open_running_sandbox(page, live_lab, "saga")
    expect(page.get_by_role("heading", name="Saga", level=1)).to_be_visible()

    experiment = page.locator('.experiment[data-experiment="failure"]')
    experiment.get_by_label("mode", exact=True).select_option("both")
    experiment.get_by_label("fail at", exact=True).select_option("shipping")
    experiment.get_by_label("fail kind", exact=True).select_option("refusal")
    experiment.get_by_role("button", name="Run").click()
    expect(experiment).to_have_attribute("data-run-state", "done", timeout=45_000)

    result = experiment.locator(".run-compare .result").first
    expect(result).to_have_attribute("data-ok", "true")
    views = result.locator(".saga")
    expect(views).to_have_count(2)
    assert views.evaluate_all("vs => vs.map((v) => v.dataset.mode)") == [
        "choreography",
        "orchestration",
    ]
    for index in range(2):
        view = views.nth(index)
        expect(view).to_have_attribute("data-outcome", "rejected")
        steps = view.locator(".saga-step").evaluate_all(READ_STEPS)
        # The participants' lanes: the coordinator's commands mirror them in orchestration.
        done = [s for s in steps if s["service"] != "coordinator"]
        assert [int(s["order"]) for s in steps] == list(range(1, len(steps) + 1))
        starts = [int(s["startNs"]) for s in done]
        assert starts == sorted(starts), done

        forward = [s["step"] for s in done if s["kind"] == "forward" and s["status"] == "done"]
        failures = [s for s in done if s["kind"] == "failure"]
        compensations = [s for s in done if s["kind"] == "compensation"]
        assert forward == ["create", "charge", "reserve"], done
        assert [(f["service"], f["step"]) for f in failures] == [("shipping", "schedule")]
        assert [c["step"] for c in compensations] == [UNDOES[s] for s in reversed(forward)]
        assert [c["service"] for c in compensations] == ["inventory", "payments", "orders"]
        assert all(int(c["startNs"]) >= int(failures[0]["startNs"]) for c in compensations)

    orchestration = views.nth(1)
    expect(orchestration.locator(".saga-node.is-current")).to_have_attribute(
        "data-state", "REJECTED"
    )
    expect(
        orchestration.locator('.saga-edge.is-taken[data-from="SCHEDULING_SHIPPING"]')
    ).to_have_count(1)
    expect(views.nth(0).locator(".saga-machine")).to_contain_text("no coordinator")

    # A step leads to the span that did it, in the trace view beside the lesson.
    refund = orchestration.locator('.saga-step[data-service="payments"][data-kind="compensation"]')
    span_id = refund.get_attribute("data-span-id")
    assert span_id, "the refund step names no span"
    refund.locator(".saga-bar").click()
    details = page.locator("#trace-view .span-details")
    expect(details).to_have_attribute("data-span-id", span_id, timeout=10_000)
    expect(details.locator("dl")).to_contain_text("payments")
    assert page.js_errors == []
    result.scroll_into_view_if_needed()
    result.screenshot(path=str(artifacts / "saga-failure-result.png"))
    page.screenshot(path=str(artifacts / "saga-failure-page.png"))
