#!/usr/bin/env python3
"""Check that the services the lab needs answer, before anything starts.

Run by `make run` (and by .ci/run with --wait). Redis and RabbitMQ are always
checked, PostgreSQL only when DATABASE_URL names it. A service that does not
answer ends the run with one paragraph that names it and says how to start it,
instead of a traceback from the first process that tries to use it.

The URLs and their defaults come from lab/settings.py, so this script checks
exactly what the lab will use.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from lab import settings  # noqa: E402 (needs PROJECT_ROOT on sys.path)

# Short timeouts: a service that is up answers on loopback in milliseconds.
CONNECT_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Check:
    """One service to reach: its name, URL, how to reach it and how to start it."""

    name: str
    url: str
    probe: Callable[[str], None]
    start_hint: str
    url_variable: str
    docker_hint: str = ""


def redact(url: str) -> str:
    """Return the URL with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def probe_redis(url: str) -> None:
    """Raise unless a Redis server answers PING at url."""
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=CONNECT_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()


def probe_rabbitmq(url: str) -> None:
    """Raise unless a RabbitMQ broker accepts an AMQP connection at url."""
    import pika

    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.retry_delay = 0
    parameters.socket_timeout = CONNECT_TIMEOUT_SECONDS
    parameters.stack_timeout = CONNECT_TIMEOUT_SECONDS * 2
    parameters.blocked_connection_timeout = CONNECT_TIMEOUT_SECONDS
    connection = pika.BlockingConnection(parameters)
    connection.close()


def probe_postgresql(url: str) -> None:
    """Raise unless PostgreSQL accepts a connection at url."""
    import psycopg

    with psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT_SECONDS) or 1) as connection:
        connection.execute("SELECT 1")


def checks_to_run() -> list[Check]:
    """Return the services the lab, as configured now, needs to reach."""
    checks = [
        Check(
            name="Redis",
            url=settings.REDIS_URL,
            probe=probe_redis,
            url_variable="REDIS_URL",
            start_hint=(
                "Start it with `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379"
                ' --save "" --appendonly no --dir /var/lib/redis'
                " --logfile /var/log/redis/ci.log`"
            ),
            docker_hint="`docker compose up -d redis`",
        ),
        Check(
            name="RabbitMQ",
            url=settings.AMQP_URL,
            probe=probe_rabbitmq,
            url_variable="AMQP_URL",
            start_hint="Start it with `rabbitmq-server -detached` (it takes a few seconds to boot)",
            docker_hint=(
                "`docker compose up -d rabbitmq` with AMQP_URL=amqp://lab:lab@127.0.0.1:5672/%2F"
            ),
        ),
    ]
    broker = settings.CELERY_BROKER_URL
    if broker != settings.REDIS_URL and broker.startswith(("redis://", "rediss://")):
        checks.append(
            Check(
                name="Redis (the Celery broker)",
                url=broker,
                probe=probe_redis,
                url_variable="CELERY_BROKER_URL",
                start_hint="Start that Redis server",
                docker_hint="`docker compose up -d redis`",
            )
        )
    database_engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" in database_engine:
        checks.append(
            Check(
                name="PostgreSQL",
                url=database_url_from_environment(),
                probe=probe_postgresql,
                url_variable="DATABASE_URL",
                start_hint=(
                    "Start it with `pg_ctlcluster --skip-systemctl-redirect"
                    " $(ls /etc/postgresql) main start`"
                ),
            )
        )
    return checks


def database_url_from_environment() -> str:
    """Return DATABASE_URL as psycopg takes it (postgres:// and postgresql:// alike)."""
    url = os.environ["DATABASE_URL"]
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


def failure_message(check: Check, error: BaseException) -> str:
    """Return one paragraph that names the service, the error and how to start it."""
    # pika wraps the socket error; the inner one says what happened.
    while error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    reason = " ".join((str(error) or repr(error)).split())
    with_docker = f", or with Docker {check.docker_hint}" if check.docker_hint else ""
    return (
        f"{check.name} is not reachable at {redact(check.url)} ({reason}). "
        f"The lab cannot start without it. {check.start_hint}{with_docker}; "
        f"or point {check.url_variable} at a {check.name.split()[0]} server that runs."
    )


def run_checks(checks: list[Check], *, wait_seconds: float) -> list[str]:
    """Probe each service, retrying until wait_seconds pass; return the failure messages."""
    deadline = time.monotonic() + wait_seconds
    pending = list(checks)
    while True:
        failures: list[tuple[Check, BaseException]] = []
        for check in pending:
            try:
                check.probe(check.url)
            except Exception as error:  # any failure means: not reachable
                failures.append((check, error))
        if not failures or time.monotonic() >= deadline:
            return [failure_message(check, error) for check, error in failures]
        pending = [check for check, _ in failures]
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    """Check every service; print what is missing and return 1, or return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep retrying for this long before giving up (for a service still booting)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing when all is well")
    arguments = parser.parse_args(argv)

    checks = checks_to_run()
    failures = run_checks(checks, wait_seconds=arguments.wait)
    if failures:
        print(file=sys.stderr)
        for message in failures:
            print(message, file=sys.stderr)
            print(file=sys.stderr)
        return 1
    if not arguments.quiet:
        names = ", ".join(f"{check.name} ({redact(check.url)})" for check in checks)
        print(f"preflight: reachable: {names}")
    warn_if_haproxy_missing()
    return 0


def warn_if_haproxy_missing() -> None:
    """Name HAProxy when it is missing: only the lessons with a proxy need it, so it warns."""
    from sandbox_services.proxy.binary import INSTALL_HINT, haproxy_path

    if haproxy_path() is None:
        needing = ", ".join(haproxy_lessons()) or "no lesson's"
        print(
            f"preflight: {INSTALL_HINT}. Until then sandboxes of {needing} are refused"
            " with this message; every other lesson works.",
            file=sys.stderr,
        )


def haproxy_lessons() -> list[str]:
    """Return the slugs of the lessons whose sandboxes need HAProxy (their LAB's preflight)."""
    from sandbox_services.proxy.binary import require_haproxy
    from sandbox_services.runtime.plan import lesson_packages

    needing = []
    for package in lesson_packages():
        lab = getattr(importlib.import_module(package), "LAB", None)
        if lab is not None and lab.preflight == _dotted(require_haproxy):
            needing.append(lab.slug)
    return sorted(needing)


def _dotted(function) -> str:
    return f"{function.__module__}:{function.__qualname__}"


if __name__ == "__main__":
    sys.exit(main())
