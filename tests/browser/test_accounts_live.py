"""Guests, sign-up, quizzes and the instructor's class view, in a real browser against the real lab."""

from playwright.sync_api import expect

from lab.classroom.services import cohort_create, cohort_join
from tests.browser.axe import assert_no_axe_violations
from tests.browser.live import off_the_loop, try_as_guest

PASSWORD = "correct-horse-battery"


def log_in(page, base_url, username):
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text(f"Signed in as {username}")).to_be_visible()


def test_guest_answers_a_quiz_inline_marks_a_step_and_keeps_progress_after_signing_up(
    live_lab, page, artifacts
):
    page.goto(f"{live_lab}/lessons/rest-vs-grpc/")
    # An anonymous reader records nothing and starts nothing until asking to be a guest.
    expect(page.get_by_role("button", name="Start sandbox")).to_have_count(0)
    expect(page.locator("#step-status-styles").get_by_role("button")).to_have_count(0)
    try_as_guest(page)
    expect(page.get_by_text("Guest", exact=True)).to_be_visible()
    progress = page.locator("#lesson-progress .lesson-progress-label")
    expect(progress).to_have_text("0% done")
    quiz = page.locator("#checkpoint-bytes-quiz")

    quiz.get_by_label("protobuf compresses the body with gzip").check()
    quiz.get_by_role("button", name="Check").click()
    expect(page.locator("#checkpoint-bytes-quiz .verdict")).to_have_text("✕ Not quite, try again.")
    expect(progress).to_have_text("0% done")

    page.locator("#checkpoint-bytes-quiz").get_by_label("field numbers", exact=False).check()
    page.locator("#checkpoint-bytes-quiz").get_by_role("button", name="Check").click()
    expect(page.locator("#checkpoint-bytes-quiz .verdict")).to_have_text("✓ Right.")
    expect(progress).not_to_have_text("0% done")

    page.locator("#step-status-styles").get_by_role("button", name="Mark step done").click()
    expect(page.locator("#step-status-styles")).to_contain_text("done")
    expect(page.locator("#nav-step-styles")).to_have_class("is-done")
    percent_as_guest = progress.text_content()

    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()

    expect(page.get_by_text("Signed in as grace")).to_be_visible()
    card = page.locator(".lesson-list li", has_text="REST vs gRPC")
    expect(card.locator(".lesson-progress-label")).to_have_text(percent_as_guest)
    page.goto(f"{live_lab}/lessons/rest-vs-grpc/")
    expect(page.locator("#step-status-styles")).to_contain_text("done")
    expect(page.locator("#checkpoint-bytes-quiz")).to_have_attribute("data-passed", "true")
    page.screenshot(path=str(artifacts / "lesson-after-signup.png"))

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    assert page.js_errors == []


def test_instructor_follows_the_class_live_and_watches_a_learners_sandbox_read_only(
    live_lab, browser, make_user, artifacts, axe_source
):
    ada, _ = make_user("ada", "learner", password=PASSWORD)
    teacher, _ = make_user("teacher", "instructor", password=PASSWORD)
    # An instructor sees the learners of the cohorts they teach.
    cohort = off_the_loop(cohort_create, instructor=teacher, name="Monday")
    off_the_loop(cohort_join, learner=ada, code=cohort.join_code.code)
    learner = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    # bypass_csp: axe-core is injected as a script the page's CSP would refuse.
    instructor = browser.new_context(
        viewport={"width": 1400, "height": 1000}, bypass_csp=True
    ).new_page()
    try:
        log_in(learner, live_lab, "ada")
        log_in(instructor, live_lab, "teacher")
        instructor.get_by_role("link", name="Cohorts").click()
        instructor.get_by_role("link", name="Monday").click()
        expect(instructor.locator("#class-status")).to_have_text("live", timeout=10_000)
        row = instructor.locator('#class-grid tr[data-learner="ada"]')
        sandbox_cell = row.locator("td[data-sandbox-state]")
        expect(sandbox_cell).to_have_attribute("data-sandbox-state", "none")
        # Nothing polls: what changes is pushed over the class view's WebSocket.
        requests: list[str] = []
        instructor.on("request", lambda request: requests.append(request.url))

        learner.goto(f"{live_lab}/lessons/rest-vs-grpc/")
        learner.get_by_role("button", name="Start sandbox").click()
        expect(learner.locator("#sandbox-panel")).to_have_attribute(
            "data-state", "running", timeout=30_000
        )

        expect(sandbox_cell).to_have_attribute("data-sandbox-state", "running", timeout=15_000)
        assert requests == [], requests
        instructor.screenshot(path=str(artifacts / "instructor-class.png"))
        assert_no_axe_violations(instructor, axe_source, "the class view, a sandbox running")

        row.get_by_role("link", name="Watch ada's sandbox").click()
        expect(instructor.get_by_text("Watching ada's sandbox, read-only")).to_be_visible()
        expect(instructor.locator("#sandbox-panel")).to_have_attribute("data-state", "running")
        expect(instructor.locator("#connection-status")).to_have_text("live", timeout=10_000)
        # Read-only: no controls at all.
        expect(instructor.get_by_role("button", name="Stop sandbox")).to_have_count(0)
        expect(instructor.get_by_role("button", name="Run")).to_have_count(0)
        expect(instructor.locator("#sandbox-panel input[type=range]")).to_have_count(0)

        # What the learner does shows up live for the instructor.
        learner.locator('.experiment[data-experiment="one-call"]').get_by_role(
            "button", name="Run"
        ).click()
        expect(instructor.locator('.experiment[data-experiment="one-call"] .result')).to_be_visible(
            timeout=60_000
        )
        instructor.wait_for_function(
            "Number(document.getElementById('trace-view').dataset.hopsGrpc) > 0"
        )
        instructor.locator(".live-panel").screenshot(
            path=str(artifacts / "instructor-read-only-panel.png")
        )
    finally:
        learner.context.close()
        instructor.context.close()


def test_the_old_class_address_shows_a_learner_only_their_own_cohorts(live_lab, page, make_user):
    make_user("bob", "learner", password=PASSWORD)
    log_in(page, live_lab, "bob")

    response = page.goto(f"{live_lab}/instructor/")

    assert response.status == 200 and page.url == f"{live_lab}/class/"
    expect(page.get_by_role("heading", name="Join a cohort")).to_be_visible()
    expect(page.get_by_role("heading", name="Cohorts you teach")).to_have_count(0)
    expect(page.get_by_role("button", name="Make cohort")).to_have_count(0)
