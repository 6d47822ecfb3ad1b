"""An experiment's parameters: declared once as ``Param``s, checked by ``validate`` alone.

Each lesson's ``knobs.py`` declares every experiment's parameters and its
``LAB`` attaches them to the ``ExperimentSpec``s. The lesson page, the API's
lesson list, the API's 400s and the runtime's run path all read that one
declaration, and ``validate`` is the only function that checks values against
it: nothing downstream checks again, and nothing clamps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TYPES = ("int", "float", "choice", "bool")


class ParameterError(ValueError):
    """Parameters that do not fit their declaration.

    ``errors`` maps each bad name to its messages; ``name`` is the first bad one.
    ``ParameterError(name, message)`` reports one; ``validate`` reports them all.
    """

    def __init__(
        self, name: str, message: str, *, errors: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self.errors = {key: list(value) for key, value in (errors or {name: [message]}).items()}
        self.name = next(iter(self.errors))
        super().__init__(
            "; ".join(f"{key}: {' '.join(value)}" for key, value in self.errors.items())
        )


@dataclass(frozen=True)
class Param:
    """One learner parameter of an experiment: its type, default and bounds or choices.

    A number (``int`` or ``float``) needs ``min`` and ``max``; a ``choice`` needs
    ``choices`` (strings); a ``bool`` needs a bool default. A declaration that
    breaks its own rules fails when the lesson's knobs are imported.
    """

    name: str
    type: str  # int | float | choice | bool
    default: Any
    min: float | None = None
    max: float | None = None
    choices: Sequence[str] = ()
    help: str = ""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"{self.name}: type must be one of {', '.join(TYPES)}")
        if self.type in ("int", "float"):
            if not (_is_number(self.min) and _is_number(self.max) and self.min <= self.max):
                raise ValueError(f"{self.name}: a number parameter needs min <= max")
            if self.type == "int" and not all(map(_is_int, (self.min, self.max, self.default))):
                raise ValueError(f"{self.name}: an int parameter needs an int default and bounds")
        if self.type == "choice" and (
            not self.choices or not all(isinstance(choice, str) for choice in self.choices)
        ):
            raise ValueError(f"{self.name}: a choice parameter needs choices (strings)")
        try:
            _check(self, self.default)
        except ValueError as error:
            raise ValueError(f"{self.name}: default {self.default!r} {error}") from None

    def as_dict(self) -> dict:
        """Return the parameter as the API and the lesson page show it."""
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices),
            "help": self.help,
        }


def validate(spec: Iterable[Param], params: Any) -> dict:
    """Return every declared parameter, defaults filled in; raise ParameterError naming each bad one.

    Strict, because the values come from JSON: a bool is only ``true``/``false``;
    a number is only a JSON number (never a bool or a string such as "10"); an
    int is whole; NaN, infinities and numbers past the bounds (a 400-digit
    integer, 1e400) are refused with the bounds; an undeclared name is refused.
    """
    spec = tuple(spec)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ParameterError("params", "must be an object of parameter names to values")
    declared = {param.name: param for param in spec}
    errors: dict[str, list[str]] = {}
    for name in params:
        if name not in declared:
            expected = f"expected one of: {', '.join(declared)}" if declared else "takes none"
            errors[str(name)] = [f"unknown parameter; this experiment {expected}"]
    cleaned = {}
    for name, param in declared.items():
        try:
            cleaned[name] = _check(param, params[name] if name in params else param.default)
        except ValueError as error:
            errors[name] = [str(error)]
    if errors:
        first = next(iter(errors))
        raise ParameterError(first, errors[first][0], errors=errors)
    return cleaned


def _check(param: Param, value: Any) -> Any:
    """Return the value as the parameter's type; raise ValueError with the learner's message."""
    if param.type == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError("must be true or false")
    if param.type == "choice":
        if isinstance(value, str) and value in param.choices:
            return value
        raise ValueError(f"must be one of: {', '.join(param.choices)}")
    if not _is_number(value):
        raise ValueError(f"must be a number ({param.type}), not {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number {_between(param)}")
    if param.type == "int" and isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    # Compared as they are: Python compares an int of any size with a float exactly,
    # while float() of a 400-digit integer raises OverflowError.
    if not param.min <= value <= param.max:
        raise ValueError(f"must be {_between(param)}")
    try:
        return int(value) if param.type == "int" else float(value)
    except OverflowError:  # cannot happen within finite bounds; refused, never a 500
        raise ValueError(f"must be {_between(param)}") from None


def _between(param: Param) -> str:
    return f"between {param.min} and {param.max}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__
