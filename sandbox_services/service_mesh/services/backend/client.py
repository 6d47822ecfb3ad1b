"""The PriceService Protocol over HTTP, for whoever calls the backend (the frontend)."""

from __future__ import annotations

import aiohttp

from .interface import BackendUnavailable, Quote


class PriceClient:
    """Call one backend address: a replica, or a sidecar's outbound listener."""

    def __init__(self, session: aiohttp.ClientSession, address: str) -> None:
        self._session = session
        self._url = f"http://{address}/quote"

    async def quote(self, item: str) -> Quote:
        async with self._session.get(self._url, params={"item": item}) as response:
            if response.status != 200:
                raise BackendUnavailable(response.status, await response.text())
            body = await response.json()
        return Quote(body["item"], int(body["price_cents"]), int(body["replica"]))
