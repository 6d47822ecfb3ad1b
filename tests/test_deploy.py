"""What a self-hoster and a new user run: the compose file, preflight, make and the bench driver."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PREFLIGHT = ROOT / "scripts" / "preflight.py"
BENCH_RUNNER = ROOT / "bench" / "run.py"
IN_CI = os.environ.get("CI", "").lower() == "true"
CLOSED_PORT = 1  # nothing listens on 127.0.0.1:1


def run_preflight(**environment: str | None) -> subprocess.CompletedProcess[str]:
    """Run preflight with these variables changed (None removes one)."""
    env = {**os.environ, **environment}
    return subprocess.run(
        [sys.executable, str(PREFLIGHT)],
        env={name: value for name, value in env.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- docker-compose.yml


def docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        if IN_CI:
            pytest.fail("docker-compose is not installed: .ci/run should have installed it")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return binary


def compose_config(*arguments: str, **environment: str | None) -> subprocess.CompletedProcess:
    """Run `docker-compose config` with these variables changed (None removes one)."""
    env = {**os.environ, "DJANGO_SECRET_KEY": "a-test-key-" + "x" * 40, **environment}
    return subprocess.run(
        [docker_compose(), "-f", str(COMPOSE_FILE), *arguments, "config"],
        cwd=ROOT,
        env={name: value for name, value in env.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_is_valid_for_debian_docker_compose() -> None:
    for profile in ([], ["--profile", "jaeger"]):
        result = compose_config(*profile)
        assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_secret_key() -> None:
    result = compose_config(DJANGO_SECRET_KEY=None)
    assert result.returncode != 0
    assert "set DJANGO_SECRET_KEY" in result.stderr


def test_compose_publishes_the_web_port_on_loopback_unless_told() -> None:
    default = yaml.safe_load(compose_config(LAB_BIND=None).stdout)["services"]["web"]
    assert default["ports"] == ["127.0.0.1:8000:8000/tcp"] or default["ports"][0] in (
        "127.0.0.1:8000:8000",
        {"host_ip": "127.0.0.1", "published": 8000, "target": 8000, "protocol": "tcp"},
    )
    assert default["environment"]["LAB_BIND"] == "127.0.0.1"
    chosen = yaml.safe_load(compose_config(LAB_BIND="0.0.0.0").stdout)["services"]["web"]
    assert str(chosen["ports"][0]).startswith("0.0.0.0:8000:8000")


def deploy_check(environment: dict[str, str]) -> subprocess.CompletedProcess:
    """Run `manage.py check --deploy` under ``environment`` on a scratch SQLite file."""
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **environment, "DATABASE_URL": "sqlite:///:memory:"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def compose_web_environment(**environment: str) -> dict[str, str]:
    config = yaml.safe_load(compose_config(**environment).stdout)
    return {
        name: str(value)
        for name, value in config["services"]["web"]["environment"].items()
        if value is not None
    }


def test_check_deploy_is_clean_under_composes_settings() -> None:
    result = deploy_check(compose_web_environment())
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_check_deploy_is_clean_behind_a_tls_proxy_and_warns_without_one() -> None:
    behind = deploy_check(
        compose_web_environment(
            LAB_BIND="0.0.0.0",
            DJANGO_BEHIND_TLS_PROXY="1",
            DJANGO_HSTS_INCLUDE_SUBDOMAINS="1",
            DJANGO_HSTS_PRELOAD="1",
        )
    )
    assert "no issues" in behind.stdout, behind.stdout + behind.stderr
    # Published beyond loopback over plain HTTP, the HTTPS checks speak up.
    exposed = deploy_check(compose_web_environment(LAB_BIND="0.0.0.0"))
    for warning in ("W004", "W008", "W012", "W016"):
        assert warning in exposed.stderr + exposed.stdout, warning


def test_compose_services_wait_for_healthy_dependencies() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "redis", "rabbitmq", "postgres", "jaeger"} <= set(services)
    for backing in ("redis", "rabbitmq", "postgres"):
        assert "healthcheck" in services[backing], backing
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert rule == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in services[dependency], (name, dependency)
    assert services["jaeger"]["profiles"] == ["jaeger"]
    assert "rabbitmq:3-management" in services["rabbitmq"]["image"]


def test_compose_runs_the_lab_from_one_image_against_postgresql() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    lab_services = [services[name] for name in ("web", "worker", "beat")]
    assert len({service["image"] for service in lab_services}) == 1
    for service in lab_services:
        assert service["environment"]["DATABASE_URL"].startswith("postgres://")
        assert "@postgres:" in service["environment"]["DATABASE_URL"]
    web_command = services["web"]["command"]
    # Migrations before daphne, and daphne reachable from outside its container.
    assert web_command.index("migrate") < web_command.index("daphne")
    assert "-b 0.0.0.0" in web_command


def test_compose_file_avoids_keys_docker_compose_1_29_rejects() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert not {"name", "include"} & set(compose)
    for service in compose["services"].values():
        assert "start_interval" not in (service.get("healthcheck") or {})
        assert "develop" not in service
        for rule in (service.get("depends_on") or {}).values():
            assert "required" not in rule


# --- scripts/preflight.py


def test_preflight_passes_against_the_running_services() -> None:
    result = run_preflight()
    assert result.returncode == 0, result.stderr
    assert "Redis" in result.stdout and "RabbitMQ" in result.stdout


def test_preflight_names_redis_when_redis_does_not_answer() -> None:
    url = f"redis://127.0.0.1:{CLOSED_PORT}/0"
    result = run_preflight(REDIS_URL=url, CELERY_BROKER_URL=url)
    assert result.returncode != 0
    assert "Redis is not reachable" in result.stderr
    assert "redis-server" in result.stderr  # how to start it
    assert "RabbitMQ is not reachable" not in result.stderr
    assert "Traceback" not in result.stderr


def test_preflight_names_rabbitmq_when_rabbitmq_does_not_answer() -> None:
    result = run_preflight(AMQP_URL=f"amqp://guest:guest@127.0.0.1:{CLOSED_PORT}/%2F")
    assert result.returncode != 0
    assert "RabbitMQ is not reachable" in result.stderr
    assert "rabbitmq-server -detached" in result.stderr
    assert "guest:guest@" not in result.stderr  # the password is not printed
    assert "Redis is not reachable" not in result.stderr
    assert "Traceback" not in result.stderr


def test_preflight_warns_without_haproxy_and_names_each_lesson_that_needs_it() -> None:
    result = run_preflight(LAB_HAPROXY="/nonexistent/haproxy")
    assert result.returncode == 0  # a warning: the other lessons work
    warning = next(line for line in result.stderr.splitlines() if "HAProxy" in line)
    assert "apt-get install -y haproxy" in warning
    # Every lesson whose sandbox would be refused, and only those.
    assert "sandboxes of api-gateway, service-mesh are refused" in warning
    assert "HAProxy" not in run_preflight().stderr


def test_preflight_checks_postgresql_only_when_database_url_names_it() -> None:
    result = run_preflight(DATABASE_URL=f"postgres://postgres@127.0.0.1:{CLOSED_PORT}/test")
    assert result.returncode != 0
    assert "PostgreSQL is not reachable" in result.stderr
    assert "PostgreSQL" not in run_preflight(DATABASE_URL=None).stdout


# --- Makefile


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_checks_services_and_migrates_before_starting_the_lab() -> None:
    result = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.splitlines()

    def first(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    assert first("scripts/preflight.py") < first("manage.py migrate") < first("run_lab.py")
    assert first("manage.py check") < first("run_lab.py")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_uses_redis_database_1() -> None:
    result = subprocess.run(
        ["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert "REDIS_URL=redis://127.0.0.1:6379/1" in result.stdout
    assert "CELERY_BROKER_URL=redis://127.0.0.1:6379/1" in result.stdout


# --- scripts/run_lab.py


def run_lab(*arguments: str, **environment: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **environment}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_lab.py"), *arguments],
        cwd=ROOT,
        env={name: value for name, value in env.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_lab_off_loopback_warns_and_refuses_debug_and_the_development_key() -> None:
    # Port 1 is never reached: the refusal comes before anything starts.
    result = run_lab("--host", "0.0.0.0", "--port", "1", DJANGO_DEBUG=None, DJANGO_SECRET_KEY=None)
    assert result.returncode == 2
    assert "warning: serving on 0.0.0.0" in result.stderr
    assert "DEBUG is on" in result.stderr and "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "starting" not in result.stdout
    keyed = run_lab(
        "--host", "0.0.0.0", "--port", "1", DJANGO_DEBUG="1", DJANGO_SECRET_KEY="k" * 50
    )
    assert keyed.returncode == 2 and "DEBUG is on" in keyed.stderr


def test_run_lab_on_loopback_has_nothing_to_say() -> None:
    import runpy

    module = runpy.run_path(str(ROOT / "scripts" / "run_lab.py"))
    for host in ("127.0.0.1", "localhost", "::1", "[::1]"):
        assert module["exposure_problems"](host, {}) == ([], [])
    warnings, refusals = module["exposure_problems"](
        "192.0.2.10", {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "k" * 50}
    )
    assert warnings and not refusals


def start_supervisor_harness(child_code: str) -> tuple[subprocess.Popen[str], list[int]]:
    """Start run_lab's ProcessGroup over two children running child_code; return it and their pids."""
    harness = textwrap.dedent(
        f"""
        import runpy, sys
        module = runpy.run_path({str(ROOT / "scripts" / "run_lab.py")!r})
        child = [sys.executable, "-c", {child_code!r}]
        supervisor = module["ProcessGroup"]([module["Child"]("one", child),
                                           module["Child"]("two", child)])
        sys.exit(supervisor.run())
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", harness],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:  # bounded by the test's timeout
        seen.append(line)
        if sum(line.endswith("| up\n") for line in seen) == 2:
            break
    pids = [int(line.rsplit("pid ", 1)[1].rstrip(")\n")) for line in seen if "(pid " in line]
    assert len(pids) == 2, seen
    return process, pids


def assert_gone(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_run_lab_stops_every_process_on_sigint() -> None:
    """Ctrl-C reaches the supervisor only (children have their own sessions): it ends them all."""
    process, pids = start_supervisor_harness(
        "import time; print('up', flush=True); time.sleep(120)"
    )
    try:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "stopping one" in rest and "stopping two" in rest
    assert process.returncode == 0
    assert_gone(pids)


def test_run_lab_kills_children_that_ignore_sigterm_on_a_second_sigint() -> None:
    process, pids = start_supervisor_harness(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('up', flush=True); time.sleep(120)"
    )
    try:
        process.send_signal(signal.SIGINT)
        assert process.stdout is not None
        for line in process.stdout:
            if "stopping two" in line:
                break
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
        # Well within the 15 s grace period a single Ctrl-C would allow.
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "still running; killing it" in rest
    assert_gone(pids)


# --- bench/run.py


def test_bench_runner_reports_figures_and_fails_only_on_a_crash(tmp_path: Path) -> None:
    (tmp_path / "bench_good.py").write_text(
        "import sys\n"
        "def main():\n"
        "    assert sys.argv[1:] == [], sys.argv  # a bench's own options stay its own\n"
        "    print('warming up')\n"
        "    print('rest p50: 1.5 ms')\n"
        "    print('2026-12-01 12:03:41,078 host INFO sandbox 1: supervisor 2', file=sys.stderr)\n"
    )
    run = [sys.executable, str(BENCH_RUNNER), "--directory", str(tmp_path)]
    good = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert good.returncode == 0, good.stdout
    summary = good.stdout.split("=== summary ===")[1]
    assert "bench_good: ok" in summary and "rest p50: 1.5 ms" in summary
    assert "warming up" not in summary
    # A log line on stderr is shown as it comes, never taken for a figure.
    assert "host INFO sandbox 1" in good.stdout and "host INFO" not in summary

    (tmp_path / "bench_broken.py").write_text("def main():\n    raise RuntimeError('boom')\n")
    broken = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert broken.returncode != 0
    assert "bench_broken: failed" in broken.stdout
    assert "bench_good: ok" in broken.stdout
