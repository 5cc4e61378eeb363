"""
A circuit breaker fed by classification: it counts only failures that say the dependency is
unhealthy (network, system and temporary errors by default; never data or permanent errors,
which prove the dependency answered), over a rolling window with a minimum throughput.

Closed: calls go through; once ``min_throughput`` outcomes in ``window`` seconds have a
failure ratio >= ``failure_ratio`` it opens. Open: calls fail fast with ``CircuitOpen`` for
``open_for`` seconds. Half-open: ``probes`` calls go through; a probe that succeeds closes it,
one that fails opens it again (a probe that never reports is replaced after ``open_for``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ._categories import CategoryKey
from ._classify import ErrorCategory
from ._errors import ConfigError, downstream_key, from_setting, seconds
from ._overload_memory import CLOSED, HALF_OPEN, OPEN, STATE_NAMES, default_store

DEFAULT_COUNTED = frozenset(
    {ErrorCategory.NETWORK_ERROR, ErrorCategory.SYSTEM_ERROR, ErrorCategory.TEMPORARY_ERROR}
)
NEVER_COUNTED = frozenset({ErrorCategory.DATA_ERROR, ErrorCategory.PERMANENT_ERROR})


class BreakerStore(Protocol):
    """Where breaker state lives: ``MemoryOverloadStore`` or ``RedisOverloadStore``."""

    def allow(self, breaker: CircuitBreaker) -> float:
        """0 if a call may go through now (a probe is taken when half-open), else seconds left open."""
        ...

    def peek(self, breaker: CircuitBreaker) -> float:
        """Seconds the breaker stays open (0 if closed), without taking a probe."""
        ...

    def record(self, breaker: CircuitBreaker, successes: int, failures: int) -> None:
        """Count outcomes of calls through *breaker*."""
        ...

    def breaker_state(self, breaker: CircuitBreaker) -> dict[str, Any]:
        """*breaker*'s state now, as ``CircuitBreaker.state()`` shows it."""
        ...


class CircuitOpen(Exception):
    """
    A call refused without being attempted: the circuit breaker *key* is open.

    Raised by a retrying call whose policy's breaker is open (and given as the stop reason
    ``circuit_open`` when a retry finds it open). It pickles, so it crosses process boundaries.

    Args:
        key: The breaker's key (the downstream it protects).
        remaining: Seconds until the breaker lets a probe through; also ``retry_after``.
    """

    def __init__(self, key: str, remaining: float) -> None:
        super().__init__(key, remaining)
        self.key = key
        self.remaining = remaining
        self.retry_after = remaining

    def __str__(self) -> str:
        return f"circuit breaker {self.key!r} is open; calls fail fast for another {self.remaining:.3g}s"

    def __reduce__(self) -> tuple[Any, ...]:
        return (CircuitOpen, (self.key, self.remaining), dict(self.__dict__))  # notes included


def _failure_ratio(value: object) -> float:
    """A breaker's *failure_ratio*: a number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError("failure_ratio", value, "must be in (0, 1]", "pass e.g. failure_ratio=0.5")
    return float(value)


def _counted_categories(counted: Iterable[CategoryKey] | None) -> frozenset[ErrorCategory]:
    """The categories a breaker counts as failures: the default ones, or those given if all may count."""
    if counted is None:
        return DEFAULT_COUNTED
    chosen = frozenset(ErrorCategory.parse(c, "counted") for c in counted)
    never = chosen & NEVER_COUNTED
    if never:
        raise ConfigError(
            "counted",
            sorted(c.value for c in never),
            "data and permanent errors prove the dependency answered: they never count",
            "count network_error, system_error, temporary_error or api_rate_limit",
        )
    return chosen


class CircuitBreaker:
    """
    A circuit breaker for the downstream named *key*; pass it as ``Policy(breaker=...)``.

    Closed, it counts the calls' outcomes; when at least *min_throughput* calls in *window*
    seconds failed at *failure_ratio* or more, it opens: calls fail fast with ``CircuitOpen`` and
    retries stop (``StopReason.CIRCUIT_OPEN``) for *open_for* seconds. Half-open, *probes* calls
    go through; their outcome closes or reopens it. Breakers with the same key and store share
    one state.

    Args:
        key: The downstream it protects (a service, an endpoint, a tenant).
        failure_ratio: The share of failed calls, from 0 to 1, that opens the breaker.
        min_throughput: The calls in *window* needed before the ratio counts.
        window: Seconds of outcomes the ratio is computed over.
        open_for: Seconds the breaker stays open before letting probes through.
        probes: Calls let through while half-open.
        counted: The categories that count as failures. Default: network, system and temporary
            errors (data and permanent errors prove the dependency answered; they never count).
        store: Where the state lives: the process (default) or a
            ``retrykit.overload.RedisOverloadStore`` shared by a fleet.
        clock: A monotonic clock in seconds, for simulations and tests. Default: the real one.

    Raises:
        ConfigError: A value out of range, naming the argument and the fix.
    """

    __slots__ = (
        "clock",
        "counted",
        "failure_ratio",
        "key",
        "min_throughput",
        "open_for",
        "probes",
        "store",
        "window",
    )

    def __init__(
        self,
        key: str,
        *,
        failure_ratio: float = 0.5,
        min_throughput: int = 20,
        window: float = 30.0,
        open_for: float = 5.0,
        probes: int = 1,
        counted: Iterable[CategoryKey] | None = None,
        store: BreakerStore | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.key: str = downstream_key(key)
        self.failure_ratio: float = _failure_ratio(failure_ratio)
        for name, value in (("min_throughput", min_throughput), ("probes", probes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(name, value, "must be a whole number >= 1", f"pass e.g. {name}=1")
        self.counted: frozenset[ErrorCategory] = _counted_categories(counted)
        self.min_throughput: int = min_throughput
        self.window: float = seconds("window", window, positive=True)
        self.open_for: float = seconds("open_for", open_for, positive=True)
        self.probes: int = probes
        self.store: BreakerStore | None = store  # None: the process's default store
        self.clock: Callable[[], float] = clock or time.monotonic

    @classmethod
    def parse(cls, value: Any, argument: str = "breaker") -> CircuitBreaker | None:
        """A breaker from a ``CircuitBreaker``, a key (default settings) or a mapping of settings."""
        return from_setting(cls, value, argument, "CircuitBreaker('payments')")

    def _store(self) -> BreakerStore:
        store = self.store
        return store if store is not None else default_store()

    def allow(self) -> float:
        """0.0 if a call may go ahead now (taking a probe when half-open), else the seconds left open."""
        return float(self._store().allow(self))

    def remaining(self) -> float:
        """Seconds the breaker stays open (0.0: closed or half-open); takes no probe."""
        return float(self._store().peek(self))

    def record(self, successes: int, failures: int) -> None:
        """Count outcomes: *failures* of counted categories, *successes* (anything else answered)."""
        self._store().record(self, successes, failures)

    def counts(self, category: ErrorCategory | None) -> bool:
        """Whether a failure of *category* counts as a failure (None: a success)."""
        return category is not None and category in self.counted

    def state(self) -> dict[str, Any]:
        """The breaker's state now (``state``, ``remaining``, window counts), from its store."""
        return {"key": self.key, **self._store().breaker_state(self)}

    def describe(self) -> str:
        """One line for ``retrykit explain``."""
        counted = ", ".join(sorted(c.value for c in self.counted))
        return (
            f"circuit breaker {self.key!r}: opens at {self.failure_ratio:.0%} failures of >= "
            f"{self.min_throughput} calls in {self.window:g}s ({counted}), open {self.open_for:g}s, "
            f"{self.probes} probe{'s' if self.probes != 1 else ''}"
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.key!r}>"


__all__ = [  # with the states, importable from here as before
    "CLOSED",
    "DEFAULT_COUNTED",
    "HALF_OPEN",
    "NEVER_COUNTED",
    "OPEN",
    "STATE_NAMES",
    "BreakerStore",
    "CircuitBreaker",
    "CircuitOpen",
]
