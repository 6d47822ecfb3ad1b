"""Domain types of the mail provider: a send request and what the provider answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class SendRequest:
    recipient: str
    message_id: str
    # The caller's idempotency key; None sends every request it is given.
    idempotency_key: str | None = None


@dataclass
class SendReceipt:
    send_id: int
    # True when the key was seen before: the first answer is returned, nothing is sent.
    replayed: bool


class MailProviderUnavailable(Exception):
    """The provider did not answer, or answered with an error."""


class MailProvider(Protocol):
    def send(self, request: SendRequest) -> SendReceipt:
        """Send one email, or return the first receipt of a key already seen."""
