"""Take the runtime's fault injection for a service, so a learner can slow or break it."""

from __future__ import annotations

from typing import Any


def rest_middlewares(ctx: Any) -> list[Any]:
    """Return the aiohttp middlewares that apply the learner's faults to this service."""
    return []


def grpc_interceptors(ctx: Any) -> list[Any]:
    """Return the grpc.aio server interceptors that apply the learner's faults."""
    return []
