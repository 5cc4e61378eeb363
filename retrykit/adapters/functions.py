"""The driver for plain functions and the sync block form: run attempts, sleep, nothing else."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from retrykit import _scope
from retrykit._decision import Extras
from retrykit._loop import Call, first_success
from retrykit._policy import Policy
from retrykit._results import judge_result

from ._authorities import outer_retrier, warn_once
from ._source import PolicySource

T = TypeVar("T")

_FIRST_TRY = (1, 0.0, "returned", None)


class Statistics(Mapping[str, Any]):
    """
    The last finished call of a decorated function, as tenacity's ``statistics`` reads:
    ``fn.statistics["attempt_number"]``, ``["idle_for"]`` (seconds waited), ``["outcome"]``
    (``"returned"`` or ``"raised"``) and ``["stop_reason"]`` (a ``StopReason`` value, or None).
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: tuple[int, float, str, str | None] | None = None

    def end(self, call: Call, outcome: str) -> None:
        """Record a finished *call* that ``"returned"`` or ``"raised"`` (its *outcome*)."""
        verdict = call.verdict
        reason = None if verdict is None or verdict.reason is None else verdict.reason.value
        self.last = (call.attempt, call.idle, outcome, reason)

    def _asdict(self) -> dict[str, Any]:
        if self.last is None:
            return {}
        attempts, idle, outcome, reason = self.last
        return {"attempt_number": attempts, "idle_for": idle, "outcome": outcome, "stop_reason": reason}

    def __getitem__(self, key: str) -> Any:
        return self._asdict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._asdict())

    def __len__(self) -> int:
        return len(self._asdict())

    def __repr__(self) -> str:
        return f"<retrykit statistics {self._asdict()}>"


def begin(
    policy: Policy, operation: str, clock: Callable[[], float] = _scope._monotonic
) -> tuple[float, _scope.Scope]:
    """
    A call's start and scope, once its guard admitted it (an open breaker refuses it here): the
    raw clock (made virtual for test modes only if a failure needs it) and the enclosing scope's
    deadline and owner, unless the policy has a deadline of its own.
    """
    outer = _scope._SCOPE.get()
    if policy.guard is not None:
        policy.guard.admit(operation, outer)
    if policy.deadline is not None:
        start = _scope.now()
        return start, _scope.scope(policy.deadline, start)
    if outer is None:
        return clock(), _scope.TOP
    return clock(), _scope.Scope(outer, outer.deadline, outer.owner)


def new_call(
    policy: Policy, operation: str, start: float, scope: _scope.Scope, extras: Extras | None
) -> Call:
    """
    A ``Call`` for a decorated function or a block, built at its first failure. *start* is on
    the raw clock unless the policy has a deadline (then it is already on ``now()``'s clock).
    """
    if policy.deadline is None:
        start = _scope.virtual(start)
    outer = outer_retrier(3) if scope.owner is None else None
    if outer is not None:  # another library retries this call: one attempt here (one layer)
        warn_once(operation, outer)
        scope = _scope.Scope(scope.outer, scope.deadline, outer)
    call = Call(policy, operation, start, scope)
    call.extras = extras
    return call


def first_result(
    policy: Policy,
    operation: str,
    start: float,
    scope: _scope.Scope,
    extras: Extras | None,
    result: Any,
    stats: Statistics,
    plain: bool,
) -> Success | tuple[Call, float | None]:
    """
    What a first attempt's *result* is: a ``Success`` when no rule or tenacity condition judges
    it (nothing built: the guard and an ``on_success`` told, the statistics' last call set), else
    the call built for it and the delay before the next attempt (None: the call ends here).
    """
    found = None if policy.classify_result is None else judge_result(policy.classify_result, result)
    if found is None and plain:
        pending = None
        if policy.guard is not None:
            policy.guard.succeeded(None)
        if policy.on_success is not None:
            began = start if policy.deadline is not None else _scope.virtual(start)
            pending = first_success(policy, operation, _scope.now() - began)
        stats.last = _FIRST_TRY
        return _SUCCEEDED if pending is None else Success(pending)
    call = new_call(policy, operation, start, scope, extras)
    return call, call.returned(result, found)


class Success(NamedTuple):
    """A first attempt that succeeded (``first_result``)."""

    pending: Awaitable[Any] | None
    """An async ``on_success``'s awaitable, for an async driver to await (a sync one closes it)."""


_SUCCEEDED = Success(None)


def wrap(fn: Callable[..., T], source: PolicySource, operation: str, stats: Statistics) -> Callable[..., T]:
    """Wrap a plain function: the first attempt is a bare call; retrying starts at a failure."""
    state, fixed, extras = source.state, source.fixed, source.extras
    plain = extras is None or extras.retry is None  # results need no tenacity condition

    @functools.wraps(fn)
    def retrying(*args: Any, **kwargs: Any) -> T:
        policy, quiet = fixed or state()
        start, scope = begin(policy, operation)
        call: Call | None = None
        token = _scope._SCOPE.set(scope)
        try:
            while True:
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    call = call or new_call(policy, operation, start, scope, extras)
                    delay = call.fail(exc)
                    if delay is None:
                        _end(call, stats, "raised")
                        raise
                else:
                    if call is None and quiet:  # a first-try success told to nobody: nothing built
                        stats.last = _FIRST_TRY
                        return result
                    if call is None:
                        first = first_result(policy, operation, start, scope, extras, result, stats, plain)
                        if isinstance(first, Success):
                            _close(first.pending)
                            return result
                        call, delay = first
                    else:
                        delay = call.returned(result)
                    if delay is None:
                        _end(call, stats, "returned")
                        return result
                if call.pending:
                    call.drop_pending()
                _scope.sleep_sync(delay)
                if not call.begin():  # the deadline passed, or the breaker opened, while it slept
                    return _last(call, stats)  # type: ignore[no-any-return]
        finally:
            _scope._SCOPE.reset(token)

    return retrying


def _close(pending: Awaitable[Any] | None) -> None:
    """Close an awaitable a sync driver cannot await (an async ``on_success``'s)."""
    close = getattr(pending, "close", None)
    if close is not None:
        close()


def _end(call: Call, stats: Statistics, outcome: str) -> None:
    call.drop_pending()
    stats.end(call, outcome)


def _last(call: Call, stats: Statistics) -> Any:
    """End the call with its last outcome (the deadline passed while it slept)."""
    _end(call, stats, "raised" if call.last_failed else "returned")
    return call.end_with_last()


class Attempt:
    """
    One attempt of a retried block: ``with attempt: ...``.

    It swallows a failure that will be retried (the loop then waits and gives the next attempt)
    and lets through the one retrykit gave up on. Not created directly: ``retrykit.attempts()``
    yields them.

    Attributes:
        number: The attempt's number in the call, from 1.
    """

    __slots__ = ("_run", "_timeout", "_token", "number")

    def __init__(self, run: BlockRun, number: int) -> None:
        self._run = run
        self.number: int = number
        self._token: Any = None
        self._timeout: Any = None

    def __repr__(self) -> str:
        return f"<Attempt number={self.number}>"

    def __enter__(self) -> Attempt:
        self._run.enter(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self._run.exit(self, exc_type, exc, tb)


class BlockRun:
    """The state of one ``for attempt in attempts(policy)`` loop (sync or async)."""

    __slots__ = (
        "asynchronous",
        "call",
        "delay",
        "entered",
        "extras",
        "number",
        "operation",
        "policy",
        "scope",
        "start",
        "stats",
    )

    def __init__(self, policy: Policy, operation: str, extras: Extras | None, asynchronous: bool) -> None:
        self.policy: Policy = policy
        self.operation: str = operation
        self.extras: Extras | None = extras
        self.asynchronous: bool = asynchronous
        start, scope = begin(policy, operation)  # (an open breaker refuses the block here)
        self.start: float = start
        self.scope: _scope.Scope = scope
        self.call: Call | None = None
        self.number: int = 0
        self.delay: float | None = None
        self.entered: bool = False
        self.stats: Statistics = Statistics()

    def next(self) -> float | None:
        """The sleep due before the next attempt (0 for the first), or None: the loop is over."""
        if self.number == 0:
            return 0.0
        delay, self.delay = self.delay, None
        if delay is None:  # succeeded, gave up, or the body never entered the attempt
            return None
        if not self.entered:  # pragma: no cover - a retry is only decided inside an attempt
            return None
        return delay

    def advance(self) -> Attempt | None:
        """The next attempt after the sleep; None if the deadline passed meanwhile."""
        call = self.call
        if self.number and call is not None and not call.begin():
            return None
        self.number += 1
        self.entered = False
        return Attempt(self, self.number)

    def last(self) -> Any:
        """The outcome to end with after ``advance`` returned None."""
        assert self.call is not None
        return _last(self.call, self.stats)

    def enter(self, attempt: Attempt) -> None:
        """Start *attempt*: its scope (deadline) is in force, and its timeout for a coroutine."""
        self.entered = True
        attempt._token = _scope._SCOPE.set(self.scope)
        if self.asynchronous:
            timeout = self.policy.attempt_timeout
            left = None if self.scope.deadline is None else max(0.0, self.scope.deadline - _scope.now())
            if left is not None:
                timeout = left if timeout is None else min(timeout, left)
            if timeout is not None:
                import anyio

                attempt._timeout = anyio.fail_after(timeout)
                attempt._timeout.__enter__()

    def exit(
        self,
        attempt: Attempt,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """End *attempt* with its exception, if any; True swallows it (the block is retried)."""
        cm, attempt._timeout = attempt._timeout, None
        if cm is not None:
            try:
                if cm.__exit__(exc_type, exc, tb):
                    exc = None
            except TimeoutError as timed_out:  # the attempt was cut by its timeout
                return self._failed(attempt, timed_out, reraise=True)
        return self._failed(attempt, exc, reraise=False)

    def _failed(self, attempt: Attempt, exc: BaseException | None, *, reraise: bool) -> bool:
        _scope._SCOPE.reset(attempt._token)
        attempt._token = None
        if exc is None:
            if self.call is not None:
                self.call.returned(None)  # the guard is told, and a recovery reported
                self.stats.end(self.call, "returned")
            elif self.policy.guard is not None:
                self.policy.guard.succeeded(None)
            return False
        if not isinstance(exc, Exception):
            return False
        call = self.call
        if call is None:
            call = self.call = new_call(self.policy, self.operation, self.start, self.scope, self.extras)
        self.delay = delay = call.fail(exc)
        if delay is not None:
            return True
        self.stats.end(call, "raised")
        if reraise:
            raise exc
        return False


class SyncAttempts:
    """The sync iterator of ``attempts()``."""

    __slots__ = ("_run",)

    def __init__(self, run: BlockRun) -> None:
        self._run = run
        if run.policy.attempt_timeout is not None:
            warnings.warn(
                f"attempt_timeout={run.policy.attempt_timeout} is not enforced for the sync block "
                f"{run.operation}: Python cannot interrupt running code. Pass a timeout to the "
                "call you make, or use async for",
                RuntimeWarning,
                stacklevel=3,
            )

    def __iter__(self) -> Iterator[Attempt]:
        return self

    def __next__(self) -> Attempt:
        run = self._run
        delay = run.next()
        if run.call is not None:
            run.call.drop_pending()
        if delay is None:
            raise StopIteration
        if delay:
            _scope.sleep_sync(delay)
        attempt = run.advance()
        if attempt is None:
            run.last()
            raise StopIteration  # pragma: no cover - last() raises: blocks end with failures
        return attempt
