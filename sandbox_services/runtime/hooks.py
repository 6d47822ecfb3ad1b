"""A lab's optional hooks, each in its own forked process: periodic metrics and teardown.

Neither is traced: a metrics poll every second would fill the learner's diagram
with plumbing, and teardown happens after the learner stopped looking.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from . import keys
from .config import configure_logging
from .context import ExperimentCtx
from .plan import SandboxPlan
from .forking import fork_child, wait_exit
from .outbox import OutboxWriter
from .service_processes import load_callable

log = logging.getLogger(__name__)
METRICS_INTERVAL_S = 1.0
# A sample equal to the last one sent goes out again only this long after it.
# Each message costs the supervisor, Redis and daphne a millisecond or two, and a
# page watching a sandbox that does nothing was sent the same gauges every
# second; a page that opens meanwhile gets the newest ones from the supervisor.
METRICS_REPEAT_S = 5.0
TEARDOWN_TIMEOUT_S = 10.0


async def _poll_metrics(ctx: ExperimentCtx, dotted: str) -> None:
    hook = load_callable(dotted)
    last_sent: dict | None = None
    sent_at = float("-inf")
    while True:
        try:
            values = await hook(ctx)
            now = time.monotonic()
            if values and (values != last_sent or now - sent_at >= METRICS_REPEAT_S):
                ctx.metrics(values)
                last_sent, sent_at = values, now
        except Exception:  # one failed poll (a broker hiccup) must not end the metrics
            log.exception("metrics hook %s failed", dotted)
        await asyncio.sleep(METRICS_INTERVAL_S)


def _metrics_process(plan: SandboxPlan, dotted: str) -> int:
    configure_logging("metrics")
    writer = OutboxWriter(plan.redis_url, keys.sandbox_outbox(plan.sandbox_id))
    asyncio.run(_poll_metrics(ExperimentCtx(plan, writer=writer, source="lab"), dotted))
    return 0


def start_metrics(plan: SandboxPlan, *, nice: int = 0) -> int | None:
    """Fork the process that calls LabSpec.metrics about every second; return its pid."""
    if not plan.lab.metrics:
        return None
    dotted = plan.lab.metrics
    return fork_child(
        lambda: _metrics_process(plan, dotted),
        log_path=plan.workdir / "logs" / "metrics.log",
        nice=nice,
    )


def _teardown_process(plan: SandboxPlan, dotted: str) -> int:
    configure_logging("teardown")
    asyncio.run(load_callable(dotted)(ExperimentCtx(plan, source="lab")))
    return 0


async def run_teardown(plan: SandboxPlan) -> int | None:
    """Run LabSpec.teardown in a forked process, killed after TEARDOWN_TIMEOUT_S; return its code."""
    if not plan.lab.teardown:
        return None
    dotted = plan.lab.teardown
    pid = fork_child(
        lambda: _teardown_process(plan, dotted), log_path=plan.workdir / "logs" / "teardown.log"
    )
    exited = asyncio.ensure_future(wait_exit(pid))
    done, _ = await asyncio.wait({exited}, timeout=TEARDOWN_TIMEOUT_S)
    if not done:
        log.warning(
            "teardown of %s took longer than %s s; killed", plan.sandbox_id, TEARDOWN_TIMEOUT_S
        )
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return await exited
