"""Runtime settings from the environment (the runtime never reads Django settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RuntimeConfig:
    redis_url: str
    amqp_url: str
    workdir: Path
    keepalive_s: float
    # Added to the niceness of every process that does a sandbox's work (services,
    # runners, gauges), never to the supervisor nor the web side (see forking.py).
    workload_nice: int = 5


def load_config(environ: Mapping[str, str] | None = None) -> RuntimeConfig:
    """Read REDIS_URL, AMQP_URL, LAB_WORKDIR, LAB_KEEPALIVE_SECONDS and LAB_WORKLOAD_NICE.

    ``environ`` defaults to this process's environment; the launcher passes the
    one it gives a host.
    """
    env = os.environ if environ is None else environ
    return RuntimeConfig(
        redis_url=env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        amqp_url=env.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        workdir=Path(env.get("LAB_WORKDIR", PROJECT_ROOT / "var" / "sandboxes")),
        keepalive_s=float(env.get("LAB_KEEPALIVE_SECONDS", "15")),
        workload_nice=max(0, min(19, int(env.get("LAB_WORKLOAD_NICE", "5")))),
    )


def configure_logging(process: str) -> None:
    """Log as ``process`` (host, supervisor <id>, a service's name); pika only when it warns."""
    import logging

    # force: a forked process inherits its parent's handlers and format.
    logging.basicConfig(
        level=logging.INFO,
        force=True,
        format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s",
    )
    # pika logs every connection step at INFO; a sandbox opens many.
    logging.getLogger("pika").setLevel(logging.WARNING)
