"""The order service over HTTP: what the experiments and tests place orders through."""

from __future__ import annotations

import time

import aiohttp

from .interface import Mode, Order, OrderReceipt, OrderRefused


class OrdersHttpClient:
    def __init__(self, address: str, *, timeout_s: float = 30.0) -> None:
        self._url = f"http://{address}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def place_order(self, order: Order, *, mode: Mode) -> OrderReceipt:
        """Place an order; raise OrderRefused with the service's reason on 4xx/5xx."""
        body = {**order.as_dict(), "mode": mode}
        try:
            async with self._session.post(f"{self._url}/orders", json=body) as answer:
                data = await answer.json()
                if answer.status != 201:
                    raise OrderRefused(
                        data.get("detail", str(answer.status)),
                        service=data.get("service", "orders"),
                    )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise OrderRefused(f"orders unreachable: {error!r}", service="orders") from error
        return OrderReceipt(data["order_id"], data["mode"], data["told"])

    async def timed_order(self, order: Order, *, mode: Mode) -> tuple[float, str | None]:
        """Place an order; return (latency in ms, error message or None)."""
        started = time.perf_counter()
        try:
            await self.place_order(order, mode=mode)
            error = None
        except OrderRefused as refused:
            error = str(refused)
        return (time.perf_counter() - started) * 1000, error

    async def stats(self) -> dict:
        async with self._session.get(f"{self._url}/stats") as answer:
            return await answer.json()

    async def close(self) -> None:
        await self._session.close()
