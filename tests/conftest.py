"""Fixtures that start the real lab: a Celery worker (with its sandbox host) and daphne.

Each test session gets its own Redis database, Celery queue and SQLite file, so
sessions never take each other's tasks. Every process a fixture starts is
ended by it, even when a test fails.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SESSION = uuid.uuid4().hex[:8]
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("CELERY_BROKER_URL", os.environ["REDIS_URL"])
os.environ.setdefault("LAB_CELERY_QUEUE", f"test-{SESSION}")
os.environ.setdefault("LAB_KEEPALIVE_SECONDS", "3")
os.environ.setdefault("LAB_TEST_DATABASE", str(ROOT / "var" / f"test-{SESSION}.sqlite3"))
os.environ.setdefault("LAB_WORKDIR", str(ROOT / "var" / f"sandboxes-test-{SESSION}"))
os.environ["DJANGO_DEBUG"] = "0"

PYTHON = sys.executable
BIN = Path(PYTHON).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, process: subprocess.Popen | None = None):
    """Poll ``predicate`` until it returns a truthy value; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def end_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def lab_env(database_name: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database_name}",
        "DJANGO_SETTINGS_MODULE": "lab.settings",
        "PYTHONUNBUFFERED": "1",
    }


class LabProcesses:
    """The worker(s) and daphne of one test session."""

    def __init__(self, database_name: str, log_dir: Path):
        self.database_name = database_name
        self.log_dir = log_dir
        self.workers: dict[str, subprocess.Popen] = {}
        self.daphne: subprocess.Popen | None = None
        self.base_url = ""
        self.port = 0

    def start_worker(self, name: str) -> subprocess.Popen:
        """Start a Celery worker named ``name`` and wait for its sandbox host heartbeat."""
        import redis

        hostname = f"{name}@{socket.gethostname()}"
        log = open(self.log_dir / f"{name}.log", "ab")
        process = subprocess.Popen(
            [
                str(BIN / "celery"),
                "-A",
                "lab",
                "worker",
                "-n",
                hostname,
                "-Q",
                os.environ["LAB_CELERY_QUEUE"],
                "-c",
                "2",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=lab_env(self.database_name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers[name] = process
        connection = redis.Redis.from_url(os.environ["REDIS_URL"])
        wait_for(
            lambda: connection.exists(f"lab:worker:{hostname}:alive"),
            60,
            f"worker {name} heartbeat",
            process,
        )
        return process

    def start_daphne(self) -> None:
        self.port = free_port()
        log = open(self.log_dir / "daphne.log", "ab")
        self.daphne = subprocess.Popen(
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), "lab.asgi:application"],
            cwd=ROOT,
            env=lab_env(self.database_name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: port_open(self.port), 60, "daphne", self.daphne)
        self.base_url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.daphne is not None:
            end_process(self.daphne)
        for process in self.workers.values():
            end_process(process)


@pytest.fixture(scope="session")
def lab_processes(django_db_setup, django_db_blocker, tmp_path_factory):
    """Start one real Celery worker (which starts its sandbox host) and daphne."""
    from django.db import connection

    database_name = connection.settings_dict["NAME"]
    log_dir = ROOT / "test-artifacts" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = LabProcesses(database_name, log_dir)
    try:
        processes.start_worker("worker1")
        processes.start_daphne()
        yield processes
    finally:
        processes.stop()


@pytest.fixture
def live_lab(lab_processes, transactional_db):
    """The base URL of a running lab whose database is this test's."""
    return lab_processes.base_url


@pytest.fixture
def make_user(db):
    """Return a function that creates a user with a role and returns (user, token)."""
    from django.contrib.auth import get_user_model

    from lab.accounts.services import labuser_upsert

    def make(name: str | None = None, role: str = "learner", password: str | None = None):
        username = name or f"user-{uuid.uuid4().hex[:6]}"
        _, token = labuser_upsert(username=username, role=role, password=password)
        return get_user_model().objects.get(username=username), token

    return make


def pytest_sessionfinish(session, exitstatus):
    # The per-session SQLite file and its WAL companions are test litter.
    for suffix in ("", "-wal", "-shm"):
        Path(os.environ["LAB_TEST_DATABASE"] + suffix).unlink(missing_ok=True)
