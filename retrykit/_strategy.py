"""
Strategies: what to do about one category of failure.

A ``Strategy`` is a ``Decision`` plus its numbers (how many retries, how long to wait, how the
wait grows, how it is jittered), or tenacity ``wait``/``stop`` objects the user composed. Delays
are capped *before* jitter is applied, so that delays at the cap stay spread out instead of all
collapsing onto the cap.
"""

from __future__ import annotations

import difflib
import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict

from ._errors import ConfigError, parse_enum, seconds, whole

if TYPE_CHECKING:
    from typing_extensions import Unpack


class Decision(str, Enum):
    """What to do about a failure of some category."""

    RETRY_IMMEDIATELY = "retry_immediately"
    """Retry at once (a blip): no wait."""
    RETRY_WITH_DELAY = "retry_with_delay"
    """Wait *base_delay* (growing by *backoff_factor*, 1 by default: a fixed delay)."""
    RETRY_WITH_BACKOFF = "retry_with_backoff"
    """Wait exponentially longer each time (*backoff_factor* 2 by default), with jitter."""
    NO_RETRY = "no_retry"
    """Do not retry: retrying repeats the failure."""

    @classmethod
    def parse(cls, value: Any, argument: str = "decision") -> Decision:
        """Accept a member, its value or its name."""
        return parse_enum(cls, value, argument, "a decision")


class Jitter(str, Enum):
    """How a delay is randomised so that clients that failed together do not retry together."""

    NONE = "none"
    """The delay as computed."""
    FULL = "full"
    """Uniform between 0 and the delay."""
    EQUAL = "equal"
    """Half the delay, plus uniform up to the other half."""
    DECORRELATED = "decorrelated"
    """Uniform between *base_delay* and three times the previous delay (capped)."""

    @classmethod
    def parse(cls, value: Any, argument: str = "jitter") -> Jitter:
        """Accept a member, its value, or a bool (``True`` is full jitter, as in Celery)."""
        if isinstance(value, cls):
            return value
        if value is True:
            return cls.FULL
        if value is False or value is None:
            return cls.NONE
        return parse_enum(cls, value, argument, "a jitter kind")


DecisionName: TypeAlias = Literal["retry_immediately", "retry_with_delay", "retry_with_backoff", "no_retry"]
"""A decision by its value: type checkers accept these strings where a decision is expected."""
JitterName: TypeAlias = Literal["none", "full", "equal", "decorrelated"]
"""A jitter kind by its value."""
Duration: TypeAlias = "float | timedelta"
"""Seconds, or a ``timedelta``."""


class BackoffOptions(TypedDict, total=False):
    """The keywords of ``Strategy.backoff`` after its delays and *max_retries*."""

    backoff_factor: float
    jitter: Jitter | JitterName | bool | None
    min_delay: Duration
    honor_retry_after: bool
    queue: str | None


class DelayOptions(BackoffOptions, total=False):
    """The keywords of ``Strategy.delay`` and ``Strategy.immediately``."""

    max_delay: Duration


class CustomOptions(DelayOptions, total=False):
    """The keywords of ``Strategy.custom`` after *wait*, *stop* and *max_retries*."""

    base_delay: Duration


class StrategyOptions(CustomOptions, total=False):
    """The keywords of ``Strategy.replace``: every option of a ``Strategy``."""

    decision: Decision | DecisionName
    max_retries: int | None
    wait: Callable[[Any], float] | None
    stop: Callable[[Any], bool] | None


_DEFAULT_FACTOR = {
    Decision.RETRY_IMMEDIATELY: 1.0,
    Decision.RETRY_WITH_DELAY: 1.0,
    Decision.RETRY_WITH_BACKOFF: 2.0,
    Decision.NO_RETRY: 1.0,
}
_DEFAULT_JITTER = {
    Decision.RETRY_IMMEDIATELY: Jitter.NONE,
    Decision.RETRY_WITH_DELAY: Jitter.NONE,
    Decision.RETRY_WITH_BACKOFF: Jitter.FULL,
    Decision.NO_RETRY: Jitter.NONE,
}
_RETRY_AFTER_SPREAD = 0.1
_UNSET: Any = object()
CUSTOM_MAX_DELAY = 3600.0
"""``Strategy.custom``'s cap on one wait unless told otherwise: a process never sleeps unbounded."""
LONGEST_DELAY = 366 * 86400.0
"""The longest delay a strategy may name (a year): every wait, turned into a Celery ``eta`` or a
timestamp, stays a date the platform can represent."""


class NoOptions(TypedDict, total=False):
    """``Strategy.no_retry`` takes no keyword."""


def _options(
    constructor: str, given: dict[str, Any], allowed: Any, fixed: dict[str, str], named: tuple[str, ...] = ()
) -> None:
    """
    Refuse a keyword *constructor* does not take (its keywords: *allowed*, besides its *named*
    parameters): a ``ConfigError`` naming it, never a TypeError.
    """
    for key, value in given.items():
        if key in allowed:
            continue
        if key in fixed:
            raise ConfigError(key, value, f"{constructor} sets {key} itself", fixed[key])
        names = sorted({*allowed, *named})
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(names) or 'no keyword'}"
        raise ConfigError(key, value, f"is not an option of {constructor}", hint)


_FIXED = {"decision": "drop decision; use the constructor of the decision you want"}


@dataclass(frozen=True, slots=True)
class Strategy:
    """
    What to do about one category of failure.

    The *n*-th retry of a category waits ``min(max_delay, base_delay * backoff_factor ** (n-1))``,
    then *jitter* is applied, then the *min_delay* floor. A ``Retry-After`` the server sent takes
    the place of the computed delay (as a floor: with jitter, up to 10 % more is added so that
    clients told the same time do not return together). The constructors ``immediately``,
    ``delay``, ``backoff``, ``no_retry`` and ``custom`` are the usual way to build one.

    Args:
        decision: Retry at once, after a delay, with backoff, or not at all (a ``Decision`` or
            its value).
        max_retries: Retries of this category within one call. Default: 3 (0 for ``NO_RETRY``).
        base_delay: Seconds (or a ``timedelta``) before the first retry.
        max_delay: The longest wait, applied before jitter; also caps a custom *wait*.
        backoff_factor: Growth of the delay per retry. Default: 2 with backoff, 1 otherwise.
        jitter: How the delay is randomised (a ``Jitter`` or its value). Default: full jitter
            with backoff, none otherwise.
        min_delay: A floor under every wait, applied after jitter.
        wait: A tenacity ``wait`` object that computes the delay instead (it sees the category's
            retry number as its attempt number).
        stop: A tenacity ``stop`` object that limits this category's retries instead of, or as
            well as, *max_retries*.
        honor_retry_after: Whether a server's ``Retry-After`` replaces the computed delay.
        queue: Celery only: the queue this category's retries are published to.

    Raises:
        ConfigError: Contradictory or out-of-range values (a ``max_delay`` below ``base_delay``,
            ``NO_RETRY`` with retries, a retrying strategy with no bound), naming the fix.
    """

    decision: Decision = Decision.RETRY_WITH_BACKOFF
    max_retries: int | None = _UNSET
    base_delay: float = 1.0
    max_delay: float = 60.0
    backoff_factor: float = _UNSET
    jitter: Jitter = _UNSET
    min_delay: float = 0.0
    wait: Callable[[Any], float] | None = None
    stop: Callable[[Any], bool] | None = None
    honor_retry_after: bool = True
    queue: str | None = None
    """Celery only: the queue this category's retries are published to."""

    def __post_init__(self) -> None:
        decision = Decision.parse(self.decision)
        object.__setattr__(self, "decision", decision)
        self._fill_defaults(decision)
        self._check_delays()
        self._check_tenacity_objects()
        if decision is Decision.NO_RETRY:
            self._check_no_retry()
        else:
            self._check_bound()
        self._check_order(decision)
        if self.queue is not None and not (isinstance(self.queue, str) and self.queue):
            raise ConfigError("queue", self.queue, "must be a queue name", "pass a non-empty str")

    def _fill_defaults(self, decision: Decision) -> None:
        """The defaults that depend on the decision; ``honor_retry_after`` checked."""
        set_ = object.__setattr__
        if self.max_retries is _UNSET:
            set_(self, "max_retries", 0 if decision is Decision.NO_RETRY else 3)
        if not isinstance(self.honor_retry_after, bool):
            raise ConfigError(
                "honor_retry_after",
                self.honor_retry_after,
                "must be True or False",
                "pass honor_retry_after=False to ignore servers' Retry-After",
            )
        if self.backoff_factor is _UNSET:
            set_(self, "backoff_factor", _DEFAULT_FACTOR[decision])
        if self.jitter is _UNSET:
            set_(self, "jitter", _DEFAULT_JITTER[decision])
        set_(self, "jitter", Jitter.parse(self.jitter))

    def _check_delays(self) -> None:
        """The three delays as seconds of at most a year, and the factor as a number >= 1."""
        for name in ("base_delay", "max_delay", "min_delay"):
            value = seconds(name, getattr(self, name), allow_none=False)
            if value > LONGEST_DELAY:
                raise ConfigError(
                    name,
                    value,
                    f"is longer than a year ({LONGEST_DELAY:g} s), the longest delay a retry may wait",
                    f"pass at most {name}={LONGEST_DELAY:g} (or a timedelta of at most 366 days)",
                )
            object.__setattr__(self, name, value)
        factor = self.backoff_factor
        if (
            isinstance(factor, bool)
            or not isinstance(factor, (int, float))
            or not (math.isfinite(factor) and factor >= 1)
        ):
            raise ConfigError(
                "backoff_factor",
                factor,
                "must be a finite number of 1 or more",
                "use 1 for a fixed delay or 2 to double it each retry",
            )
        object.__setattr__(self, "backoff_factor", float(factor))

    def _check_tenacity_objects(self) -> None:
        """``wait`` and ``stop``, when given, are callables."""
        for name in ("wait", "stop"):
            obj = getattr(self, name)
            if obj is not None and not callable(obj):
                raise ConfigError(
                    name,
                    obj,
                    "must be a tenacity object or a callable taking a RetryCallState",
                    "pass e.g. wait=tenacity.wait_exponential() or stop=tenacity.stop_after_attempt(5)",
                )

    def _check_no_retry(self) -> None:
        """NO_RETRY takes no retries, no wait and no stop."""
        if self.max_retries not in (0, None):
            raise ConfigError(
                "max_retries",
                self.max_retries,
                "NO_RETRY contradicts retries",
                "use max_retries=0 with NO_RETRY, or pick a retrying decision",
            )
        if self.wait is not None or self.stop is not None:
            raise ConfigError(
                "wait",
                self.wait or self.stop,
                "NO_RETRY never waits or stops",
                "drop wait=/stop=, or pick a retrying decision",
            )
        object.__setattr__(self, "max_retries", 0)

    def _check_bound(self) -> None:
        """A retrying strategy is bounded by ``max_retries`` or a tenacity ``stop``."""
        whole("max_retries", self.max_retries, minimum=1)
        if self.max_retries is None and self.stop is None:
            raise ConfigError(
                "max_retries",
                None,
                "a retrying strategy needs a bound",
                "pass max_retries=N or stop=<a tenacity stop>",
            )

    def _check_order(self, decision: Decision) -> None:
        """base_delay <= max_delay, min_delay <= max_delay, and no delay for RETRY_IMMEDIATELY."""
        if decision is Decision.RETRY_IMMEDIATELY and self.base_delay > 0:
            raise ConfigError(
                "base_delay",
                self.base_delay,
                "RETRY_IMMEDIATELY never waits",
                "use Decision.RETRY_WITH_DELAY for a delay, or base_delay=0",
            )
        if self.max_delay < self.base_delay:
            raise ConfigError(
                "max_delay",
                self.max_delay,
                f"must not be below base_delay={self.base_delay}",
                f"raise max_delay to at least {self.base_delay} or lower base_delay",
            )
        if self.min_delay > self.max_delay and decision is not Decision.RETRY_IMMEDIATELY:
            raise ConfigError(
                "min_delay",
                self.min_delay,
                f"must not exceed max_delay={self.max_delay}",
                "lower min_delay or raise max_delay",
            )

    # ------------------------------------------------------------------ constructors

    @classmethod
    def immediately(cls, max_retries: int = 3, **kwargs: Unpack[DelayOptions]) -> Strategy:
        """
        Retry at once, with no wait.

        Args:
            max_retries: Retries of the category within one call.
            **kwargs: ``min_delay``, ``honor_retry_after``, ``queue`` (see ``Strategy``).

        Returns:
            The strategy.
        """
        options: dict[str, Any] = dict(kwargs)  # validated by the constructor (text, timedelta)
        _options(
            "Strategy.immediately",
            options,
            DelayOptions.__optional_keys__,
            {
                "base_delay": "drop base_delay (it never waits), or use Strategy.delay(base_delay) to wait",
                "decision": "drop decision; use the constructor of the decision you want",
            },
            ("max_retries",),
        )
        return cls(Decision.RETRY_IMMEDIATELY, max_retries, base_delay=0.0, **options)

    @classmethod
    def delay(
        cls, base_delay: float | timedelta, max_retries: int = 3, **kwargs: Unpack[DelayOptions]
    ) -> Strategy:
        """
        Wait *base_delay* before each retry, growing by *backoff_factor* if given.

        Args:
            base_delay: Seconds (or a ``timedelta``) before each retry.
            max_retries: Retries of the category within one call.
            **kwargs: ``backoff_factor``, ``max_delay``, ``jitter``, ``min_delay``,
                ``honor_retry_after``, ``queue`` (see ``Strategy``).

        Returns:
            The strategy. ``Strategy.delay(300, backoff_factor=2, max_delay=1800)`` waits 5,
                10, then 20 minutes.
        """
        base = seconds("base_delay", base_delay, allow_none=False)
        given: dict[str, Any] = dict(kwargs)
        _options(
            "Strategy.delay", given, DelayOptions.__optional_keys__, _FIXED, ("base_delay", "max_retries")
        )
        options: dict[str, Any] = {"max_delay": base, **given}  # a max_delay below base: an error
        return cls(Decision.RETRY_WITH_DELAY, max_retries, base_delay=base, **options)

    @classmethod
    def backoff(
        cls,
        base_delay: float | timedelta = 1.0,
        max_delay: float | timedelta = 60.0,
        max_retries: int = 3,
        **kwargs: Unpack[BackoffOptions],
    ) -> Strategy:
        """
        Exponential backoff with jitter: full jitter and factor 2 unless told otherwise.

        Args:
            base_delay: Seconds (or a ``timedelta``) before the first retry, before jitter.
            max_delay: The longest wait, before jitter.
            max_retries: Retries of the category within one call.
            **kwargs: ``backoff_factor``, ``jitter``, ``min_delay``, ``honor_retry_after``,
                ``queue`` (see ``Strategy``).

        Returns:
            The strategy.
        """
        options: dict[str, Any] = dict(kwargs)
        _options(
            "Strategy.backoff",
            options,
            BackoffOptions.__optional_keys__,
            _FIXED,
            ("base_delay", "max_delay", "max_retries"),
        )
        return cls(
            Decision.RETRY_WITH_BACKOFF,
            max_retries,
            base_delay=seconds("base_delay", base_delay, allow_none=False),
            max_delay=seconds("max_delay", max_delay, allow_none=False),
            **options,
        )

    @classmethod
    def no_retry(cls, **kwargs: Unpack[NoOptions]) -> Strategy:
        """
        Never retry this category.

        Args:
            **kwargs: None are accepted; any keyword is a ``ConfigError`` that says why.

        Returns:
            The strategy.
        """
        _options("Strategy.no_retry", dict(kwargs), (), {"max_retries": "drop it: NO_RETRY never retries"})
        return cls(Decision.NO_RETRY, 0, base_delay=0.0, max_delay=0.0)

    @classmethod
    def custom(
        cls,
        *,
        wait: Callable[[Any], float] | None = None,
        stop: Callable[[Any], bool] | None = None,
        max_retries: int | None = None,
        **kwargs: Unpack[CustomOptions],
    ) -> Strategy:
        """
        Delays from a tenacity *wait*, limits from a tenacity *stop* (and/or *max_retries*).

        The objects see the category's retry number as their attempt number, and a wait is capped by
        *max_delay* (one hour unless told), the deadline and the Retry-After rules. A wait that raises
        or returns something that is not a number falls back to the strategy's own delay.

        Args:
            wait: A tenacity ``wait`` (``wait_exponential(1, max=30) + wait_random(0, 1)``).
            stop: A tenacity ``stop`` (``stop_after_attempt(5) | stop_after_delay(60)``).
            max_retries: Retries of the category within one call, as well as or instead of *stop*.
            **kwargs: ``max_delay``, ``min_delay``, ``honor_retry_after``, ``queue``, ...
                (see ``Strategy``).

        Returns:
            The strategy.

        Raises:
            ConfigError: Neither *wait* nor *stop* given.
        """
        if wait is None and stop is None:
            raise ConfigError(
                "wait",
                None,
                "a custom strategy needs a wait or a stop",
                "pass wait=tenacity.wait_... and/or stop=tenacity.stop_...",
            )
        given: dict[str, Any] = dict(kwargs)
        _options(
            "Strategy.custom", given, CustomOptions.__optional_keys__, _FIXED, ("wait", "stop", "max_retries")
        )
        options: dict[str, Any] = {"max_delay": CUSTOM_MAX_DELAY, **given}
        return cls(Decision.RETRY_WITH_BACKOFF, max_retries, wait=wait, stop=stop, **options)

    def replace(self, **changes: Unpack[StrategyOptions]) -> Strategy:
        """
        A copy with *changes* applied and validated.

        Args:
            **changes: Any field of ``Strategy`` by keyword.

        Returns:
            The new strategy; this one is unchanged.

        Raises:
            ConfigError: An unknown field (with the closest known one) or a bad value.
        """
        allowed = [f.name for f in fields(self)]
        given: dict[str, Any] = dict(changes)  # checked here too: a typo is a ConfigError at run time
        for key, value in given.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(allowed)}"
                raise ConfigError(key, value, "is not a Strategy option", hint)
        return replace(self, **given)

    # ------------------------------------------------------------------ delays

    @property
    def retries(self) -> bool:
        """Whether this strategy ever retries."""
        return self.decision is not Decision.NO_RETRY

    def delay_for(
        self,
        retry: int,
        *,
        retry_after: float | None = None,
        previous: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> float:
        """
        The delay before retry number *retry* (1-based) of this category.

        Args:
            retry: The category's retry number, from 1.
            retry_after: Seconds a server asked to wait, if it did.
            previous: The last delay, for decorrelated jitter.
            rng: A function returning floats in [0, 1), for the jitter.

        Returns:
            Seconds to wait.
        """
        if retry_after is not None and self.honor_retry_after:
            spread = 0.0 if self.jitter is Jitter.NONE else retry_after * _RETRY_AFTER_SPREAD
            return max(retry_after + spread * rng(), self.min_delay)
        if self.decision is Decision.RETRY_IMMEDIATELY or self.decision is Decision.NO_RETRY:
            return self.min_delay
        capped = self.nominal(retry)
        jitter = self.jitter
        if jitter is Jitter.FULL:
            value = capped * rng()
        elif jitter is Jitter.EQUAL:
            value = capped / 2 + capped / 2 * rng()
        elif jitter is Jitter.DECORRELATED:
            low = self.base_delay
            high = min(self.max_delay, 3 * (previous if previous else self.base_delay))
            value = low + (max(high, low) - low) * rng()
        else:
            value = capped
        return max(value, self.min_delay)

    def nominal(self, retry: int) -> float:
        """The delay before jitter: ``min(max_delay, base_delay * backoff_factor ** (retry-1))``."""
        if self.decision is Decision.RETRY_IMMEDIATELY or self.base_delay == 0:
            return 0.0
        exponent = retry - 1
        if self.backoff_factor > 1 and exponent * math.log(self.backoff_factor) > math.log(
            self.max_delay / self.base_delay
        ):
            return self.max_delay  # no float overflow for huge retry numbers
        return min(self.max_delay, self.base_delay * self.backoff_factor**exponent)

    def delay_range(self, retry: int) -> tuple[float, float]:
        """The smallest and largest delay retry number *retry* can have (no Retry-After)."""
        nominal = self.nominal(retry)
        if self.decision in (Decision.RETRY_IMMEDIATELY, Decision.NO_RETRY):
            low = high = 0.0
        elif self.jitter is Jitter.FULL:
            low, high = 0.0, nominal
        elif self.jitter is Jitter.EQUAL:
            low, high = nominal / 2, nominal
        elif self.jitter is Jitter.DECORRELATED:
            low = self.base_delay
            high = self.max_delay if retry > 1 else min(self.max_delay, 3 * self.base_delay)
        else:
            low = high = nominal
        return max(low, self.min_delay), max(high, self.min_delay)


def _checked(init: Callable[..., None]) -> Callable[..., None]:
    """``Strategy(...)`` with a keyword it does not take, or an option given twice: a ConfigError."""
    names = [f.name for f in fields(Strategy)]

    @functools.wraps(init)
    def __init__(self: Strategy, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise ConfigError(
                "args",
                args,
                f"Strategy takes at most {len(names)} options by position",
                "pass them by keyword",
            )
        for key, value in kwargs.items():
            if key in names[: len(args)]:
                raise ConfigError(
                    key, value, "is given twice (by position and by keyword)", f"pass {key} once"
                )
        _options("Strategy", kwargs, names, {})
        init(self, *args, **kwargs)

    return __init__


setattr(Strategy, "__init__", _checked(Strategy.__init__))  # noqa: B010 - a dataclass's own __init__
