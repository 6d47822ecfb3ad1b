"""Sentences and figures of the first five experiments' results, from measured values only.

Each function takes what a run measured and nothing it was merely asked to do,
so a headline cannot say "exactly once" because deduplication was switched on,
or "went through" because orders were placed.
"""

from __future__ import annotations

# Traces sampled during competing-consumers' load: set and reported from this one value.
LOAD_SAMPLE_RATIO = 0.02


def sync_vs_async_headline(
    *, sync_p50: float, async_p50: float, fault: str, outcomes: dict[str, str]
) -> str:
    """Say how each mode's last order fared under the fault, from its measured outcome."""

    def fared(mode: str) -> str:
        outcome = outcomes[mode]
        return "accepted" if outcome == "accepted" else f"refused ({outcome})"

    condition = "healthy" if fault == "none" else fault
    return (
        f"Sync orders took {sync_p50} ms at p50, async {async_p50} ms; with email {condition}, "
        f"the sync order was {fared('sync')} and the async one {fared('async')}."
    )


def at_least_once_headline(*, consumer: str, crashes: int, effects: int, distinct: int) -> str:
    """Say how often the work was done per order, from the store's counts."""
    duplicates = effects - distinct
    tally = "once each" if duplicates == 0 else f"{duplicates} duplicates"
    return (
        f"{crashes} crashes before the ack; {consumer} did its work {effects} times for "
        f"{distinct} orders: {tally}."
    )


def at_least_once_note(*, prefetch_applied: int | None, redelivered: int, crashes: int) -> str:
    """Say what the prefetch was and how many messages the crashes brought back, as measured."""
    prefetch = "unknown" if prefetch_applied is None else str(prefetch_applied)
    return (
        f"The consumer reported prefetch {prefetch} in force during the run, and counted "
        f"{redelivered} redelivered messages for {crashes} crashes."
    )


def poison_headline(
    *, letter: dict | None, good_handled: int, good_placed: int, outcome: str
) -> str:
    """Say what became of the poison order and of the good ones, from what was read back."""
    if letter is None:
        fate = "The poison order did not reach email.dead within the wait"
    else:
        fate = (
            f"The poison order was tried {letter['attempts']} times, then parked in "
            f"email.dead ({letter['reason']})"
        )
    return (
        f"{fate}; email handled {good_handled} of the {good_placed} good orders; it was {outcome}."
    )


def competing_summary(*, handled: int, published_s: float, elapsed_s: float) -> list[dict]:
    """Return throughput from the orders analytics really handled, and the two timings."""
    return [
        {"label": "throughput", "value": round(handled / elapsed_s, 1), "unit": "orders/s"},
        {"label": "orders handled", "value": handled, "unit": ""},
        {"label": "publishing took", "value": round(published_s, 2), "unit": "s"},
        {"label": "all handled after", "value": round(elapsed_s, 2), "unit": "s"},
    ]


def sampling_note(ratio: float) -> str:
    return f"Traces were sampled at {ratio:.0%} during the load."


def depth_rates(
    points: list[list[float]], *, fault_at: float, restored_at: float
) -> dict[str, float | None]:
    """Return how fast a queue filled while its consumer was down and how fast it drained.

    ``points`` are the depth sampler's [seconds, depth]; ``fault_at`` and
    ``restored_at`` are on the same clock. Filling: the depth reached by the
    restore over the time since the fault. Draining: that depth over the time
    from the restore to the first sample at zero. None when the run gives no
    figure (no depth, or no sample at zero).
    """
    at_restore = [depth for at, depth in points if at <= restored_at]
    peak = at_restore[-1] if at_restore else 0
    empty = [at for at, depth in points if at > restored_at and depth == 0]
    fill = peak / (restored_at - fault_at) if peak and restored_at > fault_at else None
    drain = peak / (empty[0] - restored_at) if peak and empty else None
    return {
        "filled at": None if fill is None else round(fill, 1),
        "drained at": None if drain is None else round(drain, 1),
    }
