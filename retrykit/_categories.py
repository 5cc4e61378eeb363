"""
The vocabulary the classifier and its rule families share: the categories, a classification,
the signal tiers, and the readers of headers and wait hints.

Kept apart from ``_classify`` so that the per-library rule modules (``_rules_*``) can build
classifications without importing the classifier that imports them.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, TypeVar

from ._errors import parse_enum

if TYPE_CHECKING:
    from ._layers import InnerRetries


class ErrorCategory(str, Enum):
    """The kinds of failure retrykit tells apart; each maps to a strategy in a policy."""

    NETWORK_ERROR = "network_error"
    """Connections refused, reset or timed out: the request may not have been served."""
    API_RATE_LIMIT = "api_rate_limit"
    """The server said slow down (HTTP 429, throttling)."""
    DATA_ERROR = "data_error"
    """The input is wrong (validation, decoding, HTTP 400/422): retrying repeats the failure."""
    SYSTEM_ERROR = "system_error"
    """This machine is short of a resource (memory, disk, file descriptors)."""
    TEMPORARY_ERROR = "temporary_error"
    """A transient server-side condition (HTTP 5xx, deadlock, lost database connection)."""
    PERMANENT_ERROR = "permanent_error"
    """A bug or a refusal that retrying cannot fix (TypeError, HTTP 401/403/404)."""

    @classmethod
    def parse(cls, value: Any, argument: str = "category") -> ErrorCategory:
        """Accept a member, its value (``"network_error"``) or its name (``"NETWORK_ERROR"``)."""
        return parse_enum(cls, value, argument, "an error category")


CategoryName: TypeAlias = Literal[
    "network_error", "api_rate_limit", "data_error", "system_error", "temporary_error", "permanent_error"
]
"""A category by its value: type checkers accept these strings where a category is expected."""
CategoryKey: TypeAlias = "ErrorCategory | CategoryName"
"""A category: the enum member or its value."""
V_co = TypeVar("V_co", covariant=True)


class CategoryItems(Protocol[V_co]):
    """A mapping by category, built with members, values or both (``dict[ErrorCategory, int]``)."""

    def items(self) -> Iterable[tuple[CategoryKey, V_co]]:
        """The (category, value) pairs."""
        ...


CategoryCosts: TypeAlias = "Mapping[CategoryKey, int] | CategoryItems[int]"
"""Whole numbers by category: a dict display (the Mapping) or a mapping built elsewhere."""


@dataclass(frozen=True, slots=True)
class Classification:
    """
    The verdict on one failure: its category, why, and how long the server asked to wait.

    ``retrykit.classify(exc)`` and ``Classifier.classify`` return one; events carry it. A rule of
    yours may return one instead of a bare category, to add a reason or a wait.

    Args:
        category: The kind of failure, which picks the policy's strategy.
        reason: A short text for people: ``"HTTP 503"``, ``"errno ECONNRESET"``, ...
        retry_after: Seconds the server asked to wait (``Retry-After``), if it said so.
        rule: The name of the rule that matched, or ``"default"`` when none did.
        replay_unsafe: The request may have reached the server and is not idempotent: a retry
            could apply it twice (the policy gives up unless ``idempotent=True``).
        inner: The client inside the call already retried (an ``InnerRetries``: which client,
            how many requests it sent, how to switch its retries off); None when it did not say.
    """

    category: ErrorCategory
    reason: str
    retry_after: float | None = None
    """Seconds the server asked to wait (``Retry-After``), if it said so."""
    rule: str = "default"
    """The rule that matched; ``"unrecognised"`` (or ``"default"``, given a default) when none did."""
    replay_unsafe: bool = False
    """the request may have reached the server and is not idempotent: a retry could apply it twice"""
    inner: InnerRetries | None = None
    """The client inside the call already retried: which, and how many requests it sent."""


NET = ErrorCategory.NETWORK_ERROR
RATE = ErrorCategory.API_RATE_LIMIT
DATA = ErrorCategory.DATA_ERROR
SYS = ErrorCategory.SYSTEM_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR

# Signal tiers: the most specific signal anywhere in the cause chain wins; on a tie, the
# outermost link wins. A protocol code (SQLSTATE, driver error number, HTTP/gRPC status, AWS
# error code, AMQP reply code, Redis reply prefix, errno) beats a library's specific exception
# class, which beats a generic transport or builtin type, which beats a wrapper's class name.
CODE, CLASS, GENERIC, WRAPPER = 0, 1, 2, 3
TIER_NAMES = ("protocol code", "specific class", "generic type", "wrapper class name")

Hit: TypeAlias = "tuple[int, Classification]"


def hit(
    tier: int,
    category: ErrorCategory,
    reason: str,
    rule: str,
    retry_after: float | None = None,
) -> Hit:
    """A family's verdict on one link, with the tier of the signal it was read from."""
    return tier, Classification(category, reason, retry_after, rule)


def attr(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)`` that also survives properties that raise (hostile objects)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def header(headers: Any, name: str) -> Any:
    """A header from a mapping-like object (httpx, requests, aiohttp, email.Message, dict)."""
    if headers is None:
        return None
    getter = attr(headers, "get")
    if getter is None:
        return None
    value = getter(name)
    if value is None:
        value = getter(name.lower())
    return value


def parse_retry_after(value: Any, *, now: float | None = None) -> float | None:
    """
    Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    A date in the past, a negative number or garbage gives ``None`` (use the strategy's own delay).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)):
        seconds = float(value)
        return seconds if 0 <= seconds < float("inf") else None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when: datetime = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT; a zone-less parse means "-0000"
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return delta if delta > 0 else None


def _milliseconds(value: Any) -> float | None:
    seconds = parse_retry_after(value)
    return None if seconds is None else seconds / 1000.0


def _reset(value: Any, now: float | None = None) -> float | None:
    """``RateLimit-Reset``/``X-RateLimit-Reset``: delta-seconds, or an epoch time (GitHub)."""
    seconds = parse_retry_after(value)
    if seconds is not None and seconds > 1_000_000_000:  # an epoch timestamp, not a delta
        delta = seconds - (time.time() if now is None else now)
        return delta if delta > 0 else None
    return seconds


# Header name -> parser, in order of authority.
WAIT_HEADERS: tuple[tuple[str, Any], ...] = (
    ("retry-after-ms", _milliseconds),  # openai, anthropic (more precise than Retry-After)
    ("Retry-After", parse_retry_after),
    ("x-amz-retry-after", _milliseconds),
    ("grpc-retry-pushback-ms", _milliseconds),
    ("RateLimit-Reset", _reset),
    ("X-RateLimit-Reset", _reset),
)


def wait_from_headers(headers: Any) -> float | None:
    """The first server wait hint among the headers (``Retry-After`` and friends), in seconds."""
    if headers is None:
        return None
    for name, parse in WAIT_HEADERS:
        raw = header(headers, name)
        if raw is not None:
            seconds = parse(raw)
            if seconds is not None:
                return float(seconds)
    return None


def module_of(cls: type) -> str:
    """The module a class was defined in ('' if it does not say)."""
    try:
        module = cls.__module__
    except Exception:
        return ""
    return module if isinstance(module, str) else ""


ClassTable: TypeAlias = "Mapping[tuple[str, str], tuple[int, ErrorCategory, str]]"
"""A rule family's verdicts by (top-level module, class name): (tier, category, why)."""


def top_module(module: str) -> str:
    """The top-level package of a module name (``"httpx"`` of ``"httpx._exceptions"``)."""
    return module.split(".", 1)[0]


def by_class(
    table: ClassTable,
    cls: type,
    rule: str | Callable[[str], str],
    top: Callable[[str], str] = top_module,
) -> Hit | None:
    """
    The verdict of *table* for *cls* or its nearest base listed there, keyed by the top of the
    class's module (*top* of it) and its name; *rule* names the rule (or makes the name from the
    top module).
    """
    for klass in cls.__mro__:
        where = top(module_of(klass))
        found = table.get((where, klass.__name__))
        if found is not None:
            tier, category, why = found
            return hit(
                tier, category, f"{cls.__name__}: {why}", rule if isinstance(rule, str) else rule(where)
            )
    return None
