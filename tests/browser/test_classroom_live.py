"""The class, in real browsers against the real lab: the live class view, a scenario
pushed to two learners' sandboxes and confirmed from their spans, and a graded prediction."""

from playwright.sync_api import expect

from lab.classroom.models import Prediction, ScenarioTarget
from lab.classroom.services import cohort_create, cohort_join
from lab.curriculum.selectors import lesson_get
from lab.sandboxes.models import Run, Sandbox
from lab.users.models import Cohort
from tests.browser.axe import assert_no_axe_violations
from tests.browser.live import off_the_loop

PASSWORD = "correct-horse-battery"
VIEWPORT = {"width": 1400, "height": 1000}


def log_in(page, base_url, username):
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text(f"Signed in as {username}")).to_be_visible()


def new_page(browser, errors):
    # bypass_csp: axe-core is injected as a script the page's CSP would refuse.
    page = browser.new_context(viewport=VIEWPORT, bypass_csp=True).new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def start_sandbox(page, base_url, slug):
    page.goto(f"{base_url}/lessons/{slug}/")
    page.get_by_role("button", name="Start sandbox").click()
    expect(page.locator("#sandbox-panel")).to_have_attribute(
        "data-state", "running", timeout=30_000
    )
    expect(page.locator("#connection-status")).to_have_text("live", timeout=10_000)


def run_experiment(page, name):
    experiment = page.locator(f'.experiment[data-experiment="{name}"]')
    experiment.get_by_role("button", name="Run").click()
    expect(experiment).to_have_attribute("data-run-state", "done", timeout=60_000)


def test_a_cohort_made_on_the_site_is_joined_by_code_and_its_class_view_is_pushed_live(
    live_lab, browser, make_user, artifacts, axe_source
):
    make_user("teacher", "instructor", password=PASSWORD)
    make_user("ada", "learner", password=PASSWORD)
    errors: list[str] = []
    instructor, learner = new_page(browser, errors), new_page(browser, errors)
    try:
        log_in(instructor, live_lab, "teacher")
        instructor.get_by_role("link", name="Cohorts").click()
        instructor.get_by_label("Cohort name").fill("Evening class")
        instructor.get_by_role("button", name="Make cohort").click()
        expect(instructor.locator("#class-status")).to_have_text("live", timeout=10_000)
        code = instructor.locator("#join-code").text_content()

        log_in(learner, live_lab, "ada")
        learner.get_by_role("link", name="Cohorts").click()
        learner.get_by_label("Join code").fill(code.lower())
        learner.get_by_role("button", name="Join").click()
        expect(learner.get_by_text("You joined Evening class")).to_be_visible()

        # Joining is pushed to the class view: the learner appears without a reload.
        row = instructor.locator('#class-grid tr[data-learner="ada"]')
        expect(row).to_be_visible(timeout=10_000)
        expect(row.locator('td[data-step="styles"]')).to_have_attribute("data-state", "current")

        # From here on the class page makes no HTTP request: what changes is pushed.
        requests: list[str] = []
        instructor.on("request", lambda request: requests.append(request.url))
        learner.goto(f"{live_lab}/lessons/rest-vs-grpc/")
        learner.locator("#step-styles").get_by_role("button", name="Mark step done").click()
        expect(row.locator('td[data-step="styles"]')).to_have_attribute(
            "data-state", "done", timeout=10_000
        )
        step_ids = [step.id for step in lesson_get(slug="rest-vs-grpc").steps]
        after_styles = step_ids[step_ids.index("styles") + 1]
        expect(row.locator(f'td[data-step="{after_styles}"]')).to_have_attribute(
            "data-state", "current"
        )
        assert requests == [], requests
        instructor.screenshot(path=str(artifacts / "classroom-live.png"), full_page=True)
        assert_no_axe_violations(instructor, axe_source, "the class view")
        learner.goto(f"{live_lab}/class/")
        assert_no_axe_violations(learner, axe_source, "a learner's cohorts page")
        assert errors == []
    finally:
        instructor.context.close()
        learner.context.close()


def test_a_scenario_pushed_to_the_cohort_is_confirmed_in_two_learners_spans_then_reset(
    live_lab, browser, make_user, artifacts
):
    teacher, _ = make_user("teacher", "instructor", password=PASSWORD)
    cohort = off_the_loop(cohort_create, instructor=teacher, name="Faults")
    for name in ("ada", "bob"):
        learner, _ = make_user(name, "learner", password=PASSWORD)
        off_the_loop(cohort_join, learner=learner, code=cohort.join_code.code)
    errors: list[str] = []
    instructor = new_page(browser, errors)
    learners = {name: new_page(browser, errors) for name in ("ada", "bob")}
    try:
        for name, page in learners.items():
            log_in(page, live_lab, name)
            start_sandbox(page, live_lab, "rest-vs-grpc")
        log_in(instructor, live_lab, "teacher")
        instructor.goto(f"{live_lab}/class/cohorts/{cohort.id}/?lesson=rest-vs-grpc")
        expect(instructor.locator("#class-status")).to_have_text("live", timeout=10_000)
        expect(
            instructor.locator('#class-grid tr[data-learner="bob"] td[data-sandbox-state]')
        ).to_have_attribute("data-sandbox-state", "running")

        form = instructor.locator(".scenario-form")
        form.get_by_label("Service").select_option("catalog-rest")
        form.get_by_label("Action").select_option("delay")
        form.get_by_label("Delay (ms)").fill("400")
        form.get_by_label("For (s)").fill("120")
        form.get_by_role("button", name="Push to the class").click()
        expect(instructor.get_by_text("to 2 running sandboxes")).to_be_visible()
        scenario = instructor.locator("#scenario-list .scenario").first
        for name in learners:
            expect(scenario.locator(f'li[data-learner="{name}"]')).to_contain_text(
                "applied", timeout=15_000
            )

        # Each learner's own call meets the slow service; their spans confirm it.
        for page in learners.values():
            run_experiment(page, "one-call")
        for name in learners:
            target = scenario.locator(f'li[data-learner="{name}"]')
            expect(target).to_have_attribute("data-confirmed", "true", timeout=20_000)
            expect(target).to_contain_text("catalog-rest answered")
        for target in ScenarioTarget.objects.filter(scenario__cohort=cohort):
            took = int(target.evidence.split(" in ")[1].split(" ms")[0])
            assert took >= 360, target.evidence
        instructor.screenshot(path=str(artifacts / "classroom-scenario.png"), full_page=True)

        scenario.get_by_role("button", name="Reset").click()
        scenario = instructor.locator("#scenario-list .scenario").first
        expect(scenario).to_have_attribute("data-active", "false", timeout=10_000)
        for name in learners:
            expect(scenario.locator(f'li[data-learner="{name}"]')).to_have_attribute(
                "data-cleared", "true"
            )
        # The fault is gone from each sandbox, as its supervisor reported after the clear.
        for target in ScenarioTarget.objects.filter(scenario__cohort=cohort).select_related(
            "sandbox"
        ):
            target.sandbox.refresh_from_db()
            assert target.sandbox.services["catalog-rest"]["delay_ms"] == 0
        assert errors == []
    finally:
        instructor.context.close()
        for page in learners.values():
            page.context.close()


def test_a_prediction_is_recorded_before_the_run_and_graded_against_its_figure(
    live_lab, browser, make_user, artifacts, axe_source
):
    teacher, _ = make_user("teacher", "instructor", password=PASSWORD)
    learner_user, _ = make_user("ada", "learner", password=PASSWORD)
    cohort = off_the_loop(cohort_create, instructor=teacher, name="Predictions")
    off_the_loop(cohort_join, learner=learner_user, code=cohort.join_code.code)
    errors: list[str] = []
    learner, instructor = new_page(browser, errors), new_page(browser, errors)
    try:
        log_in(learner, live_lab, "ada")
        start_sandbox(learner, live_lab, "rest-vs-grpc")
        checkpoint = learner.locator("#checkpoint-predict-wire-ratio")
        checkpoint.get_by_label("Your prediction").fill("2")
        checkpoint.get_by_role("button", name="Record prediction").click()
        checkpoint = learner.locator("#checkpoint-predict-wire-ratio")
        expect(checkpoint.locator(".prediction-recorded")).to_contain_text("Recorded: 2 x")
        expect(checkpoint).to_have_attribute("data-graded", "false")

        run_experiment(learner, "one-call")
        checkpoint = learner.locator("#checkpoint-predict-wire-ratio")
        expect(checkpoint).to_have_attribute("data-graded", "true", timeout=10_000)
        prediction = Prediction.objects.get(user=learner_user, checkpoint="predict-wire-ratio")
        run = Run.objects.get(id=prediction.run_id)
        figures = {item["label"]: item["value"] for item in run.result["summary"]}
        ratio = figures["REST call on the wire"] / figures["gRPC call on the wire"]
        assert abs(prediction.observed - ratio) < 1e-9
        assert prediction.correct == (abs(2 - ratio) <= 0.3 * ratio)
        expect(checkpoint.locator(".predicted")).to_have_text("2 x")
        expect(checkpoint.locator(".observed")).to_have_text(f"{ratio:.3g} x")
        expect(checkpoint.locator(".verdict")).to_be_visible()
        expect(checkpoint.get_by_label("Your prediction")).to_be_disabled()
        learner.screenshot(path=str(artifacts / "lesson-after-run.png"))
        assert_no_axe_violations(learner, axe_source, "a lesson with a graded prediction")
        learner.goto(f"{live_lab}/")
        expect(learner.locator('[data-lesson="rest-vs-grpc"] .claim-result')).to_have_attribute(
            "data-held", "held"
        )
        assert_no_axe_violations(learner, axe_source, "the home page")

        # The instructor sees the prediction beside the measurement.
        log_in(instructor, live_lab, "teacher")
        cohort = Cohort.objects.get(name="Predictions")
        instructor.goto(f"{live_lab}/class/cohorts/{cohort.id}/?lesson=rest-vs-grpc")
        detail = instructor.locator('.checkpoint-detail[data-checkpoint="predict-wire-ratio"]')
        expect(detail.locator('tr[data-learner="ada"] .answer')).to_have_text("2 x", timeout=10_000)
        expect(detail.locator('tr[data-learner="ada"] .observed')).to_have_text(f"{ratio:.3g} x")
        results = instructor.locator('.class-result[data-experiment="one-call"]')
        expect(results.locator("figure").first).to_be_visible()
        # The predicted ratio is drawn beside the measured one.
        ratio = results.locator("figure", has_text="REST call on the wire / gRPC call on the wire")
        expect(ratio.locator(".chart-legend")).to_contain_text("predicted")
        assert errors == []
    finally:
        learner.context.close()
        instructor.context.close()


def test_an_instructor_warms_sandboxes_and_a_learner_starts_in_one_already_running(
    live_lab, browser, make_user, artifacts, axe_source
):
    teacher, _ = make_user("warm-teacher", "instructor", password=PASSWORD)
    learner_user, _ = make_user("warm-ada", "learner", password=PASSWORD)
    cohort = off_the_loop(lambda: cohort_create(instructor=teacher, name="Warm class"))
    off_the_loop(lambda: cohort.learners.add(learner_user))
    errors: list[str] = []
    instructor, learner = new_page(browser, errors), new_page(browser, errors)
    try:
        log_in(instructor, live_lab, "warm-teacher")
        instructor.goto(f"{live_lab}/class/cohorts/{cohort.id}/?lesson=rest-vs-grpc")
        expect(instructor.locator("#class-status")).to_have_text("live", timeout=10_000)
        form = instructor.locator(".warm-form")
        form.get_by_label("Sandboxes").fill("0")
        form.get_by_role("button", name="Warm sandboxes").click()
        # The browser's own check stops 0; past it, the API's error is shown.
        form.get_by_label("Sandboxes").evaluate("(input) => input.removeAttribute('min')")
        form.get_by_role("button", name="Warm sandboxes").click()
        expect(instructor.locator("#warm-status [role=alert]")).to_contain_text("size")
        form.get_by_label("Sandboxes").fill("1")
        form.get_by_role("button", name="Warm sandboxes").click()
        pool = instructor.locator("#warm-status .warm-pool")
        expect(pool).to_have_attribute("data-warm", "1", timeout=30_000)
        expect(pool.locator("progress")).to_have_attribute("value", "1")
        instructor.screenshot(path=str(artifacts / "classroom-warm-pool.png"), full_page=True)
        assert_no_axe_violations(instructor, axe_source, "the class view with a warm pool")

        log_in(learner, live_lab, "warm-ada")
        learner.goto(f"{live_lab}/lessons/rest-vs-grpc/")
        learner.get_by_role("button", name="Start sandbox").click()
        expect(learner.locator("#sandbox-panel")).to_have_attribute(
            "data-state", "running", timeout=10_000
        )
        expect(pool).to_have_attribute("data-taken", "1", timeout=10_000)
        expect(pool).to_have_attribute("data-warm", "0")
        taken = off_the_loop(
            lambda: list(Sandbox.objects.filter(owner=learner_user).values("warm_pool", "taken_at"))
        )
        assert len(taken) == 1 and taken[0]["warm_pool"] and taken[0]["taken_at"], taken
        run_experiment(learner, "one-call")

        pool.get_by_role("button", name="End now").click()
        expect(instructor.locator("#warm-status")).to_contain_text(
            "No sandboxes are warm", timeout=10_000
        )
        expect(learner.locator("#sandbox-panel")).to_have_attribute("data-state", "running")
        assert errors == []
    finally:
        instructor.context.close()
        learner.context.close()
