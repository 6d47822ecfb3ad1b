"""A consumer over HTTP: the sync path of the order service, and the experiments' view."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from .interface import HandleResult


class ConsumerUnavailable(Exception):
    """The consumer did not answer, or answered with an error."""


class ConsumerClient:
    def __init__(self, address: str | Callable[[], str], *, timeout_s: float = 5.0) -> None:
        # An address may be given late (a callable): ports of a sandbox are known at
        # start, but a service restarted by the learner keeps its port.
        self._address = address if callable(address) else (lambda: address)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _call(self, method: str, path: str, **kw) -> dict:
        url = f"http://{self._address()}{path}"
        try:
            async with self._client().request(method, url, **kw) as answer:
                data = await answer.json()
                if answer.status >= 400:
                    raise ConsumerUnavailable(f"{answer.status}: {data.get('detail', '')}")
                return data
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ConsumerUnavailable(
                type(error).__name__ + (f": {error}" if str(error) else "")
            ) from error

    async def handle(self, order: dict, *, message_id: str) -> HandleResult:
        data = await self._call(
            "POST", "/handle", json=order, headers={"Idempotency-Key": message_id}
        )
        return HandleResult(data["message_id"], data["effect"])

    async def stats(self) -> dict:
        return await self._call("GET", "/stats")

    async def configure(self, **values: object) -> dict:
        return await self._call("PUT", "/config", json=values)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
