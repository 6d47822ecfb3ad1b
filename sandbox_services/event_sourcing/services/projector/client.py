"""The projector over HTTP."""

from __future__ import annotations

import aiohttp

from .interface import ViewError


class ProjectorClient:
    def __init__(self, address: str, *, timeout_s: float = 30.0) -> None:
        self._url = f"http://{address}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def _call(self, method: str, path: str, **kw) -> dict:
        async with self._session.request(method, f"{self._url}{path}", **kw) as answer:
            data = await answer.json()
            if answer.status >= 400:
                raise ViewError(data.get("detail", str(answer.status)))
            return data

    async def views(self) -> dict:
        return await self._call("GET", "/views")

    async def view(self, name: str) -> dict:
        return await self._call("GET", f"/views/{name}")

    async def add_view(self, name: str, kind: str) -> dict:
        return await self._call("POST", "/views", json={"name": name, "kind": kind})

    async def rebuild(
        self, name: str, *, source: str = "zero", until_offset: int | None = None
    ) -> dict:
        body = {"from": source, "until_offset": until_offset}
        return await self._call("POST", f"/views/{name}/rebuild", json=body)

    async def snapshot(self, name: str) -> dict:
        return await self._call("POST", f"/views/{name}/snapshot")

    async def drop(self, name: str) -> dict:
        return await self._call("DELETE", f"/views/{name}")

    async def reconnects(self) -> int:
        return (await self._call("GET", "/stats"))["reconnects"]

    async def close(self) -> None:
        await self._session.close()
