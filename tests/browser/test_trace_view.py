"""The trace view, result renderer and metrics on a static harness page with synthetic data.

These need no running lab: tests/browser/harness/trace.html imports the shipped
modules from static/lab/ and feeds them spans shaped as docs/architecture.md says.
"""

import re

from playwright.sync_api import expect

HARNESS = "/tests/browser/harness/trace.html"


def open_harness(page, static_site, query=""):
    page.goto(f"{static_site}{HARNESS}{query}")
    page.wait_for_function("window.harnessReady === true")
    page.evaluate("window.harness.view.drawn()")


def counts(page):
    return page.evaluate("({...document.getElementById('trace').dataset})")


def test_sequence_diagram_draws_http_grpc_and_async_amqp_hops_from_out_of_order_spans(
    page, static_site, artifacts
):
    open_harness(page, static_site)

    drawn = counts(page)
    assert int(drawn["hopsHttp"]) > 0 and int(drawn["hopsGrpc"]) > 0 and int(drawn["hopsAmqp"]) > 0
    assert int(drawn["hopsError"]) > 0
    # The learner's lifeline comes first; the broker has one of its own.
    lifelines = page.locator("#trace .lifeline-label").all_text_contents()
    assert lifelines[0] == "learner"
    assert "rabbitmq" in lifelines
    # Messaging hops are drawn dashed (async), calls solid.
    amqp_line = page.locator('#trace .hop[data-protocol="amqp"] .hop-line').last
    assert amqp_line.evaluate("line => getComputedStyle(line).strokeDasharray") not in ("none", "")
    grpc_line = page.locator('#trace .hop[data-protocol="grpc"] .hop-line').last
    assert grpc_line.evaluate("line => getComputedStyle(line).strokeDasharray") in ("none", "")
    # A label cut to fit between two lifelines is whole in the hop's tooltip.
    hops = page.locator("#trace .hop").evaluate_all(
        "hs => hs.map((h) => [h.querySelector('.hop-label').textContent, h.querySelector('title')?.textContent])"
    )
    assert hops and all(whole for _, whole in hops)
    for label, whole in hops:
        shown = label.split(" · ")[0].rstrip("…")
        assert shown in whole, (label, whole)
    assert page.js_errors == []
    page.screenshot(path=str(artifacts / "trace-harness.png"), full_page=True)


def test_clicking_a_hop_shows_the_span_attributes(page, static_site):
    open_harness(page, static_site)

    page.locator('#trace .hop[data-protocol="grpc"]').last.click()

    details = page.locator("#trace .span-details")
    expect(details.locator("dl")).to_contain_text("grpc")
    expect(details.locator("dl")).to_contain_text("ListItems")
    expect(details.locator(".span-attributes")).to_contain_text("rpc.response.bytes")
    expect(page.locator("#trace .hop.is-selected")).to_have_count(1)


def test_waterfall_indents_children_under_their_parent(page, static_site):
    open_harness(page, static_site, "?spans=4")

    labels = page.locator("#trace .wf-row .wf-label")
    expect(labels).to_have_count(4)
    xs = [float(label.get_attribute("x")) for label in labels.all()]
    assert xs == sorted(xs) and xs[0] < xs[-1], "each call nests one level deeper"


def test_trace_view_stays_responsive_with_5000_spans_and_ignores_replayed_duplicates(
    page, static_site, artifacts
):
    open_harness(page, static_site, "?empty")

    # Feed 5,000 spans in 100 socket-sized batches, then the same again as a
    # reconnect's replay would; then ask how long until the page paints again.
    wait_ms = page.evaluate(
        """async () => {
            const { view, makeSpans } = window.harness;
            const spans = makeSpans(5000);
            for (let i = 0; i < spans.length; i += 50) view.addSpans(spans.slice(i, i + 50));
            view.addSpans(spans.slice(0, 2500));
            const fed = performance.now();
            await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
            return performance.now() - fed;
        }"""
    )

    drawn = counts(page)
    assert drawn["spans"] == "5000", "duplicates by seq are dropped"
    assert int(drawn["traces"]) > 1000
    assert drawn["shownTraces"] == "12", "the diagram keeps to the most recent traces"
    expect(page.locator("#trace .trace-note")).to_contain_text(
        f"Showing last 12 of {drawn['traces']} traces"
    )
    # Virtualised: only the rows near the visible window exist in the DOM.
    assert page.locator("#trace .hop").count() < 80
    assert page.locator("#trace .wf-row").count() < 80
    # A functional bound, not a benchmark: a frozen page would not paint for seconds.
    assert wait_ms < 3000
    page.screenshot(path=str(artifacts / "trace-5000.png"))


def test_trace_picker_shows_one_older_trace(page, static_site):
    open_harness(page, static_site, "?spans=300")
    picker = page.locator("#trace .trace-picker")
    options = picker.locator("option")
    picker.focus()
    assert options.count() > 13
    oldest = options.last.get_attribute("value")

    picker.select_option(oldest)
    page.evaluate("window.harness.view.drawn()")

    assert counts(page)["shownTraces"] == "1"
    expect(page.locator("#trace .trace-separator")).to_have_count(1)
    assert page.locator("#trace .trace-separator").get_attribute("data-trace-id") == oldest


def test_result_renderer_draws_tiles_charts_table_and_marks_a_failed_expectation(page, static_site):
    open_harness(page, static_site)

    first = page.locator("#result .result")
    expect(first.locator(".tile")).to_have_count(4)
    expect(first.locator("svg.chart-bar rect")).to_have_count(6)
    expect(first.locator("svg.chart-line path")).to_have_count(1)
    expect(first.locator(".result-table tbody tr")).to_have_count(2)
    assert first.get_attribute("data-ok") == "true"
    saga = page.locator("#saga .result")
    assert saga.get_attribute("data-ok") == "false"
    expect(saga.locator(".badge-error")).to_contain_text("expectation failed")


def test_saga_result_draws_lanes_compensations_state_machine_and_invariants(page, static_site):
    open_harness(page, static_site)

    saga = page.locator("#saga .saga")
    expect(saga.locator(".saga-lane-label")).to_have_text(
        ["coordinator", "orders", "inventory", "payments", "shipping"]
    )
    kinds = [step.get_attribute("data-kind") for step in saga.locator(".saga-step").all()]
    assert kinds == ["forward", "forward", "failure", "compensation", "compensation"]
    expect(saga.locator(".saga-state.is-current")).to_have_text("5CANCELLED")
    expect(saga.locator(".saga-path")).to_have_text(
        "Path: PENDING → STOCK_RESERVED → PAYMENT_FAILED → COMPENSATING → CANCELLED"
    )
    expect(saga.locator(".saga-state")).to_have_count(8)
    expect(saga.locator(".saga-state.is-visited")).to_have_count(5)
    expect(saga.locator(".invariant.failed")).to_have_count(1)
    expect(saga.locator(".invariant.ok")).to_have_count(2)


def test_metrics_view_draws_a_gauge_for_every_nested_number(page, static_site):
    open_harness(page, static_site)

    metrics = page.locator("#metrics")
    expect(metrics.locator(".metric-table caption")).to_have_text(["queues"])
    # A flat object of numbers is a group of tiles, one per field.
    expect(metrics.locator(".metric-caption")).to_have_text(["breaker"])
    queues = metrics.locator('[data-metric-group="queues"]')
    expect(queues.locator("tbody th")).to_have_text(["orders.email", "orders.billing"])
    expect(queues.locator("thead th")).to_have_text(
        ["depth", "unacked", "consumers", "publish rate", "deliver rate"]
    )
    expect(metrics.locator("meter")).to_have_count(11)
    assert metrics.locator(".sparkline path").count() == 11
    expect(metrics.locator('[data-metric="breaker open value"] .metric-value')).to_have_text("1")


def test_a_filter_keeps_only_the_calls_it_names_in_every_kept_trace_until_cleared(
    page, static_site
):
    open_harness(page, static_site, "?spans=120")
    before = counts(page)
    page.evaluate(
        """window.harness.view.setFilter({label: "gateway → catalog",
            where: {service: "gateway", kind: "client", attributes: {"rpc.method": "ListItems"}}})"""
    )
    page.evaluate("window.harness.view.drawn()")
    chip = page.locator("#trace .trace-filter")
    expect(chip).to_be_visible()
    seen = page.evaluate(
        """() => {
          const spans = [...window.harness.view.store.traces.values()].flatMap((t) => [...t.spans.values()]);
          const calls = spans.filter((s) => s.service === "gateway" && s.kind === "client");
          const ids = new Set(calls.map((s) => s.span_id));
          const byId = new Map(spans.map((s) => [s.span_id, s]));
          const drawn = (selector) => [...document.querySelectorAll(selector)].map((n) => byId.get(n.dataset.spanId));
          return {
            calls: calls.length,
            hops: drawn("#trace .seq-window .hop").map((s) => ids.has(s.span_id)),
            rows: drawn("#trace .wf-window .wf-row").map((s) => ids.has(s.span_id) || (ids.has(s.parent_id) && s.kind === "server")),
          };
        }"""
    )
    after = counts(page)
    # Every kept trace is searched, not only the 12 most recent the view shows unfiltered.
    assert int(after["filteredCalls"]) == seen["calls"] > int(before["shownTraces"])
    expect(chip).to_have_text(
        re.compile(rf"^filtered: gateway → catalog \({seen['calls']} calls\)")
    )
    assert after["hopsHttp"] == after["hopsAmqp"] == "0"
    assert int(after["hopsGrpc"]) == seen["calls"]
    assert seen["hops"] and all(seen["hops"])
    assert seen["rows"] and all(seen["rows"])

    chip.get_by_role("button", name="Clear the filter: show every call").click()
    page.evaluate("window.harness.view.drawn()")
    expect(chip).to_be_hidden()
    assert counts(page)["hopsAmqp"] == before["hopsAmqp"] != "0"
    assert counts(page)["filter"] == ""
    assert page.js_errors == []
