"""Guests, sign-up, quizzes and the instructor's class view, in a real browser against the real lab."""

from playwright.sync_api import expect

from tests.browser.live import try_as_guest

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


def test_instructor_sees_the_class_and_watches_a_learners_sandbox_read_only(
    live_lab, browser, make_user, artifacts
):
    from lab.users.models import Cohort

    ada, _ = make_user("ada", "learner", password=PASSWORD)
    teacher, _ = make_user("teacher", "instructor", password=PASSWORD)
    # An instructor sees the learners of the cohorts they teach.
    cohort = Cohort.objects.create(name="Monday")
    cohort.instructors.add(teacher)
    cohort.learners.add(ada)
    learner = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    instructor = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        log_in(learner, live_lab, "ada")
        log_in(instructor, live_lab, "teacher")
        instructor.get_by_role("link", name="Class").click()
        row = instructor.locator('tr[data-learner="ada"]')
        expect(row).to_contain_text("none")

        learner.goto(f"{live_lab}/lessons/rest-vs-grpc/")
        learner.get_by_role("button", name="Start sandbox").click()
        expect(learner.locator("#sandbox-panel")).to_have_attribute(
            "data-state", "running", timeout=30_000
        )

        # The class view polls (htmx, every 5 s): the new sandbox appears without a reload.
        expect(row.locator(".state-badge")).to_have_text("running", timeout=15_000)
        instructor.screenshot(path=str(artifacts / "instructor-class.png"))

        row.get_by_role("link", name="REST vs gRPC").click()
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


def test_learners_may_not_open_the_class_view(live_lab, page, make_user):
    make_user("bob", "learner", password=PASSWORD)
    log_in(page, live_lab, "bob")

    response = page.goto(f"{live_lab}/instructor/")

    assert response.status == 403
    expect(page.get_by_role("link", name="Class")).to_have_count(0)
