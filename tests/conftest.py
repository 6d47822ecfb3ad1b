"""Fixtures that start the real lab: a Celery worker (with its sandbox host) and daphne.

Each test session gets its own Redis database, Celery queue and SQLite file, so
sessions never take each other's tasks. Every process a fixture starts is
ended by it, even when a test fails.
"""

import os
import uuid
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from tests.lab_env import ROOT
from tests.sandboxes import lesson_sandbox, new_sandbox, sandbox_host
from lab.harness import LabProcesses, wait_for

# The real-sandbox fixtures of tests/sandboxes.py, for every test module.
__all__ = ["LabProcesses", "lesson_sandbox", "new_sandbox", "sandbox_host", "wait_for"]

# The property tests drive real processes, seconds an example: shrinking a failure
# would take longer than the suite. A failure is reported as generated, with the
# blob that replays it (@reproduce_failure).
settings.register_profile(
    "lab",
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    print_blob=True,
    deadline=None,
)
settings.load_profile("lab")


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

    from lab.users.services import labuser_upsert

    def make(name: str | None = None, role: str = "learner", password: str | None = None):
        username = name or f"user-{uuid.uuid4().hex[:6]}"
        _, token = labuser_upsert(username=username, role=role, password=password)
        return get_user_model().objects.get(username=username), token

    return make


def pytest_sessionfinish(session, exitstatus):
    # The per-session SQLite file and its WAL companions are test litter.
    for suffix in ("", "-wal", "-shm"):
        Path(os.environ["LAB_TEST_DATABASE"] + suffix).unlink(missing_ok=True)
