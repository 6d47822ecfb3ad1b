"""The participants' local transactions: one step or one compensation, applied at most once.

Every call runs one SQLite transaction in the service's own file. Inside it:
the idempotency check (inbox and step state), the business change, the step
log row and, in choreography, the outbox event. Nothing here knows about the
network; the gRPC servicers and the AMQP consumer both call it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from opentelemetry import trace

from sandbox_services.saga.knobs import SagaConfig

from sandbox_services.saga.interface import (
    COMPENSATIONS,
    FORWARD_ACTIONS,
    Order,
    StepError,
    StepResult,
    StepTimeout,
)
from sandbox_services.saga.services.participant.outbox import write_event
from sandbox_services.saga.store import (
    database_path,
    log_step,
    now_ns,
    open_store,
    transaction,
)

tracer = trace.get_tracer("sandbox_services.saga")

# Step states kept per (saga, forward step). "voided" is the tombstone a
# compensation leaves when it arrives before its forward step: the late
# forward step is then refused instead of applied with nobody left to undo it.
APPLIED, REFUSED, COMPENSATED, VOIDED = "applied", "refused", "compensated", "voided"


class ParticipantBackend:
    """The generic idempotent step engine; each service adds its own tables and effects."""

    service: str = ""
    schema: str = ""

    def __init__(self, path: Path, config: SagaConfig) -> None:
        self.config = config
        self.conn = open_store(path, self.schema)
        # One writer at a time on this connection; SQLite allows one writer anyway.
        self.lock = threading.Lock()
        self.seed()

    @classmethod
    def open(cls, workdir: Path, config: SagaConfig) -> ParticipantBackend:
        """Open this participant's backend on its own file in the sandbox directory."""
        return cls(database_path(workdir, cls.service), config)

    def seed(self) -> None:
        """Fill the service's reference data on first start."""

    def close(self) -> None:
        """Close the database file."""
        self.conn.close()

    # -- the service's own effects -------------------------------------------------
    def apply(self, conn: sqlite3.Connection, action: str, order: Order) -> str | None:
        """Apply a forward step's effect; return a refusal reason instead to refuse it."""
        raise NotImplementedError

    def undo(self, conn: sqlite3.Connection, action: str, order: Order) -> None:
        """Undo an applied forward step (the compensation's effect)."""
        raise NotImplementedError

    def on_tombstone(self, conn: sqlite3.Connection, action: str, order: Order) -> None:
        """React to a compensation that came before its forward step (default: nothing)."""

    # -- the engine -------------------------------------------------------------------
    def execute(
        self,
        action: str,
        order: Order,
        *,
        message_id: str | None = None,
        emit: bool = False,
        budget_s: float | None = None,
    ) -> StepResult:
        """Run a forward step or a compensation; raise StepError/StepTimeout when unsure."""
        if action in FORWARD_ACTIONS:
            return self.forward(action, order, message_id=message_id, emit=emit, budget_s=budget_s)
        if action in COMPENSATIONS:
            return self.compensate(action, order, message_id=message_id, emit=emit)
        raise ValueError(f"{self.service} has no action {action!r}")

    def forward(
        self,
        action: str,
        order: Order,
        *,
        message_id: str | None,
        emit: bool,
        budget_s: float | None,
    ) -> StepResult:
        """Apply a forward step at most once per saga."""
        start = now_ns()
        with tracer.start_as_current_span(f"{self.service}.{action}") as span:
            span.set_attribute("saga.id", order.saga_id)
            if self._has_outside_work(order):
                # Answer repeats before doing the slow outside work again; the
                # decisive check is repeated inside the transaction below.
                with self.lock, transaction(self.conn) as conn:
                    repeat = self._repeat(conn, action, order, message_id, start)
                if repeat is not None:
                    span.set_attribute("saga.step_status", repeat.status)
                    return repeat
            try:
                self._simulate_dependency(order, budget_s)
            except StepError as error:
                kind = "timeout" if isinstance(error, StepTimeout) else "error"
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
                with self.lock, transaction(self.conn) as conn:
                    log_step(
                        conn,
                        saga_id=order.saga_id,
                        service=self.service,
                        step=action,
                        kind="failure",
                        status=kind,
                        start_ns=start,
                        detail=str(error),
                    )
                raise
            with self.lock, transaction(self.conn) as conn:
                result = self._forward_locked(conn, action, order, message_id, emit, start)
            span.set_attribute("saga.step_status", result.status)
            return result

    def _repeat(
        self,
        conn: sqlite3.Connection,
        action: str,
        order: Order,
        message_id: str | None,
        start: int,
    ) -> StepResult | None:
        seen = (
            message_id
            and conn.execute("SELECT 1 FROM inbox WHERE message_id = ?", (message_id,)).fetchone()
        )
        if seen:
            return self._log(
                conn, order, action, "forward", "duplicate", start, "message already handled"
            )
        return self._settled(conn, action, order, _state(conn, order.saga_id, action), start)

    def _settled(
        self, conn: sqlite3.Connection, action: str, order: Order, state: str | None, start: int
    ) -> StepResult | None:
        """Answer a step that already applied or was refused as it was answered before."""
        if state == APPLIED:
            # The idempotent consumer at work: a resend or a redelivery of a step
            # that already happened answers as before and changes nothing.
            return self._log(
                conn, order, action, "forward", "duplicate", start, "step already applied"
            )
        if state == REFUSED:
            return self._log(
                conn,
                order,
                action,
                "failure",
                "refused",
                start,
                "step already refused",
                result="refused",
            )
        return None

    def _forward_locked(
        self,
        conn: sqlite3.Connection,
        action: str,
        order: Order,
        message_id: str | None,
        emit: bool,
        start: int,
    ) -> StepResult:
        saga_id = order.saga_id
        if message_id and not first_delivery(conn, message_id):
            return self._log(
                conn, order, action, "forward", "duplicate", start, "message already handled"
            )
        state = _state(conn, saga_id, action)
        settled = self._settled(conn, action, order, state, start)
        if settled is not None:
            return settled
        if state in (COMPENSATED, VOIDED):
            reason = "compensated before it arrived; refusing the late step"
            self._emit(conn, emit, action, "failed", order, reason)
            return self._log(
                conn, order, action, "failure", "refused", start, reason, result="refused"
            )
        reason = self._scripted_refusal(order) or self.apply(conn, action, order)
        if reason:
            _set_state(conn, saga_id, action, REFUSED)
            self._emit(conn, emit, action, "failed", order, reason)
            return self._log(
                conn, order, action, "failure", "refused", start, reason, result="refused"
            )
        _set_state(conn, saga_id, action, APPLIED)
        self._emit(conn, emit, action, "ok", order, "")
        return self._log(conn, order, action, "forward", "done", start, "")

    def compensate(
        self,
        action: str,
        order: Order,
        *,
        message_id: str | None,
        emit: bool,
    ) -> StepResult:
        """Undo this saga's forward step at most once; leave a tombstone if it never came."""
        start = now_ns()
        forward_action = COMPENSATIONS[action].action
        with tracer.start_as_current_span(f"{self.service}.{action}") as span:
            span.set_attribute("saga.id", order.saga_id)
            _work(self.config.step_work_s)
            with self.lock, transaction(self.conn) as conn:
                if message_id and not first_delivery(conn, message_id):
                    return self._log(
                        conn,
                        order,
                        action,
                        "compensation",
                        "duplicate",
                        start,
                        "message already handled",
                    )
                state = _state(conn, order.saga_id, forward_action)
                if state in (COMPENSATED, VOIDED):
                    return self._log(
                        conn,
                        order,
                        action,
                        "compensation",
                        "duplicate",
                        start,
                        "already compensated",
                    )
                if state == APPLIED:
                    self.undo(conn, forward_action, order)
                    _set_state(conn, order.saga_id, forward_action, COMPENSATED)
                    self._emit(conn, emit, action, "ok", order, "")
                    return self._log(conn, order, action, "compensation", "done", start, "")
                if state is None:
                    _set_state(conn, order.saga_id, forward_action, VOIDED)
                    self.on_tombstone(conn, forward_action, order)
                    detail = "nothing applied yet: tombstone left so a late step is refused"
                else:
                    detail = "the step was refused, nothing to undo"
                self._emit(conn, emit, action, "ok", order, detail)
                return self._log(
                    conn, order, action, "compensation", "noop", start, detail, result="noop"
                )

    def record_failure(
        self,
        action: str,
        order: Order,
        *,
        reason: str,
        message_id: str | None,
        emit: bool,
    ) -> StepResult:
        """Give up on a forward step that kept failing: mark it refused and tell the others."""
        start = now_ns()
        with self.lock, transaction(self.conn) as conn:
            if message_id:
                first_delivery(conn, message_id)
            if _state(conn, order.saga_id, action) is not None:
                return StepResult("duplicate", "already decided")
            _set_state(conn, order.saga_id, action, REFUSED)
            self._emit(conn, emit, action, "failed", order, reason)
            return self._log(
                conn, order, action, "failure", "gave-up", start, reason, result="refused"
            )

    # -- helpers -------------------------------------------------------------------------
    def _has_outside_work(self, order: Order) -> bool:
        """Tell whether this step would wait on its simulated dependency at all."""
        return self.config.step_work_s > 0 or order.plan.fail_at == self.service

    def _simulate_dependency(self, order: Order, budget_s: float | None) -> None:
        """Do the step's simulated outside work; the plan can make it error or hang."""
        _work(self.config.step_work_s)
        if order.plan.fail_at != self.service:
            return
        if order.plan.fail_kind == "error":
            raise StepError(f"{self.service}: dependency failed (injected error)")
        if order.plan.fail_kind == "timeout":
            budget = self.config.participant_budget_s if budget_s is None else budget_s
            # The dependency never answers; we wait out our budget and give up.
            _work(budget)
            raise StepTimeout(f"{self.service}: dependency gave no answer in {budget:.2f}s")

    def _scripted_refusal(self, order: Order) -> str | None:
        plan = order.plan
        if plan.fail_at == self.service and plan.fail_kind == "refusal":
            return f"{self.service} refused (injected refusal)"
        return None

    def _emit(
        self,
        conn: sqlite3.Connection,
        emit: bool,
        action: str,
        outcome: str,
        order: Order,
        detail: str,
    ) -> None:
        if emit:
            write_event(
                conn,
                service=self.service,
                action=action,
                outcome=outcome,
                order=order,
                detail=detail,
            )

    def _log(
        self,
        conn: sqlite3.Connection,
        order: Order,
        step: str,
        kind: str,
        status: str,
        start: int,
        detail: str,
        *,
        result: str | None = None,
    ) -> StepResult:
        log_step(
            conn,
            saga_id=order.saga_id,
            service=self.service,
            step=step,
            kind=kind,
            status=status,
            start_ns=start,
            detail=detail,
        )
        return StepResult(result or status, detail)  # type: ignore[arg-type]


def _work(seconds: float) -> None:
    """Spend ``seconds`` on simulated work (none at all for 0: even sleep(0) yields the CPU)."""
    if seconds > 0:
        time.sleep(seconds)


def first_delivery(conn: sqlite3.Connection, message_id: str) -> bool:
    """Record a message id in the inbox; return False if it was there already."""
    cursor = conn.execute(
        "INSERT OR IGNORE INTO inbox (message_id, received_ns) VALUES (?, ?)",
        (message_id, now_ns()),
    )
    return cursor.rowcount == 1


def _state(conn: sqlite3.Connection, saga_id: str, step: str) -> str | None:
    row = conn.execute(
        "SELECT state FROM step_state WHERE saga_id = ? AND step = ?", (saga_id, step)
    ).fetchone()
    return row[0] if row else None


def _set_state(conn: sqlite3.Connection, saga_id: str, step: str, state: str) -> None:
    conn.execute(
        "INSERT INTO step_state (saga_id, step, state, updated_ns) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (saga_id, step) DO UPDATE SET state = excluded.state,"
        " updated_ns = excluded.updated_ns",
        (saga_id, step, state, now_ns()),
    )
