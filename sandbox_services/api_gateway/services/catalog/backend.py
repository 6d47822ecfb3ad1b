"""The catalog's data and its own request counter (the evidence that a refused request never came)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

ITEMS = [
    {"sku": f"sku-{number:03d}", "name": name, "price_cents": 500 + 137 * number}
    for number, name in enumerate(
        ["kettle", "teapot", "mug", "grinder", "scale", "filter", "tin", "tray", "spoon", "whisk"],
        start=1,
    )
]


@dataclass
class CatalogCounters:
    requests: int = 0
    with_identity_header: int = 0
    with_token: int = 0


class ItemCatalog:
    def __init__(self, work_ms: float) -> None:
        self.work_ms = work_ms
        self.counters = CatalogCounters()

    async def items(self, limit: int) -> list[dict]:
        await asyncio.sleep(self.work_ms / 1000)
        return ITEMS[: max(1, min(limit, len(ITEMS)))]

    async def item(self, sku: str) -> dict | None:
        await asyncio.sleep(self.work_ms / 1000)
        return next((item for item in ITEMS if item["sku"] == sku), None)
