"""The CheckoutService Protocol over HTTP (experiments call the frontend through this)."""

from __future__ import annotations

import aiohttp

from .interface import Checkout


class CheckoutClient:
    def __init__(self, session: aiohttp.ClientSession, address: str) -> None:
        self._session = session
        self._url = f"http://{address}/checkout"

    async def checkout(self, item: str, *, forward_trace: bool = True) -> Checkout:
        params = {"item": item, "forward": "1" if forward_trace else "0"}
        async with self._session.get(self._url, params=params) as response:
            response.raise_for_status()
            body = await response.json()
        return Checkout(body["item"], int(body["total_cents"]), int(body["priced_by_replica"]))
