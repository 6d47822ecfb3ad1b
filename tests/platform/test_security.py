"""Issue 11's security findings, each against the part that had it.

Anonymous visitors cause no side effects and guests come only from the
"Try as a guest" form; bad input is a 4xx in the API's JSON error shape; the
site's defaults are safe (CSP, HSTS behind TLS, no open redirect, password
rules for labuser, the WebSocket's origin check).
"""

import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from lab.sandboxes.models import Sandbox, SandboxState
from lab.users.models import Role

from .helpers import LESSON, api_for

ROOT = Path(__file__).resolve().parents[2]
EVIL = "http://evil.example"
User = get_user_model()


def crash() -> None:
    """Raise for the debug page test (here, away from the secrets it must not show)."""
    raise RuntimeError("boom")


def assert_json_error(response, status: int) -> dict:
    """Assert the API's documented error: the status, JSON, {"detail": str, "errors": {}}."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    assert isinstance(body.get("errors"), dict), body
    return body


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "the page has no CSRF-protected form"
    return match.group(1)


def stopped_sandbox(owner) -> Sandbox:
    """A sandbox row of ``owner`` that has ended: enough for the API to find it."""
    return Sandbox.objects.create(
        owner=owner,
        lesson=LESSON,
        state=SandboxState.STOPPED,
        expires_at=timezone.now() + timedelta(hours=1),
    )


# --- 2. No anonymous side effects across origins


def test_anonymous_cross_origin_api_writes_are_refused_and_make_nobody(live_lab, make_user):
    owner, _token = make_user(role="learner")
    sandbox = stopped_sandbox(owner)
    users_before = User.objects.count()
    headers = {"Origin": EVIL, "Content-Type": "application/json"}
    writes = [
        ("POST", "/api/sandboxes/", {"lesson": LESSON}),
        ("POST", f"/api/lessons/{LESSON}/progress/", {"step": "styles"}),
        ("POST", f"/api/sandboxes/{sandbox.id}/runs/", {"experiment": "one-call"}),
        ("POST", f"/api/sandboxes/{sandbox.id}/faults/", {"service": "x", "action": "stop"}),
        ("DELETE", f"/api/sandboxes/{sandbox.id}/", None),
    ]
    for method, path, body in writes:
        response = requests.request(
            method, live_lab + path, data=json.dumps(body), headers=headers, timeout=10
        )
        assert_json_error(response, 403)
    assert User.objects.count() == users_before
    assert Sandbox.objects.count() == 1
    # Reads that need no user stay open.
    assert requests.get(live_lab + "/api/lessons/", timeout=10).status_code == 200


def test_page_views_without_a_cookie_make_no_user(live_lab):
    paths = ["/", f"/lessons/{LESSON}/", "/accounts/login/", "/accounts/signup/"]
    for index in range(30):
        response = requests.get(live_lab + paths[index % len(paths)], timeout=10)
        assert response.status_code == 200
        assert "sessionid" not in response.cookies
    assert User.objects.count() == 0


def test_the_lesson_page_offers_try_as_a_guest_to_an_anonymous_visitor(live_lab):
    page = requests.get(f"{live_lab}/lessons/{LESSON}/", timeout=10).text
    assert 'action="/accounts/guest/"' in page and "Try as a guest" in page
    assert '"signedIn": false' in page
    for path in ("/", "/accounts/login/"):
        assert "Try as a guest" in requests.get(live_lab + path, timeout=10).text


def test_a_guest_comes_only_from_a_same_origin_csrf_checked_post(live_lab):
    browser = requests.Session()
    lesson_url = f"{live_lab}/lessons/{LESSON}/"
    token = csrf_token_from(browser.get(lesson_url, timeout=10).text)
    form = {"csrfmiddlewaretoken": token, "next": f"/lessons/{LESSON}/"}
    # A GET never makes one, nor a POST without the token, nor one from another origin.
    assert browser.get(f"{live_lab}/accounts/guest/", timeout=10).status_code == 405
    no_token = requests.post(f"{live_lab}/accounts/guest/", data={"next": "/"}, timeout=10)
    assert no_token.status_code == 403
    cross = browser.post(
        f"{live_lab}/accounts/guest/", data=form, headers={"Origin": EVIL}, timeout=10
    )
    assert cross.status_code == 403
    assert User.objects.count() == 0

    made = browser.post(
        f"{live_lab}/accounts/guest/",
        data=form,
        headers={"Origin": live_lab},
        allow_redirects=False,
        timeout=10,
    )
    assert made.status_code == 302 and made.headers["Location"] == f"/lessons/{LESSON}/"
    guest = User.objects.get()
    assert guest.profile.role == Role.GUEST and guest.profile.created_from == "127.0.0.1"
    # The guest's session writes through the API with its CSRF token, not without.
    progress = f"{live_lab}/api/lessons/{LESSON}/progress/"
    step = {"step": "styles"}
    refused = browser.post(progress, json=step, headers={"Origin": live_lab}, timeout=10)
    assert_json_error(refused, 403)
    csrf = {"X-CSRFToken": browser.cookies["csrftoken"], "Origin": live_lab}
    accepted = browser.post(progress, json=step, headers=csrf, timeout=10)
    assert accepted.status_code == 200, accepted.content
    # Asking again while signed in makes no second guest.
    page = browser.get(f"{live_lab}/lessons/{LESSON}/", timeout=10).text
    assert "Try as a guest" not in page and '"signedIn": true' in page
    again = browser.post(
        f"{live_lab}/accounts/guest/",
        data={"csrfmiddlewaretoken": browser.cookies["csrftoken"], "next": "/"},
        headers={"Origin": live_lab},
        allow_redirects=False,
        timeout=10,
    )
    assert again.status_code == 302 and User.objects.count() == 1


def test_guests_are_capped_per_client_address(live_lab, settings):
    def try_as_guest() -> requests.Response:
        browser = requests.Session()
        token = csrf_token_from(browser.get(live_lab + "/", timeout=10).text)
        return browser.post(
            f"{live_lab}/accounts/guest/",
            data={"csrfmiddlewaretoken": token, "next": "/"},
            headers={"Origin": live_lab},
            allow_redirects=False,
            timeout=10,
        )

    cap = settings.LAB_GUESTS_PER_ADDRESS_PER_HOUR  # daphne reads the same default
    for _ in range(cap):
        assert try_as_guest().status_code == 302
    refused = try_as_guest()
    assert refused.status_code == 429 and "Too many guests" in refused.text
    assert User.objects.filter(profile__role=Role.GUEST).count() == cap
    # Another address is not held back by this one's guests.
    from lab.users.services import guest_create

    assert guest_create(client_address="192.0.2.7").profile.role == Role.GUEST


def test_the_guest_cap_counts_the_address_the_tls_proxy_saw(rf, settings):
    from lab.web.views import client_address

    request = rf.post("/", HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.4", REMOTE_ADDR="10.0.0.2")
    settings.BEHIND_TLS_PROXY = False
    assert client_address(request) == "10.0.0.2"  # a direct client's header proves nothing
    settings.BEHIND_TLS_PROXY = True
    assert client_address(request) == "198.51.100.4"  # appended by the proxy itself
    garbled = rf.post("/", HTTP_X_FORWARDED_FOR="not-an-address", REMOTE_ADDR="10.0.0.2")
    assert client_address(garbled) == "10.0.0.2"


def test_guests_expire_unless_a_sandbox_of_theirs_is_live(db, make_user):
    from lab.users.services import guest_create
    from lab.users.tasks import guests_expire_task

    from lab.users.models import Cohort

    old, busy, fresh, in_class = (guest_create(client_address=f"192.0.2.{n}") for n in (1, 2, 3, 4))
    Cohort.objects.create(name="Monday").learners.add(in_class)
    learner, _ = make_user(role="learner")
    long_ago = timezone.now() - timedelta(days=2)
    User.objects.filter(pk__in=[old.pk, busy.pk, in_class.pk, learner.pk]).update(
        date_joined=long_ago
    )
    stopped_sandbox(old)
    Sandbox.objects.create(
        owner=busy,
        lesson=LESSON,
        state=SandboxState.RUNNING,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    assert guests_expire_task() == 1
    assert set(User.objects.values_list("pk", flat=True)) == {
        busy.pk,
        fresh.pk,
        in_class.pk,
        learner.pk,
    }
    assert not Sandbox.objects.filter(owner_id=old.pk).exists()


def test_the_guest_cleanup_is_on_the_beat_schedule(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "lab.users.tasks.guests_expire_task" in tasks


# --- 3. Bad input is always a 4xx in the documented JSON shape


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_over_deep_json_is_a_400_on_every_post_endpoint(live_lab, make_user):
    owner, token = make_user(role="learner")
    sandbox = stopped_sandbox(owner)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    for path in (
        "/api/sandboxes/",
        f"/api/sandboxes/{sandbox.id}/runs/",
        f"/api/sandboxes/{sandbox.id}/faults/",
        f"/api/lessons/{LESSON}/progress/",
    ):
        for body in (
            deep_json(100_000),
            json.dumps({"lesson": LESSON, "params": json.loads(deep_json(40))}),
        ):
            response = requests.post(live_lab + path, data=body, headers=headers, timeout=30)
            assert "nested deeper" in assert_json_error(response, 400)["detail"], path


def test_a_nul_byte_in_an_id_is_a_404_without_a_query(db, make_user):
    _user, token = make_user(role="learner")
    api = api_for(token)
    for path in (
        "/api/sandboxes/abc%00def/",
        "/api/sandboxes/abc%00def/runs/",
        "/api/runs/abc%00def/",
        "/api/sandboxes/" + "a" * 31 + "%00/",
    ):
        # PostgreSQL refuses a NUL in text with an error: no such query may be made.
        with CaptureQueriesContext(connection) as queries:
            response = api.get(path)
        assert_json_error(response, 404)
        assert not [q for q in queries.captured_queries if "sandboxes_" in q["sql"]], path
    assert api.get("/api/sandboxes/?lesson=a%00b").json() == []


def test_a_10_mb_body_gets_the_json_error(live_lab, make_user):
    _user, token = make_user(role="learner")
    body = json.dumps({"lesson": "x" * 10_000_000})
    for headers in ({"Authorization": f"Token {token}"}, {}):
        response = requests.post(
            f"{live_lab}/api/sandboxes/",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
            timeout=30,
        )
        assert "larger than" in assert_json_error(response, 413)["detail"]


# The debug page quotes the source around each frame: crash() is far from these.
URL_SETTINGS = {
    "AMQP_URL": "amqp://lab:amqp-pass-1@rabbitmq:5672/%2F",
    "REDIS_URL": "redis://:redis-pass-2@redis:6379/0",
    "CELERY_BROKER_URL": "redis://:broker-pass-3@redis:6379/0",
    "DATABASE_URL": "postgres://lab:db-pass-4@postgres:5432/lab",
    "CHANNEL_LAYERS": {"default": {"CONFIG": {"hosts": ["redis://:layer-pass-5@redis:6379/0"]}}},
}


def test_the_debug_error_page_hides_credentials_in_urls(rf, settings):
    from django.views.debug import technical_500_response

    settings.DEBUG = True
    for name in URL_SETTINGS:  # no local holds a value: the page shows the frame's locals
        setattr(settings, name, URL_SETTINGS[name])
    try:
        crash()
    except RuntimeError:
        page = technical_500_response(rf.get("/"), *sys.exc_info()).content.decode()
    assert "boom" in page and "AMQP_URL" in page and "rabbitmq:5672" in page
    for number in range(1, 6):
        assert f"pass-{number}@" not in page, number


def test_the_schema_documents_errors_and_the_lesson_list_is_an_array(db):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    lessons = schema["paths"]["/api/lessons/"]["get"]["responses"]["200"]
    assert lessons["content"]["application/json"]["schema"]["type"] == "array"
    error = {"$ref": "#/components/schemas/Error"}
    create = schema["paths"]["/api/sandboxes/"]["post"]["responses"]
    for code in ("400", "403", "413", "429"):
        assert create[code]["content"]["application/json"]["schema"] == error, code
    detail = schema["paths"]["/api/sandboxes/{sandbox_id}/"]["get"]["responses"]
    assert detail["404"]["content"]["application/json"]["schema"] == error
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"detail", "errors"}


# --- 5. Safe by default


def test_pages_carry_a_csp_that_allows_no_inline_script(client):
    response = client.get(f"/lessons/{LESSON}/")
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy.get("default-src", "")


def test_templates_hold_no_inline_script_or_event_handler():
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
    handler = re.compile(r"\son[a-z]+\s*=", re.I)
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        assert not inline_script.search(text), template
        assert not handler.search(text), template
        # htmx evaluates trigger filters ([...]) with eval, which the CSP forbids.
        assert not re.search(r'hx-trigger="[^"]*\[', text), template


def settings_under(environment: dict[str, str], code: str) -> str:
    """Run ``code`` after importing lab.settings under ``environment``; return its output."""
    result = subprocess.run(
        [sys.executable, "-c", f"import lab.settings as s\n{code}"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_behind_a_tls_proxy_the_site_sends_hsts_and_secure_cookies():
    output = settings_under(
        {"DJANGO_BEHIND_TLS_PROXY": "1"},
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE,"
        " s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER)",
    )
    assert output.split(" ", 4)[:4] == ["31536000", "True", "True", "True"]
    assert "HTTP_X_FORWARDED_PROTO" in output


def test_no_redirect_to_another_origin_after_sign_up_login_or_guest(client, make_user):
    signup = client.post(
        "/accounts/signup/?next=https://evil.example/",
        {"username": "newcomer", "password": "a-long-password-1"},
    )
    assert signup.status_code == 302 and signup["Location"] == "/"
    client.logout()
    make_user("returning", password="a-long-password-1")
    login = client.post(
        "/accounts/login/",
        {"username": "returning", "password": "a-long-password-1", "next": "//evil.example/"},
    )
    assert login.status_code == 302 and "evil.example" not in login["Location"]
    client.logout()
    guest = client.post("/accounts/guest/", {"next": "https://evil.example/"})
    assert guest.status_code == 302 and guest["Location"] == "/"


def test_labuser_password_passes_the_sign_up_validators(db):
    for weak in ("s3cret", "12345678901", "password1"):
        with pytest.raises(CommandError, match="password refused"):
            call_command("labuser", "bob", "--role", "instructor", "--password", weak)
    assert not User.objects.filter(username="bob").exists()
    call_command("labuser", "bob", "--role", "instructor", "--password", "correct-horse-staple-42")
    assert User.objects.get(username="bob").check_password("correct-horse-staple-42")


def test_readme_examples_use_a_password_sign_up_accepts():
    from django.contrib.auth.password_validation import validate_password

    readme = (ROOT / "README.md").read_text()
    for password in re.findall(r"--password '([^']+)'", readme):
        validate_password(password, User(username="bob"))
    assert "s3cret" not in readme
