"""
Retry budgets: how many retries a downstream (a service, an endpoint, a tenant) may receive.

A budget is keyed by a name, so one budget covers every operation that calls that downstream,
and it is charged when a retry is *decided* (a retry waiting in its backoff already counts: the
Envoy #30205 pitfall). Three shapes, after the anchors in peers-resilience.md:

- ``ratio`` (Finagle/Linkerd): retries within ``window`` seconds may be at most ``ratio`` of the
  calls made in it, plus ``min_per_second`` x ``window`` retries that are always allowed.
- ``quota`` (AWS SDK standard mode): a bucket of ``capacity`` tokens; a retry costs its
  category's cost (timeouts and connection errors 10, others 5), a first-try success refunds 1,
  a success after retries refunds what its last retry cost.
- ``adaptive`` (Google SRE client-side throttling): a retry is refused with probability
  ``max(0, (requests - k * accepts) / (requests + 1))`` over the last ``window`` seconds.

Data and permanent failures never charge a budget. The state lives in a store: this process's
memory (the default) or Redis (``retrykit.overload.RedisOverloadStore``), shared by a fleet.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ._classify import ErrorCategory
from ._errors import ConfigError, from_setting, seconds
from ._verdict import CategoryCosts

SHAPES = ("ratio", "quota", "adaptive")
NEVER_CHARGED = frozenset({ErrorCategory.DATA_ERROR, ErrorCategory.PERMANENT_ERROR})
DEFAULT_COSTS: Mapping[ErrorCategory, int] = {
    ErrorCategory.NETWORK_ERROR: 10,
    ErrorCategory.API_RATE_LIMIT: 5,
    ErrorCategory.SYSTEM_ERROR: 5,
    ErrorCategory.TEMPORARY_ERROR: 5,
}
SLOTS = 10
"""Rolling windows are kept in this many buckets."""
RETRY_SLOTS = SLOTS + 1
"""A ratio budget remembers its retries one bucket longer than its calls: a retry is then
counted for at least a whole window, and a call's credit for at most one, so retries within any
``window`` seconds stay <= ratio x the calls within them + the floor (a window of buckets
otherwise forgets a retry made early in its oldest bucket up to a bucket too soon, and an
outage right after busy traffic got the credits of the calls before it twice)."""


class BudgetStore(Protocol):
    """Where budget state lives: ``MemoryOverloadStore`` or ``RedisOverloadStore``."""

    def deposit(self, budget: RetryBudget, requests: int, accepts: int, refund: int) -> None:
        """Count *requests* and *accepts* for *budget*, and give *refund* tokens back."""
        ...

    def withdraw(self, budget: RetryBudget, cost: int, roll: float) -> bool:
        """Whether *budget* allows a retry costing *cost* now (and charges it if so)."""
        ...

    def budget_state(self, budget: RetryBudget) -> dict[str, Any]:
        """*budget*'s state now, as ``RetryBudget.state()`` shows it."""
        ...


def _number(argument: str, value: Any, *, minimum: float = 0.0, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(argument, value, "must be a number", f"pass e.g. {argument}=0.1")
    if value < minimum or (positive and value <= 0) or math.isinf(value):
        bound = "greater than 0" if positive else f"{minimum:g} or more"
        raise ConfigError(argument, value, f"must be finite and {bound}", f"pass {argument} {bound}")
    return float(value)


class RetryBudget:
    """
    A retry budget for the downstream named *key*; pass it as ``Policy(budget=...)``.

    Three shapes: ``RetryBudget(key, ratio=0.1)`` lets retries be at most *ratio* of the calls
    in *window* plus *min_per_second* (Finagle, Linkerd); ``RetryBudget.quota(key)`` spends tokens
    per retry and refunds them on success (AWS SDKs); ``RetryBudget.adaptive(key)`` refuses
    retries with the probability of client-side throttling (Google SRE). A retry is charged when
    it is decided; a refused one gives up with ``StopReason.BUDGET_EXHAUSTED``. Budgets with the
    same key and store share one state.

    Args:
        key: The downstream it protects (a service, an endpoint, a tenant).
        shape: ``"ratio"``, ``"quota"`` or ``"adaptive"``; the class methods set it for you.
        ratio: Ratio shape: retries allowed per call made in *window*.
        min_per_second: Ratio shape: a floor of retries per second, so that a quiet service can
            still retry.
        window: Seconds remembered: 10 for the ratio shape, 120 for the adaptive shape.
        capacity: Quota shape: the tokens in the bucket.
        costs: Quota shape: tokens each category's retry costs (network 10; rate limit, system
            and temporary 5 by default); data and permanent failures never count.
        k: Adaptive shape: the multiplier K of client-side throttling: a retry is refused with
            probability ``max(0, (requests - k * accepted) / (requests + 1))``.
        store: Where the state lives: the process (default) or a
            ``retrykit.overload.RedisOverloadStore`` shared by a fleet.
        clock: A monotonic clock in seconds, for simulations and tests. Default: the real one.
        rng: Adaptive shape: a function returning floats in [0, 1), for simulations and tests.

    Raises:
        ConfigError: An unknown shape or a value out of range, naming the argument and the fix.
    """

    __slots__ = (
        "capacity",
        "clock",
        "costs",
        "k",
        "key",
        "min_per_second",
        "ratio",
        "rng",
        "shape",
        "store",
        "window",
    )

    def __init__(
        self,
        key: str,
        *,
        shape: str = "ratio",
        ratio: float = 0.1,
        min_per_second: float = 10.0,
        window: float | None = None,
        capacity: int = 500,
        costs: CategoryCosts | None = None,
        k: float = 2.0,
        store: Any = None,
        clock: Callable[[], float] | None = None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise ConfigError(
                "key", key, "must be a non-empty str", "name the downstream, e.g. 'payments-api'"
            )
        if shape not in SHAPES:
            raise ConfigError("shape", shape, "is not a budget shape", f"use one of: {', '.join(SHAPES)}")
        self.key: str = key
        self.shape = shape
        self.ratio: float = _number("ratio", ratio)
        self.min_per_second: float = _number("min_per_second", min_per_second)
        default_window = 120.0 if shape == "adaptive" else 10.0
        self.window: float = seconds("window", default_window if window is None else window, positive=True)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ConfigError("capacity", capacity, "must be a whole number >= 1", "pass e.g. capacity=500")
        self.capacity: int = capacity
        merged = dict(DEFAULT_COSTS)
        for category, cost in (costs or {}).items():
            parsed = ErrorCategory.parse(category, "costs")
            if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
                raise ConfigError(
                    f"costs[{parsed.value!r}]", cost, "must be a whole number >= 0", "pass e.g. 5"
                )
            merged[parsed] = cost
        self.costs: Mapping[ErrorCategory, int] = merged
        self.k: float = _number("k", k, minimum=1.0)
        self.store: BudgetStore | None = store
        self.clock: Callable[[], float] = clock or time.monotonic
        self.rng: Callable[[], float] = rng or random.random

    # ------------------------------------------------------------------ the three shapes

    @classmethod
    def quota(
        cls, key: str, capacity: int = 500, *, costs: CategoryCosts | None = None, **kw: Any
    ) -> RetryBudget:
        """AWS's shape: *capacity* tokens, a cost per category, refunds on success."""
        return cls(key, shape="quota", capacity=capacity, costs=costs, **kw)

    @classmethod
    def adaptive(cls, key: str, k: float = 2.0, *, window: float = 120.0, **kw: Any) -> RetryBudget:
        """SRE client-side throttling: refuse with probability max(0, (req - k*acc) / (req + 1))."""
        return cls(key, shape="adaptive", k=k, window=window, **kw)

    @classmethod
    def parse(cls, value: Any, argument: str = "budget") -> RetryBudget | None:
        """A budget from a ``RetryBudget``, a key (default settings) or a mapping of settings."""
        return from_setting(cls, value, argument, "RetryBudget('payments', ratio=0.1)")

    # ------------------------------------------------------------------ use

    def reserve(self) -> float:
        """The ratio shape's retries always allowed per window."""
        return float(self.min_per_second * self.window)

    def cost(self, category: ErrorCategory) -> int:
        """What a retry of *category* costs (quota shape; 1 for the others)."""
        return self.costs.get(category, 5) if self.shape == "quota" else 1

    def _store(self) -> Any:
        store = self.store
        return store if store is not None else default_store()

    def admitted(self) -> None:
        """A call's first attempt starts (ratio: a deposit; adaptive: a request)."""
        if self.shape != "quota":
            self._store().deposit(self, 1, 0, 0)

    def succeeded(self, refund: int | None) -> None:
        """An attempt succeeded; *refund* is what the call's last retry cost (None: no retry)."""
        if self.shape == "quota":
            self._store().deposit(self, 0, 0, 1 if refund is None else refund)
        elif self.shape == "adaptive":
            self._store().deposit(self, 0, 1, 0)

    def withdraw(self, category: ErrorCategory) -> int | None:
        """Charge a retry of *category*: its cost, 0 if it is never charged, None if refused."""
        if category in NEVER_CHARGED:
            return 0
        cost = self.cost(category)
        return cost if self._store().withdraw(self, cost, self.rng()) else None

    def state(self) -> dict[str, Any]:
        """The budget's state now (balance, spent, refused), from its store."""
        return {"key": self.key, "shape": self.shape, **self._store().budget_state(self)}

    def describe(self) -> str:
        """One line for ``retrykit explain``."""
        if self.shape == "ratio":
            return (
                f"ratio budget {self.key!r}: retries <= {self.ratio:.0%} of calls per {self.window:g}s "
                f"+ {self.min_per_second:g}/s"
            )
        if self.shape == "quota":
            costs = ", ".join(f"{c.value} {n}" for c, n in self.costs.items())
            return (
                f"quota budget {self.key!r}: {self.capacity} tokens; a retry costs {costs}; "
                "refunds on success"
            )
        return (
            f"adaptive budget {self.key!r}: refuse with p = max(0, (requests - {self.k:g}*accepts)"
            f"/(requests+1)) over {self.window:g}s"
        )

    def __repr__(self) -> str:
        return f"<RetryBudget {self.shape} {self.key!r}>"


# --------------------------------------------------------------------------- local state


class Slots:
    """Counts of a few kinds in rolling buckets (``SLOTS`` per window)."""

    __slots__ = ("counts", "width")

    def __init__(self, window: float) -> None:
        self.width: float = window / SLOTS
        self.counts: dict[int, list[float]] = {}

    def add(self, now: float, index: int, amount: float) -> None:
        """Add *amount* to count *index* in the bucket of *now*; buckets out of reach are dropped."""
        slot = int(now // self.width)
        row = self.counts.get(slot)
        if row is None:
            row = self.counts[slot] = [0.0, 0.0]
            for old in [s for s in self.counts if s <= slot - RETRY_SLOTS]:
                del self.counts[old]
        row[index] += amount

    def sums(self, now: float, longer: bool = False) -> tuple[float, float]:
        """The counts of the last ``SLOTS`` buckets (*longer*: the second over ``RETRY_SLOTS``)."""
        low = int(now // self.width) - SLOTS
        a = b = 0.0
        for slot, row in self.counts.items():
            if slot > low:
                a += row[0]
                b += row[1]
            elif longer and slot == low:
                b += row[1]
        return a, b

    def clear(self) -> None:
        """Forget every count."""
        self.counts.clear()


class BudgetState:
    """One budget's state in this process (the in-memory store, and Redis's local fallback)."""

    __slots__ = ("budget", "lock", "refused", "share", "slots", "spent", "tokens")

    def __init__(self, budget: RetryBudget) -> None:
        self.budget: RetryBudget = budget
        self.slots: Slots = Slots(budget.window)  # ratio: (calls, retries); adaptive: (requests, accepts)
        self.tokens: float = float(budget.capacity)
        self.spent: int = 0
        self.refused: int = 0
        self.share: float = 1.0
        """This process's part of the budget's floor (ratio) or capacity (quota): 1 for a budget
        of its own; 1/N as Redis's local fallback in a fleet of N processes."""
        self.lock: threading.Lock = threading.Lock()

    def set_share(self, share: float) -> None:
        """Take *share* of the floor and of the tokens (what is above the new capacity goes)."""
        with self.lock:
            self.share = share
            self.tokens = min(self.tokens, self.budget.capacity * share)

    def reserve(self) -> float:
        """This process's part of the ratio shape's floor."""
        return self.budget.reserve() * self.share

    def deposit(self, now: float, requests: int, accepts: int, refund: int) -> None:
        """Count *requests* and *accepts* at *now*, and give *refund* tokens back (quota)."""
        with self.lock:
            if requests:
                self.slots.add(now, 0, requests)
            if accepts:
                self.slots.add(now, 1, accepts)
            if refund:
                self.tokens = min(self.budget.capacity * self.share, self.tokens + refund)

    def withdraw(self, now: float, cost: int, roll: float) -> bool:
        """Whether a retry costing *cost* may go now (*roll*: a random draw, adaptive shape)."""
        budget = self.budget
        with self.lock:
            if budget.shape == "ratio":
                calls, retries = self.slots.sums(now, longer=True)
                allowed = retries + 1 <= self.reserve() + budget.ratio * calls
                if allowed:
                    self.slots.add(now, 1, 1)
            elif budget.shape == "quota":
                allowed = self.tokens >= cost
                if allowed:
                    self.tokens -= cost
            else:
                requests, accepts = self.slots.sums(now)
                allowed = roll >= max(0.0, (requests - budget.k * accepts) / (requests + 1))
                if allowed:
                    self.slots.add(now, 0, 1)  # the retry is a request too
            if allowed:
                self.spent += 1
            else:
                self.refused += 1
            return allowed

    def charge(self, now: float, cost: int) -> None:
        """Record a retry another store allowed (Redis), so a fallback starts from the truth."""
        with self.lock:
            if self.budget.shape == "ratio":
                self.slots.add(now, 1, 1)
            elif self.budget.shape == "quota":
                self.tokens = max(0.0, self.tokens - cost)
            else:
                self.slots.add(now, 0, 1)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The state now: spent, refused and the shape's own figures (balance, counts)."""
        budget = self.budget
        with self.lock:
            a, b = self.slots.sums(now, longer=budget.shape == "ratio")
            out: dict[str, Any] = {"spent": self.spent, "refused": self.refused}
            if self.share != 1.0:
                out["share"] = self.share
            if budget.shape == "ratio":
                out.update(calls=a, retries=b, balance=self.reserve() + budget.ratio * a - b)
            elif budget.shape == "quota":
                out.update(balance=self.tokens)
            else:
                out.update(requests=a, accepts=b, reject_probability=max(0.0, (a - budget.k * b) / (a + 1)))
            return out


class MemoryOverloadStore:
    """
    Budget and breaker state in this process, by key: the default store.

    Budgets and breakers built without ``store=`` share ``default_store()``.
    """

    def __init__(self) -> None:
        self.budgets: dict[tuple[str, str], BudgetState] = {}
        self.breakers: dict[str, Any] = {}
        self.lock: threading.Lock = threading.Lock()

    def budget(self, budget: RetryBudget) -> BudgetState:
        """The state of *budget*'s key (created with this budget's settings on first use)."""
        found = self.budgets.get((budget.shape, budget.key))
        if found is None:
            with self.lock:
                found = self.budgets.setdefault((budget.shape, budget.key), BudgetState(budget))
        return found

    def deposit(self, budget: RetryBudget, requests: int, accepts: int, refund: int) -> None:
        """Count *requests* and *accepts* for *budget*, and give *refund* tokens back."""
        self.budget(budget).deposit(budget.clock(), requests, accepts, refund)

    def withdraw(self, budget: RetryBudget, cost: int, roll: float) -> bool:
        """Whether *budget* allows a retry costing *cost* now (and charges it if so)."""
        return self.budget(budget).withdraw(budget.clock(), cost, roll)

    def budget_state(self, budget: RetryBudget) -> dict[str, Any]:
        """*budget*'s state now, as ``RetryBudget.state()`` shows it."""
        return {"store": "memory", **self.budget(budget).snapshot(budget.clock())}

    def breaker(self, breaker: Any) -> Any:
        """The state of *breaker*'s key (created on first use)."""
        found = self.breakers.get(breaker.key)
        if found is None:
            from ._breaker import BreakerState

            with self.lock:
                found = self.breakers.setdefault(breaker.key, BreakerState(breaker))
        return found

    def allow(self, breaker: Any) -> float:
        """0 when *breaker* lets a call through now, else the seconds until it may."""
        return float(self.breaker(breaker).allow(breaker.clock()))

    def record(self, breaker: Any, successes: int, failures: int) -> None:
        """Count *successes* and *failures* of calls through *breaker*."""
        self.breaker(breaker).record(breaker.clock(), successes, failures)

    def peek(self, breaker: Any) -> float:
        """As ``allow``, without taking a probe's place."""
        return float(self.breaker(breaker).peek(breaker.clock()))

    def breaker_state(self, breaker: Any) -> dict[str, Any]:
        """*breaker*'s state now, as ``CircuitBreaker.state()`` shows it."""
        return {"store": "memory", **self.breaker(breaker).snapshot(breaker.clock())}


_default = MemoryOverloadStore()


def default_store() -> MemoryOverloadStore:
    """
    The process's in-memory store, which budgets and breakers built without ``store=`` use.

    Returns:
        The store.
    """
    return _default


def reset_default_store() -> None:
    """Forget every in-memory budget and breaker state (tests)."""
    global _default
    _default = MemoryOverloadStore()
