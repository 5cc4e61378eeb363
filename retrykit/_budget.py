"""
Retry budgets: how many retries a downstream (a service, an endpoint, a tenant) may receive.

A budget is keyed by a name, so one budget covers every operation that calls that downstream,
and it is charged when a retry is *decided* (a retry waiting in its backoff already counts: the
Envoy #30205 pitfall). Three shapes, after the systems that use them:

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
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ._categories import CategoryCosts
from ._classify import ErrorCategory
from ._errors import ConfigError, downstream_key, from_setting, seconds
from ._overload_memory import BudgetState, MemoryOverloadStore, default_store, reset_default_store

SHAPES = ("ratio", "quota", "adaptive")
NEVER_CHARGED = frozenset({ErrorCategory.DATA_ERROR, ErrorCategory.PERMANENT_ERROR})
DEFAULT_COSTS: Mapping[ErrorCategory, int] = {
    ErrorCategory.NETWORK_ERROR: 10,
    ErrorCategory.API_RATE_LIMIT: 5,
    ErrorCategory.SYSTEM_ERROR: 5,
    ErrorCategory.TEMPORARY_ERROR: 5,
}


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


def _number(argument: str, value: object, *, minimum: float = 0.0, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(argument, value, "must be a number", f"pass e.g. {argument}=0.1")
    if value < minimum or (positive and value <= 0) or math.isinf(value):
        bound = "greater than 0" if positive else f"{minimum:g} or more"
        raise ConfigError(argument, value, f"must be finite and {bound}", f"pass {argument} {bound}")
    return float(value)


def _costs(costs: CategoryCosts | None) -> dict[ErrorCategory, int]:
    """A quota budget's tokens per category: the default costs, with those given laid over them."""
    merged = dict(DEFAULT_COSTS)
    for category, cost in (costs or {}).items():
        parsed = ErrorCategory.parse(category, "costs")
        if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
            raise ConfigError(f"costs[{parsed.value!r}]", cost, "must be a whole number >= 0", "pass e.g. 5")
        merged[parsed] = cost
    return merged


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
        store: BudgetStore | None = None,
        clock: Callable[[], float] | None = None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.key: str = downstream_key(key)
        if shape not in SHAPES:
            raise ConfigError("shape", shape, "is not a budget shape", f"use one of: {', '.join(SHAPES)}")
        self.shape = shape
        self.ratio: float = _number("ratio", ratio)
        self.min_per_second: float = _number("min_per_second", min_per_second)
        default_window = 120.0 if shape == "adaptive" else 10.0
        self.window: float = seconds("window", default_window if window is None else window, positive=True)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ConfigError("capacity", capacity, "must be a whole number >= 1", "pass e.g. capacity=500")
        self.capacity: int = capacity
        self.costs: Mapping[ErrorCategory, int] = _costs(costs)
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

    def _store(self) -> BudgetStore:
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


__all__ = [  # with the in-memory store's names, importable from here as before
    "DEFAULT_COSTS",
    "NEVER_CHARGED",
    "SHAPES",
    "BudgetState",
    "BudgetStore",
    "MemoryOverloadStore",
    "RetryBudget",
    "default_store",
    "reset_default_store",
]
