"""The mail provider over HTTP: a blocking client for the consuming thread, an async one for runs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

import aiohttp

from sandbox_services.broker.tracing import inject_headers

from .interface import MailProviderUnavailable, SendReceipt, SendRequest


class MailProviderClient:
    """Call the provider from a consumer's thread (blocking, as the consumer's work is)."""

    def __init__(self, address: Callable[[], str], *, timeout_s: float = 5.0) -> None:
        self._address = address
        self._timeout_s = timeout_s

    def send(self, request: SendRequest) -> SendReceipt:
        headers = {"Content-Type": "application/json"}
        if request.idempotency_key is not None:
            headers["Idempotency-Key"] = request.idempotency_key
        # urllib is not instrumented: carry the consumer's trace context by hand, so the
        # provider's send joins the order's trace.
        headers = inject_headers(headers)
        body = json.dumps({"to": request.recipient, "message_id": request.message_id}).encode()
        call = urllib.request.Request(
            f"http://{self._address()}/send", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(call, timeout=self._timeout_s) as answer:
                data = json.loads(answer.read())
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise MailProviderUnavailable(f"{type(error).__name__}: {error}") from error
        return SendReceipt(data["send_id"], data["replayed"])


class MailProviderStats:
    """Read the provider's own counts (the experiment's view)."""

    def __init__(self, address: str) -> None:
        self._url = f"http://{address}/stats"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def stats(self) -> dict:
        async with self._session.get(self._url) as answer:
            return await answer.json()

    async def close(self) -> None:
        await self._session.close()
