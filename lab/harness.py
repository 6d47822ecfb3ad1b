"""Start the lab's own processes (Celery worker with its sandbox host, daphne) for tests and benchmarks.

Every process is started in its own session so it can be ended with its
children; ``LabProcesses.stop`` ends them all.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sandbox_services.runtime import keys

ROOT = Path(__file__).resolve().parent.parent
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
    """Return the environment of a lab process using the SQLite file ``database_name``."""
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database_name}",
        "DJANGO_SETTINGS_MODULE": "lab.settings",
        "PYTHONUNBUFFERED": "1",
    }


class LabProcesses:
    """The worker(s) and daphne of one test session or benchmark."""

    def __init__(self, database_name: str, log_dir: Path):
        self.database_name = database_name
        self.log_dir = log_dir
        self.workers: dict[str, subprocess.Popen] = {}
        self.daphne: subprocess.Popen | None = None
        self.base_url = ""
        self.port = 0

    def start_worker(self, name: str, queue: str | None = None) -> subprocess.Popen:
        """Start a Celery worker named ``name`` and wait for its sandbox host heartbeat."""
        # The session's queue in the name: sessions side by side share a Redis
        # database, and a host serves the spawn list of its worker's name.
        session = os.environ.get("LAB_CELERY_QUEUE", "celery")
        hostname = f"{name}-{session}@{socket.gethostname()}"
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
                # The runs queue and the control queue (settings.LAB_CELERY_CONTROL_QUEUE).
                queue or "{0},{0}-control".format(os.environ.get("LAB_CELERY_QUEUE", "celery")),
                # Every task waits on Redis for a sandbox's answer, so threads, not
                # processes: a slow experiment must not hold up other learners.
                "-P",
                "threads",
                "-c",
                "8",
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
        import redis

        connection = redis.Redis.from_url(os.environ["REDIS_URL"])
        wait_for(
            lambda: connection.exists(keys.worker_alive(hostname)),
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
