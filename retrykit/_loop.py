"""
The loop: one attempt -> decide -> act cycle, shared by every driver.

A ``Call`` is a retrying call in progress. After each attempt a driver hands it the outcome
(``call.step(outcome, failed)``); the call asks the decision (``_decision.decide``), then acts on
the verdict: it emits the events, runs the callbacks, counts the retry, annotates and marks the
exception it gives up on, and tells the driver the delay before the next attempt (or ``None``:
the call ends with this outcome). Drivers (plain functions, coroutines, both block forms, a task
queue's task, tenacity's own loop through ``tenacity_hooks``) only run attempts and sleep.

Nothing of a failed attempt is kept past the next attempt's start: ``Call.last`` holds the
outcome only while the driver sleeps, and only when a deadline may still end the call there.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextvars import Token
from typing import TYPE_CHECKING, Any

import tenacity

from . import _classify, _config, _decision, _events, _layers, _scope
from ._decision import (
    GIVE_UP,
    MARK,
    NOT_RETRYABLE,
    PASS,
    RETRY,
    CallState,
    Verdict,
    classify_outcome,
    decide,
)
from ._errors import callable_name
from ._events import StopReason
from ._strategy import Decision, Jitter, Strategy

if TYPE_CHECKING:
    from ._classify import Classification, ErrorCategory
    from ._policy import Policy

_log = logging.getLogger("retrykit")
_NOTE_PREFIX = "retrykit: "

_REASON_TEXT = {
    StopReason.NON_RETRYABLE: "{category} is not retried",
    StopReason.CATEGORY_EXHAUSTED: "{category} allows {max_retries} retries",
    StopReason.MAX_ATTEMPTS: "max_attempts={max_attempts} reached",
    StopReason.DEADLINE: "the next wait would pass the deadline",
    StopReason.RETRY_AFTER_EXCEEDS_DEADLINE: "the server's Retry-After would pass the deadline",
    StopReason.RETRY_AFTER_TOO_LONG: "the server's Retry-After exceeds max_delay={max_delay:g}s",
    StopReason.STRATEGY_STOP: "the strategy's stop condition was met",
    StopReason.TESTING_NO_RETRY: "retrykit.testing.no_retry() is active",
    StopReason.NOT_IDEMPOTENT: "the request may have been applied and is not idempotent",
    StopReason.STOP_CONDITION: "a tenacity stop condition was met",
    StopReason.RETRY_CONDITION: "a tenacity retry condition declined it",
    StopReason.BUDGET_EXHAUSTED: "the retry budget is exhausted (overload protection)",
    StopReason.CIRCUIT_OPEN: "the circuit breaker is open (overload protection)",
    StopReason.PUSHBACK: "the server said not to retry (pushback)",
    StopReason.INNER_RETRIES: "the client inside the call already retried (one layer retries)",
    StopReason.UNRECOGNISED: "no rule recognises it and it was retried once (add a rule)",
}


operation_name = callable_name
"""The name of a retried function in events (never its ``repr()``)."""


class Call(CallState):
    """A retrying call in progress: the per-call state plus what the loop does with verdicts."""

    __slots__ = ("after", "cache", "found", "last", "last_failed", "pending", "plain", "token", "verdict")

    # CallState's, declared again: this class sets them too (pyright: not ambiguous)
    attempt: int
    first: ErrorCategory | None
    first_count: int
    idle: float
    sent: int

    def __init__(self, policy: Policy, operation: str, start: float, scope: _scope.Scope | None) -> None:
        super().__init__(policy, operation, start, scope)
        self.verdict: Verdict | None = None
        """The verdict on the last failed attempt (its category is the next event's ``after``)."""
        self.after: ErrorCategory | None = None
        """The category of the failure before the current attempt's (events' ``after``)."""
        self.last: Any = None
        self.last_failed: bool = False
        self.pending: list[Awaitable[Any]] | None = None
        """Awaitables returned by async callbacks, for an async driver to await."""
        self.cache: dict[bool, Verdict] | None = None
        self.found: tuple[Classification | None, bool] | None = None
        self.token: Token[_scope.Scope | None] | None = None
        self.plain: dict[ErrorCategory, _FastEntry] | None = None
        """The categories ``fail`` decides alone in this call (see ``fast_plan``), once it failed."""

    # ------------------------------------------------------------------ the step

    def step(self, outcome: Any, failed: bool, found: Classification | None = None) -> float | None:
        """
        Decide about the attempt that just ended with *outcome* (an exception if *failed*) and
        act on it. Returns the delay before the next attempt, or ``None``: the call ends here,
        with this outcome. *found*: the result rule's classification, already made.
        """
        now = _scope.now()
        verdict = self.decide_outcome(outcome, failed, now, None if found is None else (found, False))
        action = verdict.action
        if action == PASS:
            if not failed:
                self.succeeded(now)
            return None
        previous = self.verdict  # (judged(), inline: this runs on every retry)
        if verdict is not previous:
            self.after = None if previous is None else previous.category
            self.verdict = verdict
        if verdict.requests > 1 or _events.listening(_events.AttemptFailed):
            self.report_failure(verdict, outcome, failed, now)
        if action == RETRY:
            self.commit(verdict)
            self.report_retry(verdict, outcome, failed, verdict.delay, now)
            deadline = self.deadline
            if deadline is None and self.policy.guard is None:
                return verdict.delay  # nothing can end the call before the next attempt
            # The deadline or an opening breaker may end the call while it sleeps: keep the outcome.
            self.last, self.last_failed = outcome, failed
            if deadline is not None and _scope.now() + verdict.delay > deadline:
                self.give_up(StopReason.DEADLINE)  # callbacks and events took the time left
                self.last = None
                return None
            return verdict.delay
        self.report_give_up(verdict.reason or StopReason.NON_RETRYABLE, outcome, failed, now)
        return None

    def fail(self, exc: Exception) -> float | None:
        """
        ``step(exc, True)`` for a driver's failed attempt: the common retry (a cached
        classification, a plain strategy, no guard, deadline, test mode, hook or extra sink)
        decided, counted and reported here in one go; anything else takes ``step``.
        """
        plain = self.plain
        if plain is None:
            plain = self.plain = fast_plan(self)
        settings = _config.settings
        entries = _events._direct[_events.RetryScheduled]
        if (
            not plain  # this call never takes the fast path (see ``fast_plan``)
            or entries is None  # a sink without a direct entry takes the event: build it
            or not settings.enabled
            or _decision._passthrough_builtins
            or _layers._user
            or _events._by_type[_events.AttemptFailed]
            or _scope._TESTING.process is not None
            or _scope._testing_here() is not None
            or _events._local_sinks.get()
        ):
            return self.step(exc, True)
        key = _classify.cache_key(exc, self.policy.classifier or settings.classifier)
        classification = None if key is None else _classify._CLASSIFIED.get(key)
        if (
            classification is None
            or classification.rule == _classify.UNRECOGNISED
            or classification.retry_after is not None
            or (classification.replay_unsafe and not self.policy.idempotent)
        ):
            return self.step(exc, True)
        category = classification.category
        entry = plain.get(category)
        if category is self.first:
            count = self.first_count + 1
        else:
            more = self.more
            count = (0 if more is None else more.get(category, 0)) + 1
        max_attempts = self.policy.max_attempts
        if (
            entry is None
            or (entry[1] is not None and count > entry[1])
            or (max_attempts is not None and self.attempt >= max_attempts)
        ):
            return self.step(exc, True)
        try:  # (``inner_retries`` for one plain builtin link, as a cached key implies)
            framed = _layers._from_frames(exc)
        except Exception:
            framed = None
        if framed is not None and framed.attempts > 1:  # the client inside retried: say so
            return self.step(exc, True)
        return self.retry_plainly(exc, classification, entry, count, entries)

    def retry_plainly(
        self,
        exc: Exception,
        classification: Classification,
        entry: _FastEntry,
        count: int,
        entries: tuple[_events.DirectEntry, ...],
    ) -> float:
        """``fail``'s retry number *count* of *classification*'s category: the delay, counted, reported."""
        category = classification.category
        strategy, _, delays = entry
        if delays is not None and count <= len(delays):
            delay = delays[count - 1]
        else:
            delay = min(strategy.delay_for(count, rng=_decision._random), strategy.max_delay)
        previous = self.verdict
        self.after = None if previous is None else previous.category
        self.verdict = Verdict(RETRY, classification, category, strategy, count, delay)
        if category is self.first or self.first is None:
            self.first, self.first_count = category, count
        else:
            self.set_count(category, count)
        self.idle += delay
        self.sent += 1
        fields = (
            self.operation,
            self.attempt,
            type(exc).__name__,
            classification,
            strategy.decision,
            delay,
            _scope._monotonic() - self.start,
            self.after,
            exc,
        )
        for direct in entries:
            try:
                direct(*fields)
            except Exception as err:
                _events.entry_failed(_events.RetryScheduled, direct, err, fields)
        return delay

    def returned(self, result: Any, found: Classification | None = None) -> float | None:
        """
        ``step(result, False, found)`` for a driver's attempt that returned: a result no rule or
        tenacity condition judges is a success, told to the guard and reported without a decision.
        """
        extras = self.extras
        if found is None and self.policy.classify_result is None and (extras is None or extras.retry is None):
            self.succeeded(_scope.now())
            return None
        return self.step(result, False, found)

    def decide_outcome(
        self, outcome: Any, failed: bool, now: float, found: tuple[Classification | None, bool] | None
    ) -> Verdict:
        """The decision on *outcome* (a subclass may adjust it: a task's requested countdown)."""
        return decide(self, outcome, failed, now, found=found)

    def begin(self) -> bool:
        """Start the next attempt; ``False`` if the deadline passed meanwhile (the call gave up)."""
        deadline = self.deadline
        if deadline is not None and _scope.now() >= deadline:
            self.give_up(StopReason.DEADLINE)
            return False
        guard = self.policy.guard
        if guard is not None and not guard.readmit():  # the breaker opened while we waited
            self.give_up(StopReason.CIRCUIT_OPEN)
            return False
        self.attempt += 1
        self.last = None
        return True

    def give_up(self, reason: StopReason) -> None:
        """Give up on the last outcome (kept in ``last``, its retry scheduled) for *reason*."""
        self.report_give_up(reason, self.last, self.last_failed, _scope.now(), rescheduled=True)

    def judged(self, verdict: Verdict) -> None:
        """Take *verdict* as the one on the current attempt."""
        previous = self.verdict
        if verdict is not previous:
            self.after = None if previous is None else previous.category
            self.verdict = verdict

    def end_with_last(self) -> Any:
        """
        Return the last outcome, or raise it if it is an exception: the call ended while its
        driver slept (the deadline passed). retrykit keeps no reference to it afterwards.
        """
        outcome, failed = self.last, self.last_failed
        self.last = None
        if not failed:
            return outcome
        try:
            raise outcome
        finally:
            outcome = None

    # ------------------------------------------------------------------ acting

    def report_failure(self, verdict: Verdict, outcome: Any, failed: bool, now: float) -> None:
        """An attempt failed: the hand-over warning (a client that retried inside), ``AttemptFailed``."""
        if verdict.requests > 1:
            warn_inner(self.operation, verdict)
        if _events.listening(_events.AttemptFailed):
            assert verdict.classification is not None
            _events.emit(
                _events.AttemptFailed(
                    self.operation,
                    self.attempt,
                    type(outcome).__name__,
                    verdict.classification,
                    now - self.start,
                    self.after,
                    outcome if failed else None,
                )
            )

    def report_retry(self, verdict: Verdict, outcome: Any, failed: bool, delay: float, now: float) -> None:
        """A retry after *delay* was decided: ``RetryScheduled``, ``on_retry``."""
        policy = self.policy
        classification = verdict.classification
        strategy = verdict.strategy
        assert classification is not None
        assert strategy is not None
        fields = (
            self.operation,
            self.attempt,
            type(outcome).__name__,
            classification,
            strategy.decision,
            delay,
            now - self.start,
            self.after,
            outcome if failed else None,
        )
        if policy.on_retry is None:
            entries = _events.direct_entries(_events.RetryScheduled)
            if entries is not None:  # only the built-in sinks: no event is built
                _events.send_direct(_events.RetryScheduled, entries, fields)
                return
        event = _events.RetryScheduled(*fields)
        self._dispatch(event, policy.on_retry)

    def report_give_up(
        self, reason: StopReason, outcome: Any, failed: bool, now: float, rescheduled: bool = False
    ) -> None:
        """The call gave up for *reason*: the note on the exception, ``GaveUp``, ``on_giveup``."""
        verdict = self.verdict
        assert verdict is not None
        assert verdict.classification is not None
        classification = verdict.classification
        if failed:
            note = self._give_up_note(reason, verdict, classification, rescheduled)
            annotate(outcome, note, None if self.scope is None else self.scope.outer)
        elif self.scope is not None and self.scope.outer is not None:
            mark(outcome, self.scope.outer)  # enclosing layers return this result as it is
        event = _events.GaveUp(
            self.operation,
            self.attempt,
            type(outcome).__name__,
            classification,
            reason,
            now - self.start,
            self.after,
            outcome if failed else None,
            not failed,
            rescheduled,
        )
        self._dispatch(event, self.policy.on_giveup)

    def _give_up_note(
        self, reason: StopReason, verdict: Verdict, classification: Classification, rescheduled: bool
    ) -> str:
        """The note added to the exception given up on: what, after how many attempts, and why."""
        why = self._stop_text(reason, verdict, classification)
        attempts = self.attempt
        note = (
            f"{_NOTE_PREFIX}gave up on {self.operation} after {attempts} "
            f"attempt{'s' if attempts != 1 else ''}: {classification.category.value} "
            f"({classification.reason}); stopped because {why} [{reason.value}]"
        )
        sent = self.sent if rescheduled else self.sent + verdict.requests
        inner = classification.inner
        if sent > max(attempts, 0 if inner is None else inner.attempts):
            note += f"; {sent} requests in all"
        if inner is not None:
            note += f"; {inner.describe()}"
        return note

    def _stop_text(self, reason: StopReason, verdict: Verdict, classification: Classification) -> str:
        """Why the call stopped, in words (the limit that was reached, with its value)."""
        strategy = verdict.strategy
        return _REASON_TEXT[reason].format(
            category=classification.category.value,
            max_retries=strategy.max_retries if strategy else "?",
            max_delay=strategy.max_delay if strategy else 0.0,
            max_attempts=self.policy.max_attempts,
        )

    def succeeded(self, now: float) -> None:
        """
        The call succeeded on attempt ``self.attempt``: the guard is told (the breaker's success,
        the budget's refund); after a failure, ``Succeeded`` and ``on_success`` too.
        """
        guard = self.policy.guard
        if guard is not None:
            guard.succeeded(self)
        last = self.verdict
        if self.attempt == 1 or last is None:
            return  # a first attempt judged good: no failure to report a recovery from
        fields = (self.operation, self.attempt, now - self.start, last.category)
        if self.policy.on_success is None:
            entries = _events.direct_entries(_events.Succeeded)
            if entries is not None:  # only the built-in sinks: no event is built
                _events.send_direct(_events.Succeeded, entries, fields)
                return
        self._dispatch(_events.Succeeded(*fields), self.policy.on_success)

    def _dispatch(self, event: _events.Event, callback: Callable[[Any], Any] | None) -> None:
        if _events.listening(type(event)):
            _events.emit(event)
        if callback is not None:
            pending = call_callback(callback, event)
            if pending is not None:
                if self.pending is None:
                    self.pending = []
                self.pending.append(pending)

    def drop_pending(self) -> None:
        """Close awaitables a sync driver cannot await."""
        pending, self.pending = self.pending, None
        for awaitable in pending or ():
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()

    async def drain(self) -> None:
        """Await the async callbacks' results; their errors are logged, never raised."""
        pending, self.pending = self.pending, None
        if pending:
            await drain(pending)


_warned: set[tuple[str, str]] = set()

FAST_DELAYS = 16
"""Retries per category whose delays a policy's fast table holds (strategies without jitter)."""
_FastEntry = tuple[Any, "int | None", "tuple[float, ...] | None"]
_TABLES: dict[int, tuple[Policy, dict[ErrorCategory, _FastEntry] | None]] = {}
_TABLES_SIZE = 256


_ENTRIES: dict[int, tuple[Strategy, _FastEntry | None]] = {}
_ENTRIES_SIZE = 1024


_NEVER_FAST: dict[ErrorCategory, _FastEntry] = {}


def fast_plan(call: Call) -> dict[ErrorCategory, _FastEntry]:
    """
    At a call's first failure: the categories ``Call.fail`` may decide alone in it, by what holds
    for the whole call (its policy, deadline, tenacity objects, an owner of its retries); an empty
    map: none, every failure takes ``step``.
    """
    if call.deadline is not None or call.extras is not None:
        return _NEVER_FAST
    scope = call.scope
    if scope is not None and scope.owner is not None:
        return _NEVER_FAST
    policy = call.policy
    table = _TABLES.get(id(policy))
    if table is None or table[0] is not policy:
        table = fast_table(policy)
    return table[1] or _NEVER_FAST


def fast_table(policy: Policy) -> tuple[Policy, dict[ErrorCategory, _FastEntry] | None]:
    """
    Built once per policy: for each category whose strategy ``Call.fail`` can decide alone, its
    entry (see ``fast_entry``). ``None`` in place of the map: the policy has a guard or an
    ``on_retry`` (the general path).
    """
    plain: dict[ErrorCategory, _FastEntry] | None = None
    if policy.guard is None and policy.on_retry is None:
        plain = {}
        for category, strategy in policy.strategies.items():
            entry = fast_entry(strategy)
            if entry is not None:
                plain[category] = entry
    if len(_TABLES) >= _TABLES_SIZE:
        _TABLES.clear()
    table = _TABLES[id(policy)] = (policy, plain)
    return table


def fast_entry(strategy: Strategy) -> _FastEntry | None:
    """
    Built once per strategy (policies made with ``replace`` share theirs): the strategy, its
    ``max_retries`` and, without jitter, the delays of its first ``FAST_DELAYS`` retries; None
    for a strategy ``Call.fail`` leaves to the general path (no retry, a tenacity ``stop`` or
    ``wait``, decorrelated jitter).
    """
    found = _ENTRIES.get(id(strategy))
    if found is not None and found[0] is strategy:
        return found[1]
    entry: _FastEntry | None = None
    if not (
        strategy.decision is Decision.NO_RETRY
        or strategy.stop is not None
        or strategy.wait is not None
        or strategy.jitter is Jitter.DECORRELATED
    ):
        delays = None
        if strategy.jitter is Jitter.NONE:
            delays = tuple(min(strategy.delay_for(n), strategy.max_delay) for n in range(1, FAST_DELAYS + 1))
        entry = (strategy, strategy.max_retries, delays)
    if len(_ENTRIES) >= _ENTRIES_SIZE:
        _ENTRIES.clear()
    _ENTRIES[id(strategy)] = (strategy, entry)
    return entry


def warn_inner(operation: str, verdict: Verdict) -> None:
    """Once per operation and client: the client retried inside the call; how to hand it over."""
    classification = verdict.classification
    inner = None if classification is None else classification.inner
    if inner is None:
        return
    key = (operation, inner.client)
    if key in _warned or len(_warned) >= 1000:
        return
    _warned.add(key)
    _log.warning(
        "retrykit: %s retried inside %s (%d requests in one attempt); retrykit counts them and "
        "will not multiply them. To let retrykit's policy retry alone, switch the client's "
        "retries off: %s (said once per operation and client)",
        inner.client,
        operation,
        inner.attempts,
        inner.switch_off,
    )


async def drain(pending: list[Awaitable[Any]]) -> None:
    """Await async callbacks' results in order; their errors are logged, never raised."""
    for awaitable in pending:
        try:
            await awaitable
        except Exception as err:
            _log.error("retrykit: an async callback failed: %s", type(err).__name__)


def call_callback(callback: Callable[[Any], Any], event: _events.Event) -> Awaitable[Any] | None:
    """Call a user callback; its errors are logged, never raised. Returns an awaitable, if any."""
    try:
        result = callback(event)
    except Exception as err:
        _log.error(
            "retrykit: callback %s failed on %s: %s",
            operation_name(callback),
            type(event).__name__,
            type(err).__name__,
        )
        return None
    return result if inspect.isawaitable(result) else None


def first_success(policy: Policy, operation: str, elapsed: float) -> Awaitable[Any] | None:
    """``on_success`` for a call that succeeded at once (no event: the fast path stays quiet)."""
    callback = policy.on_success
    if callback is None:
        return None
    return call_callback(callback, _events.Succeeded(operation, 1, elapsed))


# --------------------------------------------------------------------------- notes and marks


def mark(result: object, into: _scope.Scope) -> None:
    """Mark a returned value given up into the scope *into* (one without a ``__dict__``: not)."""
    try:
        found = object.__getattribute__(result, "__dict__")
    except Exception:
        return
    if isinstance(found, dict):
        found[MARK] = into


def annotate(exc: BaseException, note: str, into: _scope.Scope | None) -> None:
    """
    Put retrykit's note on *exc* (one note, updated in place when the instance is raised again)
    and mark it as given up into the scope *into*, so enclosing layers let it through. Never
    raises: hostile exceptions (``__getattr__``, ``__setattr__``, odd ``__notes__``) are skipped.
    """
    try:
        found = object.__getattribute__(exc, "__dict__")
    except Exception:
        return
    if not isinstance(found, dict):
        return
    notes = found.get("__notes__")
    if notes is None:
        found["__notes__"] = [note]
    elif isinstance(notes, list):
        for index, existing in enumerate(notes):
            if isinstance(existing, str) and existing.startswith(_NOTE_PREFIX):
                notes[index] = note
                break
        else:
            notes.append(note)
    if into is None:
        found.pop(MARK, None)
    else:
        found[MARK] = into


# --------------------------------------------------------------------------- tenacity


def _call_of(policy: Policy, state: tenacity.RetryCallState) -> Call:
    """retrykit's call on a tenacity ``RetryCallState`` (created on first use)."""
    call: Call | None = getattr(state, "retrykit", None)
    if call is None or call.policy is not policy:
        # Bare views (no hooks): inner layers mark into the enclosing scope, so use it.
        name = operation_name(state.fn) if state.fn is not None else "tenacity"
        start = _scope.now()
        call = Call(policy, name, start, _scope._SCOPE.get())
        call.deadline = _scope.scope(policy.deadline, start)[1]
        call.attempt = state.attempt_number
        state.retrykit = call  # type: ignore[attr-defined]
    elif call.attempt != state.attempt_number:
        _advance(call, state.attempt_number)
    return call


def _advance(call: Call, attempt: int) -> None:
    """tenacity started attempt *attempt*: count the retry of the one before."""
    cache = call.cache
    if cache:
        verdict = cache.get(True) or cache.get(False)
        if verdict is not None and verdict.category is not None:
            call.judged(verdict)
            call.commit(verdict)
    call.cache = None
    call.found = None
    call.attempt = attempt


def view(policy: Policy, state: tenacity.RetryCallState, forced: bool) -> Verdict:
    """
    The verdict on *state*'s outcome, computed once per attempt (and per *forced*): what a
    policy's tenacity ``retry`` (not forced), ``wait`` and ``stop`` (forced: tenacity only asks
    them once a retry was decided) read. No events, no callbacks, nothing counted.
    """
    call = _call_of(policy, state)
    cache = call.cache
    if cache is None:
        cache = call.cache = {}
    verdict = cache.get(forced)
    if verdict is None:
        outcome = state.outcome
        if outcome is None:
            return Verdict(PASS)
        failed = bool(outcome.failed)
        value = outcome.exception() if failed else outcome.result()
        if call.found is None:
            call.found = classify_outcome(call, value, failed)
        verdict = decide(call, value, failed, _scope.now(), forced=forced, found=call.found)
        cache[forced] = verdict
    return verdict


class _Hooks:
    """
    tenacity hooks that make tenacity's own loop act like retrykit's (events, notes, sleep). One
    set serves ``Retrying`` and ``AsyncRetrying``: an ``AsyncRetrying`` swaps in the async ones.
    """

    def __init__(self, policy: Policy, condition: Any) -> None:
        self.policy = policy
        self.condition = condition

    def call(self, state: tenacity.RetryCallState) -> Call:
        return _call_of(self.policy, state)

    def before(self, state: tenacity.RetryCallState) -> None:
        """An attempt starts: an ``AsyncRetrying`` gets the async hooks; open the call's scope."""
        if isinstance(state.retry_object, tenacity.AsyncRetrying):
            self.to_async(state.retry_object)
        call: Call | None = getattr(state, "retrykit", None)
        guard = self.policy.guard
        if call is None or call.policy is not self.policy:
            start = _scope.now()
            operation = operation_name(state.fn) if state.fn else "tenacity"
            # -- overload protection: the budget counts the call; an open breaker refuses it
            if guard is not None:
                guard.admit(operation, _scope._SCOPE.get())
            # --
            call = Call(self.policy, operation, start, None)
            call.scope = _scope.scope(self.policy.deadline, start)
            call.deadline = call.scope.deadline
            state.retrykit = call  # type: ignore[attr-defined]
        elif call.attempt != state.attempt_number:
            _advance(call, state.attempt_number)
            # -- overload protection: the breaker may have opened while the retry waited
            if guard is not None:
                if not guard.readmit():
                    call.attempt -= 1  # this attempt never starts
                    self._refused(call)
                call.last = None
            # --
        self.leave(call)
        call.token = _scope._SCOPE.set(call.scope)

    def _refused(self, call: Call) -> None:
        """Attempt 2+ refused by an open breaker: give up (circuit_open) with the last outcome."""
        call.give_up(StopReason.CIRCUIT_OPEN)
        call.drop_pending()
        outcome, failed = call.last, call.last_failed
        call.last = None
        if failed:
            try:
                raise outcome
            finally:
                outcome = None
        from ._breaker import CircuitOpen

        breaker = self.policy.breaker
        assert breaker is not None
        raise CircuitOpen(breaker.key, max(breaker.remaining(), 1e-3))

    def to_async(self, retrying: tenacity.AsyncRetrying) -> None:
        """Give *retrying* the async variants of the sync hooks it holds (not those replaced)."""
        if type(retrying.retry) is _Retry and retrying.retry.hooks is self:
            retrying.retry = _AsyncRetry(self)
        # (tenacity types these attributes as Retrying's; AsyncRetrying awaits what they return)
        if retrying.sleep == self.sleep:
            retrying.sleep = _scope.sleep_async  # type: ignore[assignment]
        if retrying.before_sleep == self.before_sleep:
            retrying.before_sleep = self.before_sleep_async  # type: ignore[assignment]
        if retrying.retry_error_callback == self.retry_error_callback:
            retrying.retry_error_callback = self.retry_error_callback_async

    @staticmethod
    def leave(call: Call) -> None:
        token, call.token = call.token, None
        if token is not None:
            with contextlib.suppress(ValueError):  # reset from another context: leave it
                _scope._SCOPE.reset(token)

    def retry(self, state: tenacity.RetryCallState) -> bool:
        """The retry condition (the policy's, or the one given); a "no" for a failure gives up."""
        call = self.call(state)
        self.leave(call)
        answer = self._judge(state, call, bool(self.condition(state)))
        call.drop_pending()
        return answer

    async def retry_async(self, state: tenacity.RetryCallState) -> bool:
        """``retry`` for ``AsyncRetrying``: async conditions and callbacks are awaited."""
        call = self.call(state)
        self.leave(call)
        answer = self.condition(state)
        if inspect.isawaitable(answer):
            answer = await answer
        result = self._judge(state, call, bool(answer))
        await call.drain()
        return result

    def _judge(self, state: tenacity.RetryCallState, call: Call, answer: bool) -> bool:
        outcome = state.outcome
        if answer or outcome is None:
            return answer
        if not outcome.failed:
            call.succeeded(_scope.now())
            return False
        verdict = view(self.policy, state, False)
        if verdict.action != PASS:
            reason = verdict.reason if verdict.reason is not None else StopReason.RETRY_CONDITION
            self._end(call, verdict, outcome.exception(), True, reason)
        return False

    def _outcome(self, state: tenacity.RetryCallState) -> tuple[Call, Verdict, Any, bool]:
        call = self.call(state)
        self.leave(call)
        verdict = view(self.policy, state, True)
        outcome = state.outcome
        assert outcome is not None
        failed = bool(outcome.failed)
        return call, verdict, outcome.exception() if failed else outcome.result(), failed

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        """A retry was decided: emit, run ``on_retry``."""
        call, verdict, value, failed = self._outcome(state)
        now = _scope.now()
        call.judged(verdict)
        if verdict.classification is not None:
            call.report_failure(verdict, value, failed, now)
            call.report_retry(verdict, value, failed, float(state.upcoming_sleep), now)
        if self.policy.guard is not None:  # -- overload protection: kept in case the breaker opens
            call.last, call.last_failed = value, failed
        if not isinstance(state.retry_object, tenacity.AsyncRetrying):
            call.drop_pending()  # (AsyncRetrying's before_sleep_async awaits them)

    async def before_sleep_async(self, state: tenacity.RetryCallState) -> None:
        """``before_sleep`` for ``AsyncRetrying``: async callbacks are awaited."""
        self.before_sleep(state)
        await self.call(state).drain()

    def _stopped(self, state: tenacity.RetryCallState) -> tuple[Call, Any, bool]:
        call, verdict, value, failed = self._outcome(state)
        if verdict.action != PASS:
            reason = verdict.reason if verdict.action == GIVE_UP else StopReason.STOP_CONDITION
            self._end(call, verdict, value, failed, reason or StopReason.STOP_CONDITION)
        return call, value, failed

    def retry_error_callback(self, state: tenacity.RetryCallState) -> Any:
        """A stop condition ended the loop: note, events, ``on_giveup``; then the outcome."""
        call, value, failed = self._stopped(state)
        call.drop_pending()
        if failed:
            try:
                raise value
            finally:
                value = None
        return value

    async def retry_error_callback_async(self, state: tenacity.RetryCallState) -> Any:
        """``retry_error_callback`` for ``AsyncRetrying``: async callbacks are awaited."""
        call, value, failed = self._stopped(state)
        await call.drain()
        if failed:
            try:
                raise value
            finally:
                value = None
        return value

    def _end(self, call: Call, verdict: Verdict, value: Any, failed: bool, reason: StopReason) -> None:
        call.judged(verdict)
        now = _scope.now()
        if verdict.classification is not None:
            call.report_failure(verdict, value, failed, now)
            call.report_give_up(reason, value, failed, now)

    def sleep(self, delay: float) -> None:
        _scope.sleep_sync(delay)


class _Retry(tenacity.retry_base):
    __slots__ = ("hooks",)

    def __init__(self, hooks: _Hooks) -> None:
        self.hooks = hooks

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.hooks.retry(retry_state)


class _AsyncRetry(_Retry):
    __slots__ = ()

    async def __call__(self, retry_state: tenacity.RetryCallState) -> bool:  # type: ignore[override]
        return await self.hooks.retry_async(retry_state)


def tenacity_hooks(
    policy: Policy, retry: Any, wait: Any, stop: Any, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` and ``AsyncRetrying`` alike that run *policy*."""
    hooks = _Hooks(policy, retry if retry is not None else policy.retry)
    kwargs: dict[str, Any] = {
        "retry": _Retry(hooks),
        "wait": wait if wait is not None else policy.wait,
        "stop": stop if stop is not None else policy.stop,
        "sleep": hooks.sleep,
        "before": hooks.before,
        "before_sleep": hooks.before_sleep,
        "retry_error_callback": hooks.retry_error_callback,
        "reraise": True,
    }
    kwargs.update(overrides)
    return kwargs


__all__ = [
    "GIVE_UP",
    "NOT_RETRYABLE",
    "PASS",
    "RETRY",
    "Call",
    "annotate",
    "call_callback",
    "drain",
    "first_success",
    "operation_name",
    "tenacity_hooks",
    "view",
]
