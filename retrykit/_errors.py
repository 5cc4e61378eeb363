"""Errors that retrykit raises itself: few, precise and picklable."""

from __future__ import annotations

import math
from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar


class ConfigError(TypeError, ValueError):
    """
    A retrykit setting is invalid.

    Raised at construction time, never in the middle of a retried call. It subclasses both
    ``TypeError`` and ``ValueError`` so that either ``except`` catches it. The message names the
    argument, the rule it broke, the value received and the fix; the same parts are attributes.
    """

    def __init__(self, argument: str, value: Any, rule: str, fix: str) -> None:
        self.argument = argument
        self.value = value if isinstance(value, str) else _short_repr(value)
        self.rule = rule
        self.fix = fix
        super().__init__(f"{argument}={self.value} is invalid: {rule}. Fix: {fix}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.argument, self.value, self.rule, self.fix))


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


E = TypeVar("E", bound=Enum)


def parse_enum(cls: type[E], value: Any, argument: str, what: str) -> E:
    """A member of *cls* from itself, its value or its name (any case); else a ConfigError."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        for member in cls:
            if key in (str(member.value).lower(), member.name.lower()):
                return member
    known = ", ".join(str(m.value) for m in cls)
    raise ConfigError(argument, value, f"is not {what}", f"use one of: {known}")


def seconds(argument: str, value: Any, *, allow_none: bool = True, positive: bool = False) -> Any:
    """Validate a duration (seconds as int/float, or a timedelta) and return it as float seconds."""
    if value is None:
        if allow_none:
            return None
        raise ConfigError(argument, value, "a duration is required", "pass seconds as a number")
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            argument,
            value,
            "must be a number of seconds or a timedelta",
            f"pass e.g. {argument}=1.5",
        )
    if math.isnan(value) or math.isinf(value):
        raise ConfigError(argument, value, "must be finite", "pass a finite number of seconds")
    if value < 0 or (positive and value == 0):
        bound = "greater than 0" if positive else "0 or more"
        raise ConfigError(argument, value, f"must be {bound}", f"pass a duration {bound}")
    return float(value)


def whole(argument: str, value: Any, *, minimum: int, allow_none: bool = True) -> Any:
    """Validate a whole number with a lower bound."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(argument, value, "must be a whole number", f"pass e.g. {argument}=3")
    if value < minimum:
        raise ConfigError(argument, value, f"must be {minimum} or more", f"pass {argument}>={minimum}")
    return value
