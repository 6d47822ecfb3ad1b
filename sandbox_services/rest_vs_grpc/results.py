"""What every REST vs gRPC result shares: labels, ratios, the result of a run cut short."""

from __future__ import annotations

from typing import Any

LABELS = {"rest": "REST", "grpc": "gRPC"}


def failed(headline: str, error: Exception) -> dict[str, Any]:
    """Return the result of a run a stopped, slowed or broken service cut short."""
    return {
        "headline": headline,
        "notes": [
            str(error),
            (
                "If you stopped, slowed or broke a service, look for the red span in the trace; "
                "clear the fault and run again."
            ),
        ],
        "ok": False,
    }


def ratio(larger: float, smaller: float) -> float:
    """Return larger / smaller to two places (0 when smaller is 0)."""
    return round(larger / smaller, 2) if smaller else 0.0
