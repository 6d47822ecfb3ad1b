"""Call the caller's API over HTTP: what the lab's experiments use."""

from __future__ import annotations

import json
from typing import Any, Self

import aiohttp


class CallerError(RuntimeError):
    """The caller answered with an error; the message says why."""


class CallerClient:
    """Run the caller's scenarios; construct inside a running event loop."""

    def __init__(self, address: str, *, timeout_s: float = 30) -> None:
        self._base_url = f"http://{address}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._session.post(self._base_url + path, json=body) as response:
                raw = await response.read()
                status = response.status
        except aiohttp.ClientError as error:
            raise CallerError(f"caller unreachable: {error!r}") from error
        try:
            data = json.loads(raw)
        except ValueError:
            data = {"detail": raw[:300].decode(errors="replace")}
        if status >= 400:
            raise CallerError(f"caller answered {status}: {data.get('detail', data)}")
        return data

    async def one_call(self, items: int) -> dict[str, Any]:
        return await self._post("/v1/one-call", {"items": items})

    async def streaming(self, duration_s: float, poll_interval_ms: int) -> dict[str, Any]:
        body = {"duration_s": duration_s, "poll_interval_ms": poll_interval_ms}
        return await self._post("/v1/streaming", body)

    async def contract(self) -> dict[str, Any]:
        return await self._post("/v1/contract", {})

    async def multiplexing(
        self, calls: int, hold_ms: int, rest_connection_limit: int
    ) -> dict[str, Any]:
        body = {"calls": calls, "hold_ms": hold_ms, "rest_connection_limit": rest_connection_limit}
        return await self._post("/v1/multiplexing", body)

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
