"""Validate a learner's experiment parameters against the lesson's declaration."""

import math
from typing import Any

from .lessons import Experiment


class ParamsInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{key}: {' '.join(value)}" for key, value in errors.items()))


def params_clean(experiment: Experiment, raw: Any) -> dict:
    """Return the parameters with defaults filled in; raise ParamsInvalid naming each bad field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsInvalid({"params": ["must be an object of parameter names to values"]})
    errors: dict[str, list[str]] = {}
    declared = {parameter.name: parameter for parameter in experiment.parameters}
    for name in raw:
        if name not in declared:
            errors[str(name)] = [
                f"unknown parameter; expected one of: {', '.join(declared) or 'none'}"
            ]
    cleaned = {}
    for name, parameter in declared.items():
        value = raw.get(name, parameter.default)
        try:
            cleaned[name] = _coerce(parameter, value)
        except ValueError as error:
            errors[name] = [str(error)]
    if errors:
        raise ParamsInvalid(errors)
    return cleaned


def _coerce(parameter, value):
    kind = parameter.type
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError("must be true or false")
    if kind == "choice":
        if value in parameter.choices:
            return value
        raise ValueError(f"must be one of: {', '.join(map(str, parameter.choices))}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a number ({kind})")
    try:
        number = int(value) if kind == "int" else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number ({kind})") from None
    if kind == "int" and isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    if math.isnan(number) or math.isinf(number):
        raise ValueError("must be a finite number")
    if not parameter.min <= number <= parameter.max:
        raise ValueError(f"must be between {parameter.min} and {parameter.max}")
    return number
