"""
The decision: what to do about the outcome of one attempt.

``decide(call, outcome, failed, now)`` reads the policy, the per-call state and the outcome (an
exception *or* a returned value) and returns a ``Verdict``: retry after *d* seconds, give up with
a ``StopReason``, or pass through. It classifies once, and emits nothing and sleeps nothing:
the loop (``_loop``) acts on the verdict, and a policy's tenacity ``retry``, ``wait`` and
``stop`` are views of it. The one thing it changes is shared on purpose: a retry budget or a
circuit breaker the policy names is charged here, at decision time (once per attempt, however
often the views ask), so a retry waiting in its backoff already counts.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

import tenacity

from . import _config, _layers, _scope
from ._classify import UNRECOGNISED, UNRECOGNISED_RETRIES, Classification, ErrorCategory
from ._events import StopReason
from ._results import judge_result
from ._strategy import Decision, Jitter, Strategy

if TYPE_CHECKING:
    from ._overload import Settled
    from ._policy import Policy


class Action(enum.IntEnum):
    """What to do after an attempt (a verdict's action)."""

    RETRY = 1
    """Run another attempt after the verdict's delay."""
    GIVE_UP = 2
    """Stop: the caller gets this attempt's outcome (its exception, or the returned value)."""
    PASS = 3
    """Stop: the outcome is good, or not retrykit's to judge (cancellation, an outer layer's)."""


RETRY = Action.RETRY
GIVE_UP = Action.GIVE_UP
PASS = Action.PASS

RetryCondition: TypeAlias = Callable[[tenacity.RetryCallState], object]
"""A tenacity ``retry`` (``retry_if_result(...)``, ``retry_if_exception_type(...)``, ...)."""
WaitCondition: TypeAlias = Callable[[tenacity.RetryCallState], float]
"""A tenacity ``wait`` (``wait_fixed(1)``, ``wait_exponential(...)``, ...)."""
StopCondition: TypeAlias = Callable[[tenacity.RetryCallState], bool]
"""A tenacity ``stop`` (``stop_after_attempt(3)``, ...)."""

MARK = "__retrykit_gave_up__"
"""Key in an exception's ``__dict__``: the scope a layer gave up into (enclosing layers pass)."""
_RETRY_AFTER_SPREAD = 0.1
_random = random.random

# Reasons that mean "this outcome is not retryable at all" (tenacity's ``retry`` says False),
# as opposed to limits (tenacity's ``stop`` says True).
NOT_RETRYABLE = frozenset({StopReason.NON_RETRYABLE, StopReason.NOT_IDEMPOTENT, StopReason.TESTING_NO_RETRY})

_TRY_AGAIN = Classification(
    ErrorCategory.TEMPORARY_ERROR, "tenacity.TryAgain requested a retry", None, "try_again"
)
_BY_CONDITION = Classification(
    ErrorCategory.TEMPORARY_ERROR, "a tenacity retry condition asked for a retry", None, "retry_condition"
)

# Pass-through predicates registered by adapters (e.g. a task queue's control-flow exceptions),
# and those of them that may accept an instance of a builtin-only class (the loop's fast path
# decides those exceptions without asking the predicates only when there are none).
_passthrough: tuple[Callable[[BaseException], bool], ...] = ()
_passthrough_builtins: tuple[Callable[[BaseException], bool], ...] = ()


def register_passthrough(predicate: Callable[[BaseException], bool], *, builtins: bool = True) -> None:
    """
    Never retry or annotate exceptions *predicate* accepts (adapters register their own).
    *builtins*: False promises that it never accepts an exception whose class and bases are all
    builtins (``ConnectionError``, ``TimeoutError``...), which are then decided without it.
    """
    global _passthrough, _passthrough_builtins
    if predicate not in _passthrough:
        _passthrough = (*_passthrough, predicate)
        if builtins:
            _passthrough_builtins = (*_passthrough_builtins, predicate)


class Verdict:
    """The decision on one attempt's outcome."""

    __slots__ = ("action", "category", "classification", "count", "delay", "reason", "requests", "strategy")

    def __init__(
        self,
        action: Action,
        classification: Classification | None = None,
        category: ErrorCategory | None = None,
        strategy: Strategy | None = None,
        count: int = 0,
        delay: float = 0.0,
    ) -> None:
        self.action: Action = action
        self.classification: Classification | None = classification
        self.category: ErrorCategory | None = category
        self.strategy: Strategy | None = strategy
        self.count: int = count
        self.delay: float = delay
        self.reason: StopReason | None = None
        self.requests: int = 1
        """Requests this attempt sent (more than 1: the client inside the call retried)."""

    @property
    def retryable(self) -> bool:
        """Whether the outcome is retryable at all (tenacity ``retry``), limits aside."""
        return self.action != PASS and self.reason not in NOT_RETRYABLE

    def __repr__(self) -> str:
        name = {RETRY: "retry", GIVE_UP: "give_up", PASS: "pass"}[self.action]
        return f"<Verdict {name} delay={self.delay:.3g} reason={self.reason} category={self.category}>"


PASS_VERDICT = Verdict(PASS)


class Extras:
    """tenacity objects given to ``@retrykit.retry(..., retry=, wait=, stop=)``."""

    __slots__ = ("retry", "stop", "wait")

    def __init__(
        self,
        retry: RetryCondition | None = None,
        wait: WaitCondition | None = None,
        stop: StopCondition | None = None,
    ) -> None:
        self.retry: RetryCondition | None = retry
        self.wait: WaitCondition | None = wait
        self.stop: StopCondition | None = stop


_NO_PREVIOUS: Mapping[ErrorCategory, float] = MappingProxyType({})


class CallState:
    """The per-call state the decision reads; the loop updates it after acting on a verdict."""

    __slots__ = (
        "attempt",
        "deadline",
        "extras",
        "first",
        "first_count",
        "idle",
        "more",
        "operation",
        "overload",
        "policy",
        "previous",
        "round",
        "scope",
        "sent",
        "start",
        "tenacity_state",
    )

    def __init__(self, policy: Policy, operation: str, start: float, scope: _scope.Scope | None) -> None:
        self.policy: Policy = policy
        self.operation: str = operation
        self.start: float = start
        self.attempt: int = 1
        # Retries per category: the first category retried in two slots (a call in flight holds
        # no dict for the usual one category), the others in ``more`` (see ``counts``).
        self.first: ErrorCategory | None = None
        self.first_count: int = 0
        self.more: dict[ErrorCategory, int] | None = None
        self.previous: Mapping[ErrorCategory, float] = _NO_PREVIOUS
        """The last delay per category, kept for decorrelated jitter only (which reads it)."""
        self.idle: float = 0.0
        self.sent: int = 0
        """Requests the attempts before this one sent (the clients' own retries included)."""
        self.round: int = 1
        """The most requests one attempt sent (a client that retries inside: its round)."""
        self.scope: _scope.Scope | None = scope
        self.deadline: float | None = None if scope is None else scope.deadline
        self.extras: Extras | None = None
        self.tenacity_state: tenacity.RetryCallState | None = None
        """The whole call as tenacity sees it, for composed tenacity objects (built when needed)."""
        self.overload: Settled | None = None
        """What the policy's guard (budget, breaker) settled for the last failed attempt."""

    @property
    def counts(self) -> dict[ErrorCategory, int]:
        """The retries counted so far, per category (a new dict)."""
        counts = {} if self.first is None else {self.first: self.first_count}
        if self.more:
            counts.update(self.more)
        return counts

    @counts.setter
    def counts(self, counts: Mapping[ErrorCategory, int]) -> None:
        self.first, self.first_count, self.more = None, 0, None
        for category, count in counts.items():
            self.set_count(category, count)

    def count_of(self, category: ErrorCategory) -> int:
        """The retries of *category* counted so far."""
        if category is self.first:
            return self.first_count
        more = self.more
        return 0 if more is None else more.get(category, 0)

    def set_count(self, category: ErrorCategory, count: int) -> None:
        """Set the retries of *category* counted so far."""
        first = self.first
        if first is None or category is first:
            self.first, self.first_count = category, count
        elif self.more is None:
            self.more = {category: count}
        else:
            self.more[category] = count

    def commit(self, verdict: Verdict) -> None:
        """Count a retry the loop acted on."""
        category = verdict.category
        assert category is not None
        self.set_count(category, verdict.count)
        strategy = verdict.strategy
        if strategy is not None and strategy.jitter is Jitter.DECORRELATED:
            previous = self.previous
            if previous is _NO_PREVIOUS:
                previous = self.previous = {}
            assert isinstance(previous, dict)
            previous[category] = verdict.delay
        self.idle += verdict.delay
        requests = verdict.requests
        self.sent += requests
        self.round = max(self.round, requests)


# --------------------------------------------------------------------------- the one-layer mark


def _dict_of(exc: object) -> dict[str, Any] | None:
    try:
        found = object.__getattribute__(exc, "__dict__")
    except Exception:
        return None
    return found if isinstance(found, dict) else None


def gave_up_inside(exc: BaseException, scope: _scope.Scope | None) -> bool:
    """
    Whether a layer nested in the call whose scope is *scope* gave up on *exc*, or on the
    exception it was raised from (``__cause__``/``__context__``: code that wraps a given-up error).
    """
    if scope is None:
        return False
    link: BaseException | None = exc
    for _ in range(32):
        if link is None:
            return False
        try:
            found = object.__getattribute__(link, "__dict__")
        except Exception:
            found = None
        marked = found.get(MARK) if isinstance(found, dict) else None
        while marked is not None:
            if marked is scope:
                return True
            marked = marked[0]
        nxt = link.__cause__
        if nxt is None and not link.__suppress_context__:
            nxt = link.__context__
        link = nxt
    return False


def result_given_up_inside(result: Any, scope: _scope.Scope | None) -> bool:
    """Whether a layer nested in the call whose scope is *scope* gave up on this returned value."""
    if scope is None:
        return False
    found = _dict_of(result)
    marked = None if found is None else found.get(MARK)
    while marked is not None:
        if marked is scope:
            return True
        marked = marked[0]
    return False


def passes_through(exc: BaseException) -> bool:
    """Cancellation and other ``BaseException``s, and what an adapter registered: never retried."""
    if not isinstance(exc, Exception):
        return True
    for predicate in _passthrough:
        try:
            if predicate(exc):
                return True
        except Exception:  # pragma: no cover - adapters' predicates are ours and total
            continue
    return False


# --------------------------------------------------------------------------- tenacity views


def tenacity_future(attempt: int, outcome: Any, failed: bool) -> tenacity.Future:
    """A completed ``tenacity.Future`` holding *outcome*."""
    return tenacity.Future.construct(attempt, outcome, failed)


def _category_state(
    call: CallState, count: int, outcome: Any, failed: bool, now: float
) -> tenacity.RetryCallState:
    """The call as a strategy's own tenacity objects see it: attempt number = the category's count."""
    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.start_time = call.start
    state.attempt_number = count
    state.outcome = tenacity_future(count, outcome, failed)
    state.outcome_timestamp = now
    state.idle_for = call.idle
    return state


def whole_state(call: CallState, outcome: Any, failed: bool, now: float) -> tenacity.RetryCallState:
    """The call as tenacity sees it (attempt number = the call's), for the decorator's extras."""
    state = call.tenacity_state
    if state is None:
        state = call.tenacity_state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.start_time = call.start
    state.attempt_number = call.attempt
    state.outcome = tenacity_future(call.attempt, outcome, failed)
    state.outcome_timestamp = now
    state.idle_for = call.idle
    return state


def _number(value: object) -> float | None:
    """*value* as a usable delay, or None if it is not a real number (NaN, a string...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    if math.isnan(number):
        return None
    return max(number, 0.0)


# --------------------------------------------------------------------------- the decision


def classify_outcome(call: CallState, outcome: Any, failed: bool) -> tuple[Classification | None, bool]:
    """
    The classification of an outcome and whether it asks for a retry by itself (``TryAgain``);
    ``(None, False)`` for what retrykit does not judge (a good result, a pass-through).
    """
    policy = call.policy
    if failed:
        if not isinstance(outcome, Exception) or (_passthrough and passes_through(outcome)):
            return None, False
        if gave_up_inside(outcome, call.scope):
            return None, False
        if isinstance(outcome, tenacity.TryAgain):
            return _TRY_AGAIN, True
        classifier = policy.classifier or _config.settings.classifier
        return _layers.attach(classifier.classify(outcome), outcome), False
    judge = policy.classify_result
    if judge is None:
        return None, False
    found = judge_result(judge, outcome)
    return (None if found is None else _layers.attach(found, outcome, failed=False)), False


def decide(
    call: CallState,
    outcome: Any,
    failed: bool,
    now: float,
    *,
    forced: bool = False,
    found: tuple[Classification | None, bool] | None = None,
    conditioned: bool = False,
) -> Verdict:
    """
    Decide about one attempt's *outcome* (an exception if *failed*, else a returned value).

    *forced*: a retry was asked for by something outside the policy (a composed tenacity
    ``retry``); outcomes the policy would not retry are then retried under the temporary
    category's strategy. *found* is a classification already made for this outcome. A tenacity
    ``retry`` given to the decorator (``call.extras``) is asked here too; *conditioned*: it was.
    """
    if not _config.settings.enabled or (call.scope is not None and call.scope.owner is not None):
        return PASS_VERDICT  # switched off, or an enclosing layer (a task) owns the retries
    extras = call.extras
    if not (forced or conditioned) and extras is not None and extras.retry is not None:
        return _by_condition(call, extras.retry, outcome, failed, now, found)
    classification, asked = classify_outcome(call, outcome, failed) if found is None else found
    forced = forced or asked
    if classification is not None and not failed and result_given_up_inside(outcome, call.scope):
        return PASS_VERDICT  # a result an inner layer gave up on: returned as it is (one layer)
    if classification is None:
        if failed or not forced:  # a pass-through exception, or a result nobody asks to retry
            return PASS_VERDICT
        classification = _BY_CONDITION
    return _verdict(call, classification, forced, outcome, failed, now)


def _verdict(
    call: CallState, classification: Classification, forced: bool, outcome: Any, failed: bool, now: float
) -> Verdict:
    """
    The verdict on an outcome retrykit judges: a retry under its category's strategy (the
    temporary category's if *forced* past a no-retry one), unless a limit or the guard gives up.
    """
    policy = call.policy
    category = classification.category
    strategy = policy.strategies[category]
    if forced and strategy.decision is Decision.NO_RETRY:
        category = ErrorCategory.TEMPORARY_ERROR
        strategy = policy.strategies[category]
    count = call.count_of(category) + 1
    verdict = Verdict(RETRY, classification, category, strategy, count)
    if classification.inner is not None:
        verdict.requests = classification.inner.attempts
    verdict.reason = _stop_reason(call, verdict, outcome, failed, now)
    if verdict.reason is None:
        _schedule(call, verdict, outcome, failed, now)
    guard = policy.guard  # overload protection: breaker counts, pushback, budget charged now
    if guard is not None:
        verdict.reason = guard.settle(call, verdict, outcome, failed)
    if verdict.reason is not None:
        verdict.action = GIVE_UP
        verdict.delay = 0.0
    return verdict


def _by_condition(
    call: CallState,
    condition: RetryCondition,
    outcome: Any,
    failed: bool,
    now: float,
    found: tuple[Classification | None, bool] | None,
) -> Verdict:
    """
    The decision under a tenacity ``retry`` given to the decorator: it may ask for a retry the
    policy would not make (forced), or decline one (``RETRY_CONDITION``; a result is then good).
    """
    if found is None:
        found = classify_outcome(call, outcome, failed)
    state = whole_state(call, outcome, failed, now)
    try:
        wants = bool(condition(state))
    except Exception:
        wants = False
    finally:
        state.outcome = None
    verdict = decide(call, outcome, failed, now, forced=True, found=found) if wants else None
    if verdict is not None:
        return verdict
    verdict = decide(call, outcome, failed, now, forced=False, found=found, conditioned=True)
    if verdict.action == PASS:
        return verdict
    if not failed:
        return Verdict(PASS)  # the condition takes the result as good
    if verdict.action == RETRY:
        verdict.action = GIVE_UP
        verdict.reason = StopReason.RETRY_CONDITION
        verdict.delay = 0.0
    return verdict


def _stop_reason(
    call: CallState, verdict: Verdict, outcome: Any, failed: bool, now: float
) -> StopReason | None:
    """The limit (or refusal) that stops before any delay is computed, if one does."""
    policy = call.policy
    strategy = verdict.strategy
    assert strategy is not None
    assert verdict.classification is not None
    if strategy.decision is Decision.NO_RETRY:
        return StopReason.NON_RETRYABLE
    if verdict.classification.replay_unsafe and not policy.idempotent:
        return StopReason.NOT_IDEMPOTENT
    mode = _scope.testing_mode()
    if mode is not None and mode.no_retry:
        return StopReason.TESTING_NO_RETRY
    if strategy.max_retries is not None and verdict.count > strategy.max_retries:
        return StopReason.CATEGORY_EXHAUSTED
    if verdict.classification.rule == UNRECOGNISED and verdict.count > UNRECOGNISED_RETRIES:
        return StopReason.UNRECOGNISED
    if strategy.stop is not None and _truthy(
        strategy.stop, _category_state(call, verdict.count, outcome, failed, now)
    ):
        return StopReason.STRATEGY_STOP
    if policy.max_attempts is not None and call.attempt >= policy.max_attempts:
        return StopReason.MAX_ATTEMPTS
    if verdict.requests > 1 and _inner_round_too_many(call, verdict, strategy):
        return StopReason.INNER_RETRIES
    extras = call.extras
    if extras is not None and extras.stop is not None:
        state = whole_state(call, outcome, failed, now)
        try:
            if _truthy(extras.stop, state):
                return StopReason.STOP_CONDITION
        finally:
            state.outcome = None
    return None


def _inner_round_too_many(call: CallState, verdict: Verdict, strategy: Strategy) -> bool:
    """
    Whether another attempt could send more requests than one layer allows, the client inside
    the call retrying again: ``sent + round > max(round, the policy's attempts)``.
    """
    limit = call.policy.max_attempts
    if limit is None and strategy.max_retries is not None:
        limit = strategy.max_retries + 1
    if limit is None:
        return False  # no limit on attempts (a deadline ends the call)
    round_ = max(call.round, verdict.requests)
    return call.sent + verdict.requests + round_ > max(round_, limit)


def _truthy(condition: Callable[[tenacity.RetryCallState], object], state: tenacity.RetryCallState) -> bool:
    """A tenacity stop's answer; one that raises is taken as "stop" (never retry blindly)."""
    try:
        return bool(condition(state))
    except Exception:
        return True


def _schedule(call: CallState, verdict: Verdict, outcome: Any, failed: bool, now: float) -> None:
    """Set the verdict's delay, or a reason to stop when no acceptable delay exists."""
    strategy = verdict.strategy
    classification = verdict.classification
    assert strategy is not None
    assert classification is not None
    category = verdict.category
    assert category is not None
    extras = call.extras
    delay: float | None
    if extras is not None and extras.wait is not None:
        state = whole_state(call, outcome, failed, now)
        delay = _custom_wait(extras.wait, state)
        state.outcome = None
    elif strategy.wait is not None:
        delay = _custom_wait(strategy.wait, _category_state(call, verdict.count, outcome, failed, now))
    else:
        delay = None
    if delay is None:  # the strategy's own numbers (also the fallback for a broken custom wait)
        delay = strategy.delay_for(verdict.count, previous=call.previous.get(category), rng=_random)
    delay = min(delay, strategy.max_delay)
    hinted = classification.retry_after
    if hinted is not None and not hinted >= 0:  # NaN or negative: no usable hint
        hinted = None
    if hinted is not None and strategy.honor_retry_after:
        if hinted > strategy.max_delay and not call.policy.clamp_retry_after:
            verdict.reason = _deadline_reason(call, hinted, now, True) or StopReason.RETRY_AFTER_TOO_LONG
            return
        hinted = min(hinted, strategy.max_delay)
        spread = 0.0 if strategy.jitter is Jitter.NONE else hinted * _RETRY_AFTER_SPREAD * _random()
        delay = max(min(hinted + spread, strategy.max_delay), hinted, strategy.min_delay)
    if call.deadline is not None:
        verdict.reason = _deadline_reason(call, delay, now, hinted is not None and strategy.honor_retry_after)
    verdict.delay = delay


def _custom_wait(
    wait: Callable[[tenacity.RetryCallState], object], state: tenacity.RetryCallState
) -> float | None:
    """A tenacity wait's delay; None (use the strategy's own) if it raises or is not a number."""
    try:
        value = wait(state)
    except Exception:
        value = None
    finally:
        state.outcome = None
    return _number(value)


def _deadline_reason(call: CallState, delay: float, now: float, hinted: bool) -> StopReason | None:
    deadline = call.deadline
    if deadline is None or now + delay <= deadline:
        return None
    return StopReason.RETRY_AFTER_EXCEEDS_DEADLINE if hinted else StopReason.DEADLINE
