"""Errors that retrykit raises itself: few, precise and picklable."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar

_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>[^\s'\"<>]*)")
_SECRET_PARAM = re.compile(r"(?i)([?&;](?:password|passwd|pass|pwd|secret|token|auth)=)[^&;#\s'\"]*")
REDACTED = "***"


def redact_url(text: Any) -> str:
    """
    *text* with the credentials of every URL in it replaced by ``***``.

    ``redis://:hunter2@host:6379/0`` becomes ``redis://:***@host:6379/0``; ``user:pw@`` keeps
    the user name; a lone ``token@`` is replaced whole; ``?password=...`` query values too. Works
    on a bare URL or on any message that contains URLs, and never raises.
    """
    if not isinstance(text, str):
        text = str(text)

    def one(match: re.Match[str]) -> str:
        rest = match.group("rest")
        at = rest.rfind("@")  # over-redacting a path with "@" beats leaking a password
        if at != -1:
            user, colon, _ = rest[:at].partition(":")
            keep = colon and "/" not in user and "?" not in user
            rest = (f"{user}:{REDACTED}" if keep else REDACTED) + rest[at:]
        return match.group("scheme") + _SECRET_PARAM.sub(rf"\1{REDACTED}", rest)

    try:
        return _URL.sub(one, text)
    except Exception:  # pragma: no cover - defensive: redaction must never fail a message
        return "<url not shown>"


class Shown(str):
    """A value already rendered for a message (re-wrapping a ConfigError keeps it as it is)."""

    __slots__ = ()


HIDDEN: Any = Shown("<not shown>")
"""Pass as a ConfigError's value when the value is not retrykit's to show (a foreign setting)."""


def show_value(value: Any) -> str:
    """How a ConfigError shows *value*: its repr (strings quoted and whole), URLs redacted."""
    if isinstance(value, Shown):
        return value
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not hide the real error
        text = f"<{type(value).__name__} object>"
    if not isinstance(value, str) and len(text) > 500:
        text = f"{text[:480]}... ({len(text)} characters)"
    return Shown(redact_url(text))


def _rebuild(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    error = cls.__new__(cls)
    error.args = args
    return error


DISTRIBUTION = "retrykit-engine"
"""The name to install (``pip install retrykit-engine``); the import name is ``retrykit``."""


def install_hint(extra: str) -> str:
    """The install command for an optional part: ``pip install "retrykit-engine[celery]"``."""
    return f'pip install "{DISTRIBUTION}[{extra}]"'


class ConfigError(TypeError, ValueError):
    """
    A retrykit setting is invalid.

    Raised at construction time, never in the middle of a retried call. It subclasses both
    ``TypeError`` and ``ValueError`` so that either ``except`` catches it. The message names the
    argument, the rule it broke, the value received (its repr: strings are quoted and whole,
    credentials in URLs are redacted, a value that is not retrykit's is not shown) and the fix;
    the same parts are attributes (``value`` is the shown text). It pickles.

    Args:
        argument: The argument, keyword, setting or environment variable that is wrong.
        value: The value received (kept as the text shown).
        rule: What the value breaks: ``"must not be below base_delay=5.0"``.
        fix: What to do instead, itself a valid setting.
    """

    def __init__(self, argument: str, value: Any, rule: str, fix: str) -> None:
        self.argument = argument
        self.value: str = show_value(value)
        self.rule = rule
        self.fix = fix
        super().__init__(f"{argument}={self.value} is invalid: {rule}. Fix: {fix}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args), dict(self.__dict__))


E = TypeVar("E", bound=Enum)
T = TypeVar("T")


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
        example = "30" if positive else "1.5"
        raise ConfigError(argument, value, f"must be {bound}", f"pass e.g. {argument}={example}")
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


def downstream_key(key: object) -> str:
    """*key* if it can name a budget's or a breaker's downstream: a non-empty str."""
    if not isinstance(key, str) or not key:
        raise ConfigError("key", key, "must be a non-empty str", "name the downstream, e.g. 'payments-api'")
    return key


def callable_name(fn: Any) -> str:
    """
    A stable, argument-free name for a function, for logs, statistics and metric labels: its
    qualified name (that of the function inside a ``functools.partial``), or an object's class.
    Never ``repr()``: it may hold arguments (secrets) or addresses (unbounded label values).
    """
    for _ in range(8):
        inner = getattr(fn, "func", None)  # functools.partial and friends
        if inner is None or not callable(inner):
            break
        fn = inner
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) and name else type(fn).__qualname__


def from_setting(cls: type[T], value: Any, argument: str, example: str) -> T | None:
    """
    An instance of *cls* from itself, a key (``cls(key)``, default settings) or a mapping of
    its settings with a ``"key"``: how a policy takes its budget and its breaker.
    """
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, str):
        return cls(value)  # type: ignore[call-arg]
    if isinstance(value, Mapping):
        settings = dict(value)
        key = settings.pop("key", None)
        try:
            return cls(key, **settings)  # type: ignore[call-arg]
        except TypeError as err:
            raise ConfigError(
                argument, value, f"has an unknown setting ({err})", f"see {cls.__name__}'s arguments"
            ) from None
    raise ConfigError(
        argument, value, f"must be a {cls.__name__}, a key or a mapping", f"pass e.g. {example}"
    )
