"""Grade a prediction against the figure its checkpoint names in a run's result."""

from __future__ import annotations

import math

from lab.curriculum.lessons import Checkpoint


def figure_value(result: dict | None, label: str) -> float | None:
    """Return the numeric summary figure ``label`` of a run's result, or None."""
    if not isinstance(result, dict):
        return None
    items = [item for item in result.get("summary") or [] if isinstance(item, dict)]
    for match in (
        lambda text: text == label,
        lambda text: text.casefold() == label.casefold(),
    ):
        for item in items:
            if match(str(item.get("label", ""))):
                value = item.get("value")
                if isinstance(value, bool):
                    return float(value)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    return float(value)
                return None
    return None


def ratio_value(result: dict | None, figure: str, per: str = "") -> float | None:
    """Return the summary figure ``figure``, divided by the figure ``per`` when given."""
    value = figure_value(result, figure)
    if value is None or not per:
        return value
    divisor = figure_value(result, per)
    if not divisor:
        return None
    return value / divisor


def observed_figure(checkpoint: Checkpoint, result: dict | None) -> float | None:
    """Return the figure a predict checkpoint is graded on (a ratio when it names ``per``)."""
    return ratio_value(result, checkpoint.figure, checkpoint.per)


def choice_of(checkpoint: Checkpoint, observed: float) -> int:
    """Return the index of the choice whose range holds ``observed``."""
    return sum(1 for bound in checkpoint.bins if observed >= bound)


def is_correct(checkpoint: Checkpoint, predicted: float, observed: float) -> bool:
    """Tell whether a prediction matches what the run measured."""
    if checkpoint.answer_type == "choice":
        return int(predicted) == choice_of(checkpoint, observed)
    return abs(predicted - observed) <= checkpoint.tolerance * abs(observed)
