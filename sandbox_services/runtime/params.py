"""Validate an experiment's parameters against bounds declared once, in the lab's config."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


class ParameterError(ValueError):
    """A parameter is missing its bounds; the message names it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # int | float | choice | bool
    default: Any
    min: float | None = None
    max: float | None = None
    choices: Sequence[str] = ()
    help: str = ""

    def as_dict(self) -> dict:
        """Return the parameter in the shape lesson front matter and the API use."""
        out = {"name": self.name, "type": self.type, "default": self.default}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.choices:
            out["choices"] = list(self.choices)
        if self.help:
            out["help"] = self.help
        return out


def _coerce(param: Param, value: Any) -> Any:
    if param.type == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false", 0, 1):
            return value in ("true", 1)
        raise ParameterError(param.name, f"must be true or false, got {value!r}")
    if param.type == "choice":
        if value not in param.choices:
            raise ParameterError(
                param.name, f"must be one of {', '.join(param.choices)}, got {value!r}"
            )
        return value
    kind = int if param.type == "int" else float
    if isinstance(value, bool) or (
        kind is int and isinstance(value, float) and not value.is_integer()
    ):
        raise ParameterError(param.name, f"must be {'an integer' if kind is int else 'a number'}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ParameterError(param.name, f"must be a number, got {value!r}") from None
    if math.isnan(number) or math.isinf(number):
        raise ParameterError(param.name, f"must be a finite number, got {value!r}")
    if (param.min is not None and number < param.min) or (
        param.max is not None and number > param.max
    ):
        raise ParameterError(
            param.name, f"must be between {param.min} and {param.max}, got {value!r}"
        )
    return number


def validate(spec: Iterable[Param], params: dict | None) -> dict:
    """Return the parameters with defaults filled in; raise ParameterError naming a bad one."""
    spec = list(spec)
    params = dict(params or {})
    known = {p.name for p in spec}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ParameterError(
            unknown[0], f"unknown parameter (expected one of {', '.join(sorted(known))})"
        )
    return {p.name: _coerce(p, params.get(p.name, p.default)) for p in spec}
