"""Every route of the lab, as each kind of visitor, against the real daphne.

The routes are read from lab/urls.py, so a new route fails this test until it
says who may use it. Five visitors: the learner who owns the sandbox, another
learner, an instructor of the owner's cohort, an instructor of another cohort,
and an anonymous visitor. Each request is one a browser or a script could
send: a session cookie with its CSRF token, from the lab's own origin.
"""

import secrets
from datetime import timedelta
from html import escape

import pytest
import requests
from channels.testing import WebsocketCommunicator
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from lab.classroom.models import Scenario
from lab.curriculum.selectors import lesson_get, lesson_list
from lab.sandboxes.models import Run, RunState, Sandbox, SandboxState, WarmPool
from lab.users.models import Cohort
from lab.users.services import MODEL_BACKEND

from .helpers import LESSON

ACTORS = ("owner", "other_learner", "cohort_instructor", "other_instructor", "anonymous")


def everyone(status) -> dict:
    return dict.fromkeys(ACTORS, status)


def signed_in(status, anonymous) -> dict:
    return {**everyone(status), "anonymous": anonymous}


def watchers(allowed, refused=404) -> dict:
    """The owner and the owner's instructor are ``allowed``; the rest ``refused``."""
    return {
        "owner": allowed,
        "other_learner": refused,
        "cohort_instructor": allowed,
        "other_instructor": refused,
        "anonymous": refused,
    }


def owner_only(allowed, *, instructor=403, anonymous=403) -> dict:
    """Only the owner drives; the owner's instructor watches read-only."""
    return {
        "owner": allowed,
        "other_learner": 404,
        "cohort_instructor": instructor,
        "other_instructor": 404,
        "anonymous": anonymous,
    }


def instructors_only(allowed, *, learner=403, anonymous=403) -> dict:
    return {
        "owner": learner,
        "other_learner": learner,
        "cohort_instructor": allowed,
        "other_instructor": allowed,
        "anonymous": anonymous,
    }


def class_teacher(allowed, anonymous) -> dict:
    """Only an instructor of the cohort; to anyone else signed in it does not exist."""
    return {**signed_in(404, anonymous), "cohort_instructor": allowed}


WRITABLE = {202, 400, 409}  # past authorization: queued, or refused by the sandbox's state

# (route name, method, path, body, expected status per actor); "admin" stands for the admin site.
# Ordered so that requests that end something (stop, log out) come last.
REQUESTS = [
    ("admin", "GET", "/admin/", None, everyone(302)),
    ("api-schema", "GET", "/api/schema/", None, everyone(200)),
    ("api-lessons", "GET", "/api/lessons/", None, everyone(200)),
    ("api-lesson", "GET", "/api/lessons/{lesson}/", None, everyone(200)),
    ("api-progress", "POST", "/api/lessons/{lesson}/progress/", {"step": "{step}"},
     signed_in(200, anonymous=403)),
    ("api-sandboxes", "GET", "/api/sandboxes/", None, everyone(200)),
    # A lesson that does not exist: past the permission it is a 400, and nothing starts.
    ("api-sandboxes", "POST", "/api/sandboxes/", {"lesson": "no-such-lesson"},
     signed_in(400, anonymous=403)),
    ("api-sandbox", "GET", "/api/sandboxes/{sandbox}/", None, watchers(200)),
    ("api-runs", "GET", "/api/sandboxes/{sandbox}/runs/", None, watchers(200)),
    ("api-runs", "POST", "/api/sandboxes/{sandbox}/runs/", {"experiment": "one-call"},
     owner_only(WRITABLE)),
    ("api-faults", "POST", "/api/sandboxes/{sandbox}/faults/",
     {"service": "caller", "action": "stop"}, owner_only(WRITABLE)),
    # The mesh lesson's control plane: a stopped sandbox answers 409 past authorization.
    ("api-mesh", "GET", "/api/sandboxes/{mesh_sandbox}/mesh/", None, watchers(409)),
    ("api-mesh-policy", "POST", "/api/sandboxes/{mesh_sandbox}/mesh/policy/",
     {"policy": "kind: VirtualService"}, owner_only(409)),
    # The gateway lesson's policy editor: the same shape, through the gateway service.
    ("api-gateway", "GET", "/api/sandboxes/{gateway_sandbox}/gateway/", None, watchers(409)),
    ("api-gateway-policy", "POST", "/api/sandboxes/{gateway_sandbox}/gateway/policy/",
     {"policy": "routes: []"}, owner_only(409)),
    ("api-run", "GET", "/api/runs/{run}/", None, watchers(200)),
    ("api-run-spans", "GET", "/api/runs/{run}/spans/", None, watchers(200)),
    ("api-run-trace", "GET", "/api/runs/{run}/trace/", None,
     owner_only(200, instructor=404, anonymous=404)),
    # Warm pools: an instructor's own cohorts only; others see none, learners may not ask.
    ("api-warm-pools", "GET", "/api/warm-pools/", None, everyone(200)),
    # A lesson that does not exist (the cohort's instructor) or a cohort not taught (the
    # other one): past the permission it is a 400, and nothing starts.
    ("api-warm-pools", "POST", "/api/warm-pools/",
     {"cohort": "{cohort}", "lesson": "no-such-lesson", "size": 1, "minutes": 5},
     {**instructors_only(400), "anonymous": 403}),
    ("api-warm-pool", "GET", "/api/warm-pools/{pool}/", None, class_teacher(200, 404)),
    ("home", "GET", "/", None, everyone(200)),
    ("lesson", "GET", "/lessons/{lesson}/", None, everyone(200)),
    ("step-done", "POST", "/lessons/{lesson}/steps/{step}/done/", {}, signed_in(302, 403)),
    ("checkpoint-answer", "GET", "/lessons/{lesson}/checkpoints/{quiz}/", None, everyone(200)),
    ("checkpoint-answer", "POST", "/lessons/{lesson}/checkpoints/{quiz}/", {"answer": "0"},
     signed_in(302, 403)),
    ("signup", "GET", "/accounts/signup/", None, signed_in(302, anonymous=200)),
    ("login", "GET", "/accounts/login/", None, everyone(200)),
    ("login", "POST", "/accounts/login/", {"username": "nobody", "password": "wrong"},
     everyone(200)),
    # The old class page's address: a redirect to /class/, which decides who may see what.
    ("instructor", "GET", "/instructor/", None, everyone(302)),
    ("instructor-sandbox", "GET", "/instructor/sandboxes/{sandbox}/", None,
     {**instructors_only(200, anonymous=302), "other_instructor": 404}),
    # The classroom app (lab/classroom): cohorts, joining, the live class view, scenarios.
    ("classroom-cohorts", "GET", "/class/", None, signed_in(200, anonymous=302)),
    ("classroom-join", "GET", "/class/join/", None, signed_in(200, anonymous=302)),
    ("classroom-join", "POST", "/class/join/", {"code": "no-such-code"},
     signed_in(400, anonymous=302)),
    ("classroom-cohort", "GET", "/class/cohorts/{cohort}/", None, class_teacher(200, 302)),
    ("classroom-progress-csv", "GET", "/class/cohorts/{cohort}/progress.csv", None,
     class_teacher(200, 403)),
    # An empty form: past authorization it is sent back with a message, nothing is pushed.
    ("classroom-scenarios", "POST", "/class/cohorts/{cohort}/scenarios/", {},
     class_teacher(302, 403)),
    ("classroom-scenario-reset", "POST", "/class/cohorts/{cohort}/scenarios/{scenario}/reset/",
     {}, class_teacher(302, 403)),
    ("classroom-prediction", "GET", "/class/predictions/{predict_lesson}/{predict}/", None,
     everyone(200)),
    ("classroom-prediction", "POST", "/class/predictions/{predict_lesson}/{predict}/",
     {"value": ""}, signed_in(302, anonymous=403)),
    ("api-sandbox", "DELETE", "/api/sandboxes/{sandbox}/", None, owner_only(202)),
    ("api-warm-pool", "DELETE", "/api/warm-pools/{pool}/", None, class_teacher(200, 403)),
    # Signed in, this makes nobody; anonymous, it makes a guest (the one way to).
    ("guest", "POST", "/accounts/guest/", {"next": "/"}, everyone(302)),
    ("logout", "POST", "/accounts/logout/", {}, everyone(302)),
]  # fmt: skip


def route_names() -> set[str]:
    """Return the name of every route in lab/urls.py; the admin site counts as one."""
    names: set[str] = set()

    def walk(patterns) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    names.add("admin")
                else:
                    walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                assert pattern.name, f"route {pattern.pattern} has no name"
                names.add(pattern.name)

    walk(get_resolver().url_patterns)
    return names


def session_cookie(user) -> str:
    """Return a session key for ``user``, as logging in would make it."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = MODEL_BACKEND
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    return store.session_key


@pytest.fixture
def classroom(make_user):
    """The owner's ended sandbox with one run, the five visitors, and two cohorts."""
    owner, owner_token = make_user("owner-ada", role="learner")
    other, other_token = make_user("other-bob", role="learner")
    teacher, teacher_token = make_user("teacher-cy", role="instructor")
    stranger, stranger_token = make_user("teacher-di", role="instructor")
    cohort = Cohort.objects.create(name="ada's class")
    cohort.instructors.add(teacher)
    cohort.learners.add(owner)
    Cohort.objects.create(name="bob's class").instructors.add(stranger)
    Cohort.objects.get(name="bob's class").learners.add(other)
    sandbox = Sandbox.objects.create(
        owner=owner,
        lesson=LESSON,
        state=SandboxState.STOPPED,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    run = Run.objects.create(sandbox=sandbox, experiment="one-call", state=RunState.DONE)
    mesh_sandbox = Sandbox.objects.create(
        owner=owner,
        lesson="service-mesh",
        state=SandboxState.STOPPED,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    gateway_sandbox = Sandbox.objects.create(
        owner=owner,
        lesson="api-gateway",
        state=SandboxState.STOPPED,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    lesson = lesson_get(slug=LESSON)
    quiz = next(item for item in lesson.checkpoints if item.kind == "quiz")
    predict_lesson, predict = next(
        (each.slug, item.id)
        for each in lesson_list()
        for item in each.checkpoints
        if item.kind == "predict"
    )
    # A scenario with no targets: resetting it touches no sandbox.
    scenario = Scenario.objects.create(
        cohort=cohort, created_by=teacher, lesson=LESSON, service="caller", action="delay"
    )
    # Ended already: the lab's reconciler starts nothing for it while the test runs.
    pool = WarmPool.objects.create(
        cohort=cohort, created_by=teacher, lesson=LESSON, size=1, until=timezone.now()
    )
    users = {
        "owner": owner,
        "other_learner": other,
        "cohort_instructor": teacher,
        "other_instructor": stranger,
    }
    return {
        "users": users,
        "tokens": {
            "owner": owner_token,
            "other_learner": other_token,
            "cohort_instructor": teacher_token,
            "other_instructor": stranger_token,
        },
        "values": {
            "lesson": LESSON,
            "step": lesson.steps[0].id,
            "quiz": quiz.id,
            "sandbox": sandbox.id,
            "run": run.id,
            "mesh_sandbox": mesh_sandbox.id,
            "gateway_sandbox": gateway_sandbox.id,
            "cohort": cohort.id,
            "scenario": scenario.id,
            "pool": pool.id,
            "predict_lesson": predict_lesson,
            "predict": predict,
        },
    }


def browser_for(live_lab: str, user) -> requests.Session:
    """A visitor's browser: a session (unless anonymous) and a CSRF cookie it can echo."""
    browser = requests.Session()
    csrf = secrets.token_hex(16)  # a 32-character secret is a valid CSRF cookie and token
    # Set for the lab's host as the lab sets them, so a Set-Cookie replaces them.
    host = live_lab.split("//", 1)[1].split(":")[0]
    browser.cookies.set("csrftoken", csrf, domain=host, path="/")
    if user is not None:
        browser.cookies.set("sessionid", session_cookie(user), domain=host, path="/")
    browser.headers.update({"X-CSRFToken": csrf, "Origin": live_lab, "Referer": live_lab + "/"})
    return browser


def fill(template, values: dict):
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    return template.format(**values) if isinstance(template, str) else template


def test_every_route_is_classified():
    assert route_names() == {name for name, *_ in REQUESTS}


def test_every_route_as_each_visitor(live_lab, classroom):
    browsers = {actor: browser_for(live_lab, classroom["users"].get(actor)) for actor in ACTORS}
    failures = []
    for name, method, path, body, expected in REQUESTS:
        url = live_lab + fill(path, classroom["values"])
        for actor in ACTORS:
            kwargs: dict = {"allow_redirects": False, "timeout": 30}
            if body is not None:
                data = fill(body, classroom["values"])
                if path.startswith("/api/"):
                    kwargs["json"] = data
                else:
                    kwargs["data"] = data
            browser = browsers[actor]
            response = browser.request(method, url, **kwargs)
            if "csrftoken" in response.cookies:  # a login rotates it: echo the new one
                browser.headers["X-CSRFToken"] = response.cookies["csrftoken"]
            wanted = expected[actor]
            allowed = wanted if isinstance(wanted, set) else {wanted}
            if response.status_code not in allowed:
                failures.append(
                    f"{method} {name} as {actor}: {response.status_code}, want {wanted}"
                )
            elif path.startswith("/api/") and response.status_code >= 400:
                body_json = response.json()
                if set(body_json) != {"detail", "errors"}:
                    failures.append(f"{method} {name} as {actor}: not the JSON error {body_json}")
    assert not failures, "\n".join(failures)


def test_the_old_class_address_leads_each_instructor_to_their_own_cohorts_only(live_lab, classroom):
    for actor, sees, hidden in (
        ("cohort_instructor", "ada's class", "bob's class"),
        ("other_instructor", "bob's class", "ada's class"),
    ):
        browser = browser_for(live_lab, classroom["users"][actor])
        response = browser.get(live_lab + "/instructor/", timeout=30)
        assert response.url == live_lab + "/class/", actor
        page = response.text
        assert escape(sees) in page and escape(hidden) not in page, actor


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Give each test's event loop its own channel layer: channels_redis binds locks to a loop."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.mark.django_db(transaction=True)
async def test_the_websocket_as_each_visitor(classroom):
    from lab.asgi import application

    sandbox_id = classroom["values"]["sandbox"]
    cohort_id = classroom["values"]["cohort"]
    expected = watchers(True, refused=False)
    for actor in ACTORS:
        token = classroom["tokens"].get(actor)
        headers = [(b"authorization", f"Token {token}".encode())] if token else []
        communicator = WebsocketCommunicator(
            application, f"/ws/sandboxes/{sandbox_id}/", headers=headers
        )
        connected, _ = await communicator.connect()
        assert connected is expected[actor], actor
        await communicator.disconnect()
        # The live class view: only an instructor of the cohort.
        class_socket = WebsocketCommunicator(
            application, f"/ws/classroom/cohorts/{cohort_id}/", headers=headers
        )
        connected, _ = await class_socket.connect()
        assert connected is (actor == "cohort_instructor"), ("class", actor)
        await class_socket.disconnect()
