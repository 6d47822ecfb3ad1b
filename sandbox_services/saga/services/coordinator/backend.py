"""The orchestrator: drive each saga through its steps, and back through compensations.

Every decision is written to the saga log before it is acted on. That is what
makes a crash harmless: a restarted coordinator reads where each saga stood and
sends the last command again; the participant's idempotency turns the repeat
into "duplicate" instead of a second charge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace

from opentelemetry import trace

from sandbox_services.saga.knobs import SagaConfig

from sandbox_services.saga.interface import (
    STEPS,
    Order,
    Participant,
    StepError,
    StepResult,
    StepTimeout,
)
from sandbox_services.saga.services.coordinator.saga_log import Outcome, SagaLog, SagaRecord
from sandbox_services.saga.store import current_span_ids, now_ns

log = logging.getLogger(__name__)
tracer = trace.get_tracer("sandbox_services.saga.services.coordinator.backend")

Sleep = Callable[[float], Awaitable[None]]


class SagaCoordinator:
    """Run sagas against participants, recording every transition in a durable log."""

    def __init__(
        self,
        saga_log: SagaLog,
        participants: Mapping[str, Participant],
        config: SagaConfig,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.log = saga_log
        self.participants = participants
        self.config = config
        self.sleep = sleep
        self.tasks: dict[str, asyncio.Task] = {}
        self.slots = asyncio.Semaphore(config.coordinator_max_in_flight)

    async def start(self, order: Order) -> SagaRecord:
        """Log a new saga as STARTED, then drive it in the background."""
        record = self.log.start(order)
        if not record.finished:
            self._spawn(record.saga_id)
        return record

    def resume_all(self) -> int:
        """Pick up every unfinished saga from the log (after a restart); return how many."""
        records = self.log.unfinished()
        for record in records:
            self._spawn(record.saga_id, resumed=True)
        return len(records)

    async def drain(self) -> None:
        """Wait until every saga this coordinator drives has finished (or failed)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        """Stop driving sagas; the log keeps where each one stands."""
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def _spawn(self, saga_id: str, *, resumed: bool = False) -> None:
        if saga_id in self.tasks:
            return
        task = asyncio.create_task(self._run(saga_id, resumed))
        self.tasks[saga_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(saga_id, None))

    async def _run(self, saga_id: str, resumed: bool) -> None:
        async with self.slots:
            name = "saga resumed from log" if resumed else "saga"
            with tracer.start_as_current_span(name) as span:
                span.set_attribute("saga.id", saga_id)
                record = self.log.load(saga_id)
                while not record.finished:
                    if record.phase == "forward":
                        record = await self._forward(record)
                    else:
                        record = await self._compensate(record)
                span.set_attribute("saga.state", record.state)

    async def _forward(self, record: SagaRecord) -> SagaRecord:
        index = record.step_index
        step = STEPS[index]
        if record.state != step.state:
            # Intent first: if we die after this line, the restart resends this step.
            record = self._move(record, state=step.state, phase="forward", step_index=index)
        started = now_ns()
        with _step_span(step.service, step.action) as span_ids:
            outcome, detail = await self._attempt_forward(
                step.service, step.action, record.order, retry_forever=step.compensation is None
            )
        if outcome == "ok":
            done = Outcome(
                step.state, step.service, step.action, "forward", detail, started, **span_ids
            )
            return await self._advance(record, index, done)
        failed = Outcome(
            step.state, step.service, step.action, "failure", outcome, started, detail, **span_ids
        )
        # A refusal is a definite "not applied". An error or a timeout is not:
        # the step may have applied before the reply was lost, so undo it too.
        first = _previous_compensatable(index if outcome in ("error", "timeout") else index - 1)
        if first < 0:
            return self._move(
                record,
                state="REJECTED",
                phase="finished",
                step_index=-1,
                failed_index=index,
                outcome=failed,
            )
        return self._move(
            record,
            state=STEPS[first].compensation_state or "",
            phase="compensating",
            step_index=first,
            failed_index=index,
            outcome=failed,
        )

    async def _advance(self, record: SagaRecord, index: int, done: Outcome) -> SagaRecord:
        following = index + 1
        if following == len(STEPS):
            return self._move(
                record, state="APPROVED", phase="finished", step_index=following, outcome=done
            )
        pause = record.order.plan.pause_after == STEPS[index].service and not record.paused
        state = STEPS[following].state
        record = self._move(
            record,
            state=state,
            phase="forward",
            step_index=following,
            paused=pause or None,
            outcome=done,
        )
        if pause:
            # Teaching hook: the saga sits between two steps, logged, so the
            # crash experiment can SIGKILL us here and watch the restart resume.
            plan = record.order.plan
            await self.sleep(self.config.crash_pause_s if plan.pause_s is None else plan.pause_s)
            record = self._move(
                record, state=state, phase="forward", step_index=following, paused=False
            )
        return record

    async def _compensate(self, record: SagaRecord) -> SagaRecord:
        index = _previous_compensatable(record.step_index)
        if index < 0:
            return self._move(record, state="REJECTED", phase="finished", step_index=-1)
        step = STEPS[index]
        state = step.compensation_state or ""
        if record.state != state:
            record = self._move(record, state=state, phase="compensating", step_index=index)
        started = now_ns()
        with _step_span(step.service, step.compensation or "") as span_ids:
            result = await self._until_done(step.service, step.compensation or "", record.order)
        undone = Outcome(
            state,
            step.service,
            step.compensation or "",
            "compensation",
            result.status,
            started,
            result.detail,
            **span_ids,
        )
        following = _previous_compensatable(index - 1)
        if following < 0:
            return self._move(
                record, state="REJECTED", phase="finished", step_index=-1, outcome=undone
            )
        return self._move(
            record,
            state=STEPS[following].compensation_state or "",
            phase="compensating",
            step_index=following,
            outcome=undone,
        )

    def _move(
        self,
        record: SagaRecord,
        *,
        state: str,
        phase: str,
        step_index: int,
        failed_index: int | None = None,
        paused: bool | None = None,
        outcome: Outcome | None = None,
    ) -> SagaRecord:
        """Commit the outcome and the next state together, then carry on from them."""
        self.log.transition(
            record.saga_id,
            state=state,
            phase=phase,
            step_index=step_index,
            failed_index=failed_index,
            paused=paused,
            outcome=outcome,
        )
        return replace(
            record,
            state=state,
            phase=phase,
            step_index=step_index,
            failed_index=record.failed_index if failed_index is None else failed_index,
            paused=record.paused if paused is None else paused,
        )

    async def _attempt_forward(
        self, service: str, action: str, order: Order, *, retry_forever: bool
    ) -> tuple[str, str]:
        """Send a forward command with retries on errors; return (outcome, detail)."""
        attempt = 0
        backoff = self.config.retry_backoff_s
        while True:
            attempt += 1
            try:
                result = await self._send(service, action, order, attempt)
            except StepTimeout as error:
                if not retry_forever:
                    return "timeout", str(error)
            except StepError as error:
                if not retry_forever and attempt >= self.config.step_attempts:
                    return "error", str(error)
            else:
                if result.succeeded:
                    return "ok", result.status
                return "refused", result.detail
            await self.sleep(backoff)
            backoff = min(backoff * 2, self.config.retry_backoff_max_s)

    async def _until_done(self, service: str, action: str, order: Order) -> StepResult:
        """Send a compensation until the participant confirms it: undoing must not give up."""
        attempt = 0
        backoff = self.config.retry_backoff_s
        while True:
            attempt += 1
            try:
                return await self._send(service, action, order, attempt)
            except StepError as error:
                log.info(
                    "%s %s for %s failed (%s); retrying", service, action, order.saga_id, error
                )
            await self.sleep(backoff)
            backoff = min(backoff * 2, self.config.retry_backoff_max_s)

    async def _send(self, service: str, action: str, order: Order, attempt: int) -> StepResult:
        participant = self.participants[service]
        result = await participant.execute(action, order, attempt=attempt)
        if order.plan.duplicate:
            # Experiment 4: the same command again, as after a lost reply.
            await participant.execute(action, order, attempt=attempt)
        return result


@contextmanager
def _step_span(service: str, action: str) -> Iterator[dict[str, str | None]]:
    """Open the span of one command (its attempts are its children); yield its ids.

    The saga log records these ids with the command's outcome, so each of the
    coordinator's timeline entries opens its own command, not the whole saga.
    """
    with tracer.start_as_current_span(f"coordinator {service}.{action}") as span:
        span.set_attributes({"saga.service": service, "saga.action": action})
        trace_id, span_id = current_span_ids()
        yield {"trace_id": trace_id, "span_id": span_id}


def _previous_compensatable(index: int) -> int:
    """Return the nearest step at or before ``index`` that has a compensation, or -1."""
    while index >= 0 and STEPS[index].compensation is None:
        index -= 1
    return index
