"""Validation of settings dataclasses, driven by each field's declaration (torch-free).

A field declares its kind and range once (`whole(1, 10_000)`, `number(0, 1, low_open=True)`,
`choice("none", "batch")`, `flag()`); `Checked.problems(values)` then says, one message per
problem and naming the field, what is wrong with a mapping of values: an unknown field, a
wrong type, a value out of range. A `Checked` dataclass runs the same checks when built, so a
config made by training and one read from a checkpoint pass the same tests.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

# Bounds shared by the model configs and the command line: far beyond any recipe, low enough
# that a tampered checkpoint or an option cannot make a model that exhausts memory or time
# before it says so.
MAX_STEPS = 10_000  # time steps (the recipes use 6-100)
MAX_WIDTH = 65_536  # channels or neurons of a layer


def whole(low: int, high: int, default: int, help: str = "") -> Any:
    """An int field from `low` to `high`."""
    check = ("whole", low, high)
    return dataclasses.field(default=default, metadata={"check": check, "help": help})


def number(
    low: float, high: float, default: float, low_open: bool = False, high_open: bool = False,
    help: str = "",
) -> Any:
    """A finite real field in [low, high]; `low_open`/`high_open` exclude that end."""
    check = ("number", low, high, low_open, high_open)
    return dataclasses.field(default=default, metadata={"check": check, "help": help})


def choice(*values: str, default: str, help: str = "") -> Any:
    """A str field that is one of `values`."""
    return dataclasses.field(default=default, metadata={"check": ("choice", values), "help": help})


def text(default: str, help: str = "") -> Any:
    """A str field (whose valid values are checked elsewhere)."""
    return dataclasses.field(default=default, metadata={"check": ("text",), "help": help})


def flag(default: bool, help: str = "") -> Any:
    """A bool field."""
    return dataclasses.field(default=default, metadata={"check": ("flag",), "help": help})


def show(value: Any, width: int = 40) -> str:
    """A value as a message quotes it: repr, shortened."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _interval(low, high, low_open, high_open) -> str:
    if high == math.inf:
        return f"above {low:g}" if low_open else f"{low:g} or more"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def field_problem(name: str, value: Any, check: tuple) -> str | None:
    """What is wrong with `value` for a field declared by `check`, or None."""
    kind, *args = check
    shown = f"{name} {show(value)}"
    if kind == "whole":
        low, high = args
        if not _is_int(value):
            return f"{shown} must be a whole number"
        if not low <= value <= high:
            return f"{shown} must be {low}" if low == high else (
                f"{shown} must be from {low:,} to {high:,}"
            )
    elif kind == "number":
        low, high, low_open, high_open = args
        if not _is_real(value):
            return f"{shown} must be a number"
        if not math.isfinite(value):
            return f"{shown} must be a finite number"
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            return f"{shown} must be {_interval(low, high, low_open, high_open)}"
    elif kind == "choice":
        (values,) = args
        if not isinstance(value, str) or value not in values:
            return f"{shown} must be one of: {', '.join(values)}"
    elif kind == "text":
        if not isinstance(value, str):
            return f"{shown} must be text"
    elif kind == "flag":
        if not isinstance(value, bool):
            return f"{shown} must be true or false"
    return None


class Checked:
    """Mixin for a dataclass whose fields are declared with `whole`, `number`, `choice` or
    `flag`: `problems` validates a mapping of values, `check` an instance; building an
    instance with bad values raises ConfigError (one line per problem)."""

    @classmethod
    def problems(cls, values: Mapping, where: str = "") -> list[str]:
        """One message per unknown field, wrong type or out-of-range value in `values` (missing
        fields take their defaults), each starting with `where` ("config ...")."""
        prefix = f"{where} " if where else ""
        if not isinstance(values, Mapping):
            return [f"{where or 'settings'} must be a mapping of field names to values, "
                    f"not {type(values).__name__}"]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        found = []
        for name in values:
            if name not in fields:
                found.append(f"{prefix}has an unknown field {show(name)}")
        for name, field in fields.items():
            if name in values and "check" in field.metadata:
                problem = field_problem(name, values[name], field.metadata["check"])
                if problem:
                    found.append(prefix + problem)
        if not found:
            complete = {name: values.get(name, _default(f)) for name, f in fields.items()}
            found.extend(prefix + p for p in cls.combined_problems(complete))
        return found

    @classmethod
    def combined_problems(cls, values: dict) -> list[str]:
        """Problems of several fields together (each field already valid on its own)."""
        return []

    def check(self) -> list[str]:
        return type(self).problems(
            {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        )

    def __post_init__(self) -> None:
        problems = self.check()
        if problems:
            raise ConfigError("\n".join(f"{type(self).__name__} {p}" for p in problems))


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default
