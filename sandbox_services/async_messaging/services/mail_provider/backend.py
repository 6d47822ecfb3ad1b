"""What the mail provider does with a send request: send it, unless its key was seen."""

from __future__ import annotations

from opentelemetry import trace

from .interface import SendReceipt, SendRequest
from .store import MailStore

tracer = trace.get_tracer(__name__)


class MailBackend:
    def __init__(self, store: MailStore) -> None:
        self.store = store

    def send(self, request: SendRequest) -> SendReceipt:
        with tracer.start_as_current_span("mail-provider: send email") as span:
            receipt = self.store.send(request)
            if receipt.replayed:
                # Teaching point: the second request with this key sent nothing.
                span.add_event("idempotency key seen: first answer returned, nothing sent")
            span.set_attribute("mail.replayed", receipt.replayed)
            return receipt
