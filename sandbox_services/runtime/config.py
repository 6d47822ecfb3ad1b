"""Runtime settings from the environment (the runtime never reads Django settings)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RuntimeConfig:
    redis_url: str
    amqp_url: str
    workdir: Path
    keepalive_s: float


def load_config() -> RuntimeConfig:
    """Read REDIS_URL, AMQP_URL, LAB_WORKDIR and LAB_KEEPALIVE_SECONDS, with defaults."""
    return RuntimeConfig(
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        amqp_url=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        workdir=Path(os.environ.get("LAB_WORKDIR", PROJECT_ROOT / "var" / "sandboxes")),
        keepalive_s=float(os.environ.get("LAB_KEEPALIVE_SECONDS", "15")),
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
