"""
The decision engine behind a policy's tenacity objects and retrykit's own drivers.

For each failed attempt the exception is classified once; the verdict (category, strategy,
per-category count, delay, stop reason) is cached on tenacity's ``RetryCallState`` and read by
``retry``, ``wait`` and ``stop``, in tenacity's own order. Giving up annotates the original
exception (a PEP 678 note) and marks it, so enclosing retrykit layers let it through untouched.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import random
import sys
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import tenacity

from . import _config, _events, _scope
from ._classify import Classification, _chain
from ._events import StopReason
from ._strategy import Decision, Strategy

if TYPE_CHECKING:
    from ._policy import Policy

_log = logging.getLogger("retrykit")
_MARK = "__retrykit_gave_up__"
_CONTROL_FLOW = (
    "Retry",
    "Ignore",
    "Reject",
    "MaxRetriesExceededError",
    "SoftTimeLimitExceeded",
    "TimeLimitExceeded",
    "WorkerLostError",
    "Terminated",
)
_random = random.random


@dataclass(slots=True)
class Verdict:
    """Strictly private: the decision on one failed attempt."""

    error: BaseException | None
    classification: Classification | None = None
    strategy: Strategy | None = None
    count: int = 0
    delay: float = 0.0
    reason: StopReason | None = None
    passthrough: bool = False


@dataclass(slots=True)
class CallRecord:
    """Strictly private: retrykit's per-call state, kept on the ``RetryCallState``."""

    operation: str
    counts: dict[Any, int] = field(default_factory=dict)
    previous: dict[Any, float] = field(default_factory=dict)
    assessed: int = 0
    verdict: Verdict | None = None
    decided: int = 0
    pending: list[Awaitable[Any]] = field(default_factory=list)
    attempt_start: float | None = None
    """When the current attempt began (on ``_scope.now()``'s clock)."""
    max_delay: float | None = None
    """A cap on any single delay (the Celery adapter's broker limit); None: no cap."""


def operation_name(fn: Any) -> str:
    """A stable, argument-free name for logs and statistics."""
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def record_of(state: tenacity.RetryCallState) -> CallRecord:
    """The call record on *state*, created on first use (raw tenacity loops)."""
    record: CallRecord | None = getattr(state, "retrykit", None)
    if record is None:
        name = operation_name(state.fn) if state.fn is not None else str(state.retry_object)
        record = CallRecord(name)
        state.retrykit = record  # type: ignore[attr-defined]
    return record


def is_control_flow(exc: BaseException) -> bool:
    """Celery's control-flow exceptions (Retry, Ignore, Reject, time limits): never retried."""
    if "celery" not in sys.modules and "billiard" not in sys.modules:
        return False
    for cls in type(exc).__mro__:
        if cls.__name__ in _CONTROL_FLOW and cls.__module__.startswith(("celery", "billiard")):
            return True
    return False


def gave_up(exc: BaseException, since: float) -> bool:
    """
    Whether an inner retrykit layer gave up on *exc* (or an exception it came from) at or after
    *since*, the start of the attempt that raised it. Older marks are from earlier calls that
    raised the same instance; they do not count.
    """
    for link in _chain(exc, set()):
        mark = link.__dict__.get(_MARK)
        if mark is not None and mark[3] >= since:
            return True
    return False


def passes_through(exc: BaseException, since: float) -> bool:
    """Failures no layer may retry or annotate: cancellation, control flow, already given up."""
    return not isinstance(exc, Exception) or is_control_flow(exc) or gave_up(exc, since)


def _outcome_error(state: tenacity.RetryCallState) -> BaseException | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    return outcome.exception()


def assess(policy: Policy, state: tenacity.RetryCallState) -> Verdict:
    """Classify the attempt that just failed (once per attempt) and decide about it."""
    record = record_of(state)
    attempt = state.attempt_number
    if record.assessed == attempt and record.verdict is not None:
        return record.verdict
    exc = _outcome_error(state)
    previous = record.verdict.classification if record.verdict is not None else None
    verdict = Verdict(exc)
    since = record.attempt_start if record.attempt_start is not None else state.start_time
    if exc is None or passes_through(exc, since):
        verdict.passthrough = True
    else:
        classifier = policy.classifier or _config.settings.classifier
        classification = classifier.classify(exc)
        category = classification.category
        strategy = policy.strategies[category]
        count = record.counts.get(category, 0) + 1
        record.counts[category] = count
        verdict.classification = classification
        verdict.strategy = strategy
        verdict.count = count
        mode = _scope._TESTING.get()
        scope = _scope._SCOPE.get()
        if scope is not None and scope.owner is not None:
            verdict.passthrough = True  # an enclosing layer (a Celery task) owns the retries
        elif strategy.decision is Decision.NO_RETRY:
            verdict.reason = StopReason.NON_RETRYABLE
        elif mode is not None and mode.no_retry:
            verdict.reason = StopReason.TESTING_NO_RETRY
        elif strategy.max_retries is not None and count > strategy.max_retries:
            verdict.reason = StopReason.CATEGORY_EXHAUSTED
        elif policy.max_attempts is not None and attempt >= policy.max_attempts:
            verdict.reason = StopReason.MAX_ATTEMPTS
        elif strategy.wait is not None:
            verdict.delay = float(strategy.wait(state))
        else:
            verdict.delay = strategy.delay_for(
                count,
                retry_after=classification.retry_after,
                previous=record.previous.get(category),
                rng=_random,
            )
            record.previous[category] = verdict.delay
        if _events.listening():
            _events.emit(
                _events.AttemptFailed(
                    record.operation,
                    attempt,
                    type(exc).__name__,
                    classification,
                    _elapsed(state),
                    previous.category if previous is not None else None,
                )
            )
    record.assessed = attempt
    record.verdict = verdict
    return verdict


def _elapsed(state: tenacity.RetryCallState) -> float:
    end = state.outcome_timestamp if state.outcome_timestamp is not None else _scope.now()
    return max(0.0, end - state.start_time)


def retry(policy: Policy, state: tenacity.RetryCallState) -> bool:
    """tenacity ``retry``: False for successes, pass-throughs and non-retryable failures."""
    if not _config.settings.enabled:
        return False
    verdict = assess(policy, state)
    if verdict.passthrough:
        return False
    if verdict.reason is StopReason.NON_RETRYABLE:
        give_up(policy, state, verdict, StopReason.NON_RETRYABLE)
        return False
    return True


def wait(policy: Policy, state: tenacity.RetryCallState) -> float:
    """tenacity ``wait``: the delay decided for this attempt (capped by ``max_delay`` if set)."""
    delay = assess(policy, state).delay
    cap = record_of(state).max_delay
    return delay if cap is None or delay <= cap else cap


def stop(policy: Policy, state: tenacity.RetryCallState) -> bool:
    """tenacity ``stop``: give up (and say why) or schedule the retry (and say when)."""
    verdict = assess(policy, state)
    record = record_of(state)
    if verdict.passthrough:
        return True
    reason = verdict.reason
    sleep = state.upcoming_sleep
    if reason is None:
        reason = _deadline_reason(policy, state, verdict, sleep)
    strategy = verdict.strategy
    if reason is None and strategy is not None and strategy.stop is not None and strategy.stop(state):
        reason = StopReason.STRATEGY_STOP
    if reason is not None:
        give_up(policy, state, verdict, reason)
        return True
    if record.decided != state.attempt_number:
        record.decided = state.attempt_number
        record.attempt_start = _scope.now()  # raw tenacity: the next attempt starts after this
        assert verdict.classification is not None
        assert verdict.strategy is not None
        event = _events.RetryScheduled(
            record.operation,
            state.attempt_number,
            type(verdict.error).__name__,
            verdict.classification,
            verdict.strategy.decision,
            sleep,
            _elapsed(state),
        )
        _dispatch(policy, record, event, policy.on_retry)
    return False


def _deadline_reason(
    policy: Policy, state: tenacity.RetryCallState, verdict: Verdict, sleep: float
) -> StopReason | None:
    left: float | None = None
    if policy.deadline is not None:
        left = policy.deadline - _elapsed(state)
    scope = _scope._SCOPE.get()
    if scope is not None and scope.deadline is not None:
        outer = scope.deadline - _scope.now()
        left = outer if left is None else min(left, outer)
    if left is None or sleep <= left:
        return None
    classification = verdict.classification
    if (
        classification is not None
        and classification.retry_after is not None
        and (verdict.strategy is None or verdict.strategy.honor_retry_after)
    ):
        return StopReason.RETRY_AFTER_EXCEEDS_DEADLINE
    return StopReason.DEADLINE


_REASON_TEXT = {
    StopReason.NON_RETRYABLE: "{category} is not retried",
    StopReason.CATEGORY_EXHAUSTED: "{category} allows {max_retries} retries",
    StopReason.MAX_ATTEMPTS: "max_attempts={max_attempts} reached",
    StopReason.DEADLINE: "the next wait ({sleep:.3g}s) would pass the deadline",
    StopReason.RETRY_AFTER_EXCEEDS_DEADLINE: (
        "the server's Retry-After ({sleep:.3g}s) would pass the deadline"
    ),
    StopReason.STRATEGY_STOP: "the strategy's stop condition was met",
    StopReason.TESTING_NO_RETRY: "retrykit.testing.no_retry() is active",
}


def give_up(policy: Policy, state: tenacity.RetryCallState, verdict: Verdict, reason: StopReason) -> None:
    """Annotate and mark the original exception, emit ``GaveUp``, call ``on_giveup``."""
    record = record_of(state)
    if record.decided == state.attempt_number:
        return
    record.decided = state.attempt_number
    exc = verdict.error
    classification = verdict.classification
    if exc is None or classification is None:
        return
    strategy = verdict.strategy
    why = _REASON_TEXT[reason].format(
        category=classification.category.value,
        max_retries=strategy.max_retries if strategy else "?",
        max_attempts=policy.max_attempts,
        sleep=state.upcoming_sleep,
    )
    attempts = state.attempt_number
    note = (
        f"retrykit: gave up on {record.operation} after {attempts} "
        f"attempt{'s' if attempts != 1 else ''}: {classification.category.value} "
        f"({classification.reason}); stopped because {why} [{reason.value}]"
    )
    add_note(exc, note)
    with contextlib.suppress(AttributeError, TypeError):  # exceptions without a __dict__
        setattr(exc, _MARK, (record.operation, attempts, reason.value, _scope.now()))
    event = _events.GaveUp(
        record.operation, attempts, type(exc).__name__, classification, reason, _elapsed(state)
    )
    _dispatch(policy, record, event, policy.on_giveup)


def add_note(exc: BaseException, note: str) -> None:
    """PEP 678 ``add_note``, with the same ``__notes__`` list on Python 3.10."""
    add = getattr(exc, "add_note", None)
    if add is not None:
        add(note)
        return
    notes = getattr(exc, "__notes__", None)  # Python 3.10
    if not isinstance(notes, list):
        notes = []
        exc.__notes__ = notes
    notes.append(note)


def succeeded(policy: Policy, record: CallRecord, attempts: int, elapsed: float) -> None:
    """A call succeeded on attempt *attempts* (> 1): emit ``Succeeded``, call ``on_success``."""
    last = record.verdict.classification if record.verdict is not None else None
    event = _events.Succeeded(record.operation, attempts, elapsed, last.category if last else None)
    _dispatch(policy, record, event, policy.on_success)


def first_success(policy: Policy, fn: Any, elapsed: float) -> Any:
    """``on_success`` for a call that succeeded at once (no event: the fast path stays quiet)."""
    callback = policy.on_success
    if callback is None:
        return None
    return _call_callback(callback, _events.Succeeded(operation_name(fn), 1, elapsed))


def _dispatch(policy: Policy, record: CallRecord, event: Any, callback: Any) -> None:
    if _events.listening():
        _events.emit(event)
    if callback is not None:
        result = _call_callback(callback, event)
        if result is not None:
            record.pending.append(result)


def _call_callback(callback: Any, event: Any) -> Any:
    """Call a user callback; its errors are logged, never raised. Returns an awaitable, if any."""
    try:
        result = callback(event)
    except Exception:
        _log.exception("retrykit: callback %r failed on %s", callback, type(event).__name__)
        return None
    return result if inspect.isawaitable(result) else None


async def drain(record: CallRecord) -> None:
    """Await the async callbacks' results; their errors are logged, never raised."""
    while record.pending:
        awaitable = record.pending.pop(0)
        try:
            await awaitable
        except Exception:
            _log.exception("retrykit: async callback failed")


def discard(record: CallRecord) -> None:
    """Close awaitables a sync driver cannot await (async callbacks refused at decoration)."""
    for awaitable in record.pending:
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
    record.pending.clear()


def new_state(fn: Any, args: Any, kwargs: Any, start: float, operation: str) -> tenacity.RetryCallState:
    """A ``RetryCallState`` for retrykit's own drivers, on retrykit's clock."""
    state = tenacity.RetryCallState(None, fn, args, kwargs)  # type: ignore[arg-type]
    state.start_time = start
    state.retrykit = CallRecord(operation)  # type: ignore[attr-defined]
    return state


class Failure:
    """
    A failed attempt's outcome, duck-typing ``tenacity.Future`` (``failed``, ``exception()``,
    ``result()``, ``attempt_number``) without its lock and condition: retrykit's drivers build
    one per failure, where tenacity builds a ``concurrent.futures.Future``.
    """

    __slots__ = ("_exc", "attempt_number")
    failed = True

    def __init__(self, attempt_number: int, exc: BaseException) -> None:
        self.attempt_number = attempt_number
        self._exc = exc

    def exception(self, timeout: float | None = None) -> BaseException:
        return self._exc

    def result(self, timeout: float | None = None) -> Any:
        raise self._exc

    def done(self) -> bool:
        return True


def set_failure(state: tenacity.RetryCallState, exc: BaseException) -> None:
    """Record a failed attempt on *state*, timestamped on retrykit's clock."""
    state.outcome = Failure(state.attempt_number, exc)  # type: ignore[assignment]
    state.outcome_timestamp = _scope.now()


def decide(policy: Policy, state: tenacity.RetryCallState) -> float | None:
    """Run tenacity's pipeline (retry, wait, stop) on a failed attempt: the sleep, or None."""
    if not policy.retry(state):
        return None
    state.upcoming_sleep = sleep = policy.wait(state)
    if policy.stop(state):
        return None
    state.idle_for += sleep
    return sleep
