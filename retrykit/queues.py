"""
The driver for task queues: a retrying call whose attempts are separate deliveries of a message.

``retrykit.driver`` runs every attempt of a call in one process; a task queue (Celery, and any
other) runs each attempt as a delivery of its own, and the wait between two lives in the broker.
What the call has counted travels with the message as a ``RunState``; each delivery resumes the
call from it, hands the attempt's outcome over and gets back the same ``Step`` as the driver's::

    state = RunState(attempt=retries + 1, started=..., counts=..., previous=..., last=...)
    with owned("my-queue-task"):             # retrykit layers in the body make one attempt
        try:
            result = body()
        except Exception as exc:
            delivery = resume(policy, operation=name, state=state)
            step = delivery.failed(exc)
            if step.action is not Action.RETRY:
                raise
            publish_again(countdown=step.delay, header=delivery.state())  # the broker waits
        else:
            resume(policy, operation=name, state=state).succeeded()

It classifies, decides, emits the events, runs the callbacks, counts statistics and charges
budgets and breakers exactly as ``retrykit.driver`` does; what differs is only where the call's
state lives between attempts.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

from . import _config, _scope
from ._categories import Classification, ErrorCategory
from ._decision import Action, Verdict, classify_outcome
from ._logging import context_fields
from ._loop import Call
from ._overload import refused
from ._policy import Policy
from ._redis import check_url
from ._strategy import LONGEST_DELAY, Strategy
from .driver import Step

__all__ = [
    "LONGEST_DELAY",
    "Delivery",
    "RunState",
    "admit",
    "check_redis_url",
    "log_event",
    "owned",
    "resume",
]

_log = logging.getLogger("retrykit")


class RunState(NamedTuple):
    """What a call has counted so far, as it travels with the message between deliveries."""

    attempt: int = 1
    """The number of the attempt this delivery runs (1, 2, ...)."""
    started: float | None = None
    """The Unix time the call's first attempt started (None: now)."""
    counts: Mapping[ErrorCategory, int] = {}
    """Failures retried so far, per category."""
    previous: Mapping[ErrorCategory, float] = {}
    """The last delay waited, per category (decorrelated jitter grows from it)."""
    last: ErrorCategory | None = None
    """The category of the last failure (events' ``after``)."""


_FIRST = RunState()


class _QueuedCall(Call):
    """A delivery's call: a retry the body asked for may be *forced*, and wait a *requested* delay."""

    __slots__ = ("forced", "requested")

    def __init__(self, policy: Policy, operation: str, start: float, scope: _scope.Scope | None) -> None:
        super().__init__(policy, operation, start, scope)
        self.requested: float | None = None
        self.forced = False

    def decide_outcome(
        self, outcome: Any, failed: bool, now: float, found: tuple[Classification | None, bool] | None
    ) -> Verdict:
        if self.forced:
            found = (classify_outcome(self, outcome, failed) if found is None else found)[0], True
        verdict = super().decide_outcome(outcome, failed, now, found)
        if self.requested is not None and verdict.action == Action.RETRY:
            verdict.delay = self.requested
        return verdict


_held: dict[int, tuple[Policy, Policy]] = {}


def _holding(policy: Policy) -> Policy:
    """*policy* whose guard holds retries while its breaker is open (cached per policy)."""
    guard = policy.guard
    if guard is None or guard.breaker is None:
        return policy
    found = _held.get(id(policy))
    if found is None or found[0] is not policy:
        held = copy.copy(policy)
        object.__setattr__(held, "guard", guard.holding())
        if len(_held) > 256:  # policies rebuilt by configuration changes: forget the old ones
            _held.clear()
        found = _held[id(policy)] = (policy, held)
    return found[1]


class Delivery:
    """
    One delivery of a call's message: its attempt's outcome, and what the next delivery resumes.
    Made by ``resume()``.

    Args:
        policy: The policy in force.
        operation: The call's name in events, logs and statistics.
        state: What earlier deliveries counted.
        expires: The Unix time after which the message expires (None: never).
    """

    __slots__ = ("_call", "_expires", "_state", "operation", "policy")

    def __init__(self, policy: Policy, operation: str, state: RunState, expires: float | None) -> None:
        self.policy: Policy = policy
        """The policy in force (with ``hold_while_open``: its guard holds retries while open)."""
        self.operation: str = operation
        """The call's name in events, logs and statistics."""
        self._state = state
        self._expires = expires
        self._call: _QueuedCall | None = None

    def _resumed(self) -> _QueuedCall:
        call = self._call
        if call is not None:
            return call
        state = self._state
        now, wall = _scope.now(), time.time()
        started = wall if state.started is None else state.started
        expires = self._expires
        # a delivery's call is the outermost layer, whatever scope its caller is in
        scope = _scope.Scope(None, None if expires is None else now + max(0.0, expires - wall), None)
        call = self._call = _QueuedCall(self.policy, self.operation, now - (wall - started), scope)
        call.attempt = state.attempt
        call.counts = dict(state.counts)
        call.previous = dict(state.previous)
        if state.last is not None:
            call.verdict = Verdict(Action.RETRY, None, state.last)
        return call

    def failed(
        self,
        exc: BaseException,
        *,
        classification: Classification | None = None,
        forced: bool = False,
        delay: float | None = None,
    ) -> Step:
        """
        The attempt raised *exc*: retry after ``step.delay`` (publish the message again), or not.

        Args:
            exc: What the attempt raised.
            classification: Its classification when the adapter knows better (a lost worker).
            forced: The body asked for the retry: an outcome the policy would not retry is retried
                under the temporary category's strategy, within the policy's limits.
            delay: The delay the body asked for, in place of the strategy's.
        """
        call = self._resumed()
        call.forced, call.requested = forced, delay
        wait = call.step(exc, True, classification)
        verdict = call.verdict
        if wait is None or verdict is None or verdict.strategy is None:
            return Step(Action.GIVE_UP, 0.0, None if verdict is None else verdict.reason)
        return Step(Action.RETRY, wait, verdict.reason)

    def succeeded(self) -> None:
        """The attempt succeeded: the guard is told; after failures, ``Succeeded`` and ``on_success``."""
        if self._state.attempt > 1:
            self._resumed().succeeded(_scope.now())
            return
        guard = self.policy.guard
        if guard is not None:
            guard.succeeded(None)  # the breaker's success count, the budget's refund

    def state(self) -> RunState:
        """The state the next delivery resumes from, after a retry was decided."""
        call = self._resumed()
        verdict = call.verdict
        return RunState(
            call.attempt + 1,
            time.time() - (_scope.now() - call.start),
            dict(call.counts),
            dict(call.previous),
            None if verdict is None else verdict.category,
        )

    @property
    def strategy(self) -> Strategy | None:
        """The strategy of the last decision (its ``queue`` is where the retry goes), or None."""
        verdict = None if self._call is None else self._call.verdict
        return None if verdict is None else verdict.strategy

    @property
    def pending(self) -> bool:
        """Whether async callbacks returned awaitables, for ``aclose()`` to await."""
        return self._call is not None and bool(self._call.pending)

    async def aclose(self) -> None:
        """Await what async callbacks returned (their errors are logged, never raised)."""
        if self._call is not None:
            await self._call.drain()


def resume(
    policy: Policy,
    *,
    operation: str,
    state: RunState = _FIRST,
    expires: float | None = None,
    hold_while_open: bool = False,
) -> Delivery:
    """
    The call of one delivery, resumed from *state* (what earlier deliveries counted).

    Args:
        policy: The policy in force.
        operation: The call's name in events, logs and statistics (the task's name).
        state: What earlier deliveries counted (the default: the first attempt).
        expires: The Unix time after which the message expires: the call's deadline.
        hold_while_open: A retry the policy's open breaker would stop waits for the breaker's
            remaining open time instead (the broker holds the message), charged to the budget.
    """
    return Delivery(_holding(policy) if hold_while_open else policy, operation, state, expires)


def admit(policy: Policy, *, operation: str, first: bool, hold: bool) -> float:
    """
    Ask *policy*'s breaker before an attempt's body runs (a probe when half-open).

    Args:
        policy: The policy in force.
        operation: The call's name (in the ``CircuitOpen`` note).
        first: The call's first attempt: the retry budget counts it.
        hold: The broker can hold the message: an open breaker returns its remaining open time
            instead of raising.

    Returns:
        0.0: the attempt may run; else the seconds the breaker stays open (with *hold*).

    Raises:
        CircuitOpen: The breaker is open and *hold* is False.
    """
    guard = policy.guard
    if guard is None:
        return 0.0
    breaker = guard.breaker
    if breaker is not None:
        left = breaker.allow()
        if left:
            if not hold:
                raise refused(breaker.key, left, operation, None)
            return left
    if guard.budget is not None and first:
        guard.budget.admitted()
    return 0.0


@contextmanager
def owned(owner: str) -> Iterator[None]:
    """
    The scope of an attempt's body whose retries *owner* (a task queue's adapter) makes: retrykit
    layers inside make one attempt and let the failure through (the one-layer rule).

    Args:
        owner: The adapter's name for the layer that owns the retries (e.g. ``"celery-task"``).
    """
    token = _scope.enter(None, _scope.now(), owner=owner)
    try:
        yield
    finally:
        _scope.leave(token)


def log_event(event: str, fields: Mapping[str, Any]) -> None:
    """
    Log ``retrykit.<event> key=value ...`` as retrykit logs its own events: at the configured
    ``log_level``, with the context fields (a task's id), the fields in ``extra["retrykit"]``.

    Args:
        event: The event's name (``"circuit_open"``).
        fields: Its fields, in the order shown.
    """
    level = _config.settings.log_level
    if not _log.isEnabledFor(level):
        return
    merged = {**fields, **context_fields()}
    text = " ".join(f"{k}={v}" for k, v in merged.items())
    _log.log(level, "retrykit.%s %s", event, text, extra={"retrykit": {"event": event, **merged}})


def check_redis_url(argument: str, url: object) -> str:
    """
    *url* if it is a whole Redis URL (``redis://``, ``rediss://``, ``unix://``), else a
    ``ConfigError`` naming *argument*, the URL (password hidden) and what is wrong with it.

    Args:
        argument: The name of the setting the URL was given as (in the error).
        url: The URL to check.

    Returns:
        The URL, unchanged.
    """
    return check_url(argument, url)
