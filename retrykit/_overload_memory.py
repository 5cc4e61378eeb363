"""
Budget and breaker state in this process: the in-memory overload store (the default), also
Redis's local fallback. Below both ``_budget`` and ``_breaker``, which use its default store and
its rolling windows, and it imports neither: it only keeps the state they describe.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker
    from ._budget import RetryBudget

SLOTS = 10
"""Rolling windows are kept in this many buckets."""
RETRY_SLOTS = SLOTS + 1
"""A ratio budget remembers its retries one bucket longer than its calls: a retry is then
counted for at least a whole window, and a call's credit for at most one, so retries within any
``window`` seconds stay <= ratio x the calls within them + the floor (a window of buckets
otherwise forgets a retry made early in its oldest bucket up to a bucket too soon, and an
outage right after busy traffic got the credits of the calls before it twice)."""
CLOSED, OPEN, HALF_OPEN = 0, 1, 2
STATE_NAMES = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}
"""A breaker's states, as its in-memory and Redis state keep them."""


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


class BreakerState:
    """One breaker's state in this process (the in-memory store, and Redis's local fallback)."""

    __slots__ = ("breaker", "lock", "probes_left", "rejected", "slots", "state", "until")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker: CircuitBreaker = breaker
        self.slots: Slots = Slots(breaker.window)  # (successes, failures)
        self.state: int = CLOSED
        self.until: float = 0.0
        self.probes_left: int = 0
        self.rejected: int = 0
        self.lock: threading.Lock = threading.Lock()

    def allow(self, now: float) -> float:
        """0.0 if a call may go ahead at *now* (taking a probe when half-open), else the seconds left open."""
        breaker = self.breaker
        with self.lock:
            if self.state == CLOSED:
                return 0.0
            if now >= self.until:  # open period over, or the probes never reported: new probes
                self.state = HALF_OPEN
                self.until = now + breaker.open_for
                self.probes_left = breaker.probes
            if self.state == HALF_OPEN and self.probes_left > 0:
                self.probes_left -= 1
                return 0.0
            self.rejected += 1
            return max(self.until - now, 1e-3)

    def peek(self, now: float) -> float:
        """Seconds the breaker stays open (0: closed, or probes may start); takes nothing."""
        return max(0.0, self.until - now) if self.state == OPEN else 0.0

    def record(self, now: float, successes: int, failures: int) -> None:
        """Count *successes* and *failures* at *now*: open past the ratio, close or reopen when half-open."""
        breaker = self.breaker
        with self.lock:
            if self.state == OPEN:
                return  # late outcomes of calls started before it opened
            if self.state == HALF_OPEN:
                if failures:
                    self.state, self.until = OPEN, now + breaker.open_for
                elif successes:
                    self.state = CLOSED
                    self.slots.clear()
                return
            if successes:
                self.slots.add(now, 0, successes)
            if failures:
                self.slots.add(now, 1, failures)
                ok, failed = self.slots.sums(now)
                total = ok + failed
                if total >= breaker.min_throughput and failed / total >= breaker.failure_ratio:
                    self.state, self.until = OPEN, now + breaker.open_for
                    self.slots.clear()

    def snapshot(self, now: float) -> dict[str, Any]:
        """The state now: its name, the seconds left open, the window's counts, calls refused."""
        with self.lock:
            ok, failed = self.slots.sums(now)
            state = self.state
            remaining = max(0.0, self.until - now) if state != CLOSED else 0.0
            return {
                "state": STATE_NAMES[state],
                "remaining": remaining,
                "successes": ok,
                "failures": failed,
                "rejected": self.rejected,
            }


class MemoryOverloadStore:
    """Budget and breaker state in this process, by key (the embedded default)."""

    def __init__(self) -> None:
        self.budgets: dict[tuple[str, str], BudgetState] = {}
        self.breakers: dict[str, BreakerState] = {}
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

    def breaker(self, breaker: CircuitBreaker) -> BreakerState:
        """The state of *breaker*'s key (created on first use)."""
        found = self.breakers.get(breaker.key)
        if found is None:
            with self.lock:
                found = self.breakers.setdefault(breaker.key, BreakerState(breaker))
        return found

    def allow(self, breaker: CircuitBreaker) -> float:
        """0 when *breaker* lets a call through now, else the seconds until it may."""
        return float(self.breaker(breaker).allow(breaker.clock()))

    def record(self, breaker: CircuitBreaker, successes: int, failures: int) -> None:
        """Count *successes* and *failures* of calls through *breaker*."""
        self.breaker(breaker).record(breaker.clock(), successes, failures)

    def peek(self, breaker: CircuitBreaker) -> float:
        """As ``allow``, without taking a probe's place."""
        return float(self.breaker(breaker).peek(breaker.clock()))

    def breaker_state(self, breaker: CircuitBreaker) -> dict[str, Any]:
        """*breaker*'s state now, as ``CircuitBreaker.state()`` shows it."""
        return {"store": "memory", **self.breaker(breaker).snapshot(breaker.clock())}


_default = MemoryOverloadStore()


def default_store() -> MemoryOverloadStore:
    """The process's in-memory store (budgets and breakers built without ``store=``)."""
    return _default


def reset_default_store() -> None:
    """Forget every in-memory budget and breaker state (tests)."""
    global _default
    _default = MemoryOverloadStore()
