"""
Overload protection at decision time: a policy's retry budget, circuit breaker and the server's
pushback, in one ``Guard`` the engine consults at four points:

- ``admit``: before a call's first attempt (the breaker may refuse with ``CircuitOpen``; the
  budget counts the call);
- ``settle``: inside the decision, once per failed attempt (the breaker counts the failure; a
  retry is stopped by a "do not retry" pushback, an open breaker, or a refusing budget, which is
  charged right there, before the backoff);
- ``readmit``: before attempts 2, 3, ... (the breaker may have opened meanwhile);
- ``succeeded``: an attempt succeeded (refunds, the breaker's success count).

A policy without a budget and a breaker has no guard (``policy.guard is None``): nothing runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import _events
from ._breaker import CircuitBreaker, CircuitOpen
from ._budget import RetryBudget
from ._categories import attr, header
from ._classify import Classification, ErrorCategory
from ._decision import MARK
from ._events import StopReason
from ._rules_http import headers_of

if TYPE_CHECKING:
    from ._decision import CallState, Verdict

PUSHBACK_HEADER = "grpc-retry-pushback-ms"
_OPEN = Classification(ErrorCategory.SYSTEM_ERROR, "circuit breaker open", None, "circuit_open")


def pushback_of(outcome: Any) -> float | None:
    """
    The server's pushback: ``grpc-retry-pushback-ms`` in the headers or gRPC trailing metadata.

    Args:
        outcome: An exception or a response.

    Returns:
        Seconds to wait; a negative number means do not retry (an unparseable value too);
            ``None`` when the server gave none.
    """
    value = header(headers_of(outcome), PUSHBACK_HEADER)
    if value is None:
        trailing = attr(outcome, "trailing_metadata")
        if callable(trailing):
            with contextlib.suppress(Exception):
                for key, item in trailing() or ():
                    if str(key).lower() == PUSHBACK_HEADER:
                        value = item
                        break
    if value is None:
        return None
    try:
        return int(str(value).strip()) / 1000
    except ValueError:
        return -1.0


class Settled:
    """What the guard settled for one failed attempt (asked again by tenacity's views: answered once)."""

    __slots__ = ("attempt", "cost", "done", "reason")

    def __init__(self, attempt: int) -> None:
        self.attempt: int = attempt
        self.done: bool = False
        """Whether the retry was settled (pushback, breaker, budget) for this attempt."""
        self.reason: StopReason | None = None
        """Why the retry was refused, if it was."""
        self.cost: int = 0
        """What the budget charged for the retry (its refund on a success)."""


class Guard:
    """
    A policy's budget and breaker, as the engine uses them. *hold_while_open*: a retry an open
    breaker would stop waits the breaker's remaining open time instead (a task queue holds it in
    the broker), charged to the budget as any retry.
    """

    __slots__ = ("breaker", "budget", "hold_while_open")

    def __init__(
        self, budget: RetryBudget | None, breaker: CircuitBreaker | None, *, hold_while_open: bool = False
    ) -> None:
        self.budget: RetryBudget | None = budget
        self.breaker: CircuitBreaker | None = breaker
        self.hold_while_open: bool = hold_while_open

    def holding(self) -> Guard:
        """This guard, holding retries while its breaker is open."""
        return Guard(self.budget, self.breaker, hold_while_open=True)

    def admit(self, operation: str, into: Any) -> None:
        """A call's first attempt may start; raises ``CircuitOpen`` if the breaker refuses it."""
        breaker = self.breaker
        if breaker is not None:
            remaining = breaker.allow()
            if remaining:
                raise refused(breaker.key, remaining, operation, into)
        if self.budget is not None:
            self.budget.admitted()

    def readmit(self) -> bool:
        """Attempt 2, 3, ... may start (False: the breaker is open)."""
        breaker = self.breaker
        return breaker is None or not breaker.allow()

    def settle(self, call: CallState, verdict: Verdict, outcome: Any, failed: bool) -> StopReason | None:
        """
        The verdict's stop reason after overload protection, for a failed attempt (a retried
        result too). Counts the failure once per attempt, charges the budget once per retry.
        """
        memo = call.overload
        if memo is None or memo.attempt != call.attempt:
            memo = call.overload = Settled(call.attempt)
            breaker = self.breaker
            if breaker is not None:
                if breaker.counts(verdict.category):
                    breaker.record(0, verdict.requests)  # each request the client inside sent
                else:
                    breaker.record(1, 0)  # the dependency answered (a data error, a refusal)
            budget = self.budget
            if budget is not None and verdict.requests > 1 and verdict.category is not None:
                for _ in range(min(verdict.requests, 100) - 1):  # the client's own retries went out
                    budget.withdraw(verdict.category)
        if verdict.reason is not None:
            return verdict.reason
        if memo.done:
            return memo.reason
        memo.done = True
        memo.reason = reason = self._retry(memo, verdict, outcome)
        return reason

    def _retry(self, memo: Settled, verdict: Verdict, outcome: Any) -> StopReason | None:
        pushback = pushback_of(outcome)
        if pushback is not None:
            if pushback < 0:
                return StopReason.PUSHBACK
            strategy = verdict.strategy
            verdict.delay = min(pushback, strategy.max_delay) if strategy is not None else pushback
        breaker = self.breaker
        if breaker is not None:
            left = breaker.remaining()
            if left > verdict.delay:
                if not self.hold_while_open:
                    return StopReason.CIRCUIT_OPEN
                verdict.delay = left  # held until the breaker lets a probe through
        budget = self.budget
        if budget is not None and verdict.category is not None:
            cost = budget.withdraw(verdict.category)
            if cost is None:
                return StopReason.BUDGET_EXHAUSTED
            memo.cost = cost
        return None

    def succeeded(self, call: CallState | None) -> None:
        """An attempt succeeded (*call* None: the first attempt of a call that never failed)."""
        budget = self.budget
        if budget is not None:
            memo = None if call is None else call.overload
            budget.succeeded(memo.cost if memo is not None and memo.cost else None)
        breaker = self.breaker
        if breaker is not None:
            breaker.record(1, 0)

    def describe(self) -> list[str]:
        """Lines for ``retrykit explain``."""
        return [part.describe() for part in (self.budget, self.breaker) if part is not None]


def refused(key: str, remaining: float, operation: str, into: Any) -> CircuitOpen:
    """The ``CircuitOpen`` for a call refused before its first attempt (marked, noted, reported)."""
    error = CircuitOpen(key, remaining)
    found = error.__dict__
    found["__notes__"] = [f"retrykit: {operation} was not attempted: {error} [circuit_open]"]
    if into is not None:
        found[MARK] = into  # enclosing retrykit layers let it through
    if _events.listening(_events.GaveUp):
        _events.emit(
            _events.GaveUp(operation, 0, "CircuitOpen", _OPEN, StopReason.CIRCUIT_OPEN, 0.0, error=error)
        )
    return error


# --------------------------------------------------------------------------- what is visible


def _where(part: Any) -> tuple[str, Any]:
    """The store a budget or breaker keeps its state in: its kind, and what tells two apart."""
    from ._overload_memory import default_store
    from ._overload_redis import RedisOverloadStore

    store = part.store if part.store is not None else default_store()
    if isinstance(store, RedisOverloadStore):
        return "redis", (store.url, store.prefix)
    return "memory", id(store)


def known_parts(extra: Iterable[Any] = ()) -> list[Any]:
    """
    Every budget and breaker this process has used (in its memory store, and in each of its
    Redis stores), then *extra* ones (a fleet's, read from Redis): one per key and store.
    """
    from ._overload_memory import default_store
    from ._overload_redis import _live_stores

    parts: list[Any] = []
    memory = default_store()
    parts += [state.budget for state in list(memory.budgets.values())]
    parts += [state.breaker for state in list(memory.breakers.values())]
    for store in list(_live_stores):
        parts += [batch.owner for batch in list(store._budgets.values())]
        parts += [batch.owner for batch in list(store._breakers.values())]
    parts += extra
    seen: dict[tuple[Any, ...], Any] = {}
    for part in parts:
        seen.setdefault((getattr(part, "shape", None), part.key, _where(part)), part)
    return list(seen.values())


def readings(parts: Iterable[Any]) -> list[tuple[Any, str, dict[str, Any]]]:
    """Each part with its store's kind and its state now (``{"error": ...}`` if unreadable)."""
    out = []
    for part in parts:
        try:
            state = part.state()
        except Exception as err:  # a report must not fail on a store's bad day
            state = {"key": part.key, "error": type(err).__name__}
        out.append((part, _where(part)[0], state))
    return out


def overload_states(
    extra: Iterable[Any] = (),
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """
    The state of every retry budget and circuit breaker this process has used and of *extra*
    ones, by key (from its memory store, or from Redis for those of a ``RedisOverloadStore``:
    the fleet's figures): budgets, breakers.
    """
    budgets: dict[str, dict[str, Any]] = {}
    breakers: dict[str, dict[str, Any]] = {}
    for part, _, state in readings(known_parts(extra)):
        key = state.pop("key")
        into = budgets if isinstance(part, RetryBudget) else breakers
        name = key
        if name in into:  # the same key with another shape or in another store
            name = f"{key} [{state.get('shape') or state.get('store')}]"
        into[name] = state
    return dict(sorted(budgets.items())), dict(sorted(breakers.items()))


def guard_of(budget: RetryBudget | None, breaker: CircuitBreaker | None) -> Guard | None:
    """The guard for a policy with *budget* and *breaker*; None when it has neither."""
    if budget is None and breaker is None:
        return None
    return Guard(budget, breaker)
