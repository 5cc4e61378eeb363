"""The driver for plain functions: call, and only after a failure build tenacity's state."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

from retrykit import _config, _engine, _scope
from retrykit._policy import Policy

from ._source import PolicySource

T = TypeVar("T")


def wrap(fn: Callable[..., T], source: PolicySource, operation: str) -> Callable[..., T]:
    """Wrap a plain function: the first attempt is a bare call; retrying starts at a failure."""
    current = source.current
    now = _scope.now

    @functools.wraps(fn)
    def retrying(*args: Any, **kwargs: Any) -> T:
        policy = current()
        start = now()
        token = None if policy.deadline is None else _scope.enter(policy.deadline, start)
        try:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                failure = exc
            else:
                if policy.on_success is not None:
                    _engine.first_success(policy, fn, now() - start)
                return result
            # Outside the except block, so later failures do not get this one as __context__.
            return _retry(policy, fn, args, kwargs, failure, start, operation)
        finally:
            if token is not None:
                _scope.leave(token)

    return retrying


def _retry(
    policy: Policy,
    fn: Callable[..., T],
    args: Any,
    kwargs: Any,
    exc: Exception,
    start: float,
    operation: str,
) -> T:
    if not _config.settings.enabled or _engine.passes_through(exc, start):
        raise exc
    state = _engine.new_state(fn, args, kwargs, start, operation)
    record: _engine.CallRecord = state.retrykit  # type: ignore[attr-defined]
    while True:
        _engine.set_failure(state, exc)
        delay = _engine.decide(policy, state)
        if record.pending:
            _engine.discard(record)
        if delay is None:
            raise exc
        _scope.sleep_sync(delay)
        state.prepare_for_next_attempt()
        record.attempt_start = _scope.now()
        try:
            result = fn(*args, **kwargs)
        except Exception as err:
            exc = err
            continue
        _engine.succeeded(policy, record, state.attempt_number, _scope.now() - start)
        _engine.discard(record)
        return result


class Attempt:
    """
    One attempt of a block: ``with attempt: ...``. Swallows a failure that will be retried,
    lets through the one retrykit gave up on.
    """

    __slots__ = ("_run", "number")

    def __init__(self, run: Any, number: int) -> None:
        self._run = run
        self.number = number

    def __repr__(self) -> str:
        return f"<Attempt number={self.number}>"

    def __enter__(self) -> Attempt:
        self._run.enter_attempt()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return bool(self._run.exit_attempt(exc))


class BlockRun:
    """Strictly private: the state of one ``for attempt in attempts(policy)`` loop."""

    __slots__ = (
        "attempt_start",
        "number",
        "operation",
        "pending",
        "policy",
        "start",
        "state",
        "succeeded",
        "token",
    )

    def __init__(self, policy: Policy, operation: str) -> None:
        self.policy = policy
        self.operation = operation
        self.start = _scope.now()
        self.state: Any = None
        self.number = 0
        self.pending: float | None = None
        self.attempt_start = self.start
        self.succeeded = False
        self.token: object | None = None

    def delay(self) -> float | None:
        """The sleep due before the next attempt, or None if the loop is over."""
        if self.number == 0:
            return 0.0
        if self.pending is None:  # succeeded, gave up, or the body never entered the attempt
            if self.succeeded and self.number > 1:
                _engine.succeeded(self.policy, self.state.retrykit, self.number, _scope.now() - self.start)
            return None
        return self.pending

    def advance(self) -> Attempt:
        """The next attempt (after the sleep)."""
        if self.number:
            self.state.prepare_for_next_attempt()
        self.pending = None
        self.number += 1
        return Attempt(self, self.number)

    def enter_attempt(self) -> None:
        now = self.attempt_start = _scope.now()
        if self.policy.deadline is not None:
            self.token = _scope.enter(self.policy.deadline - (now - self.start), now)

    def exit_attempt(self, exc: BaseException | None) -> bool:
        if self.token is not None:
            _scope.leave(self.token)
            self.token = None
        if exc is None:
            self.succeeded = True
            return False
        if not _config.settings.enabled or _engine.passes_through(exc, self.attempt_start):
            return False
        if self.state is None:
            self.state = _engine.new_state(None, (), {}, self.start, self.operation)
        self.state.retrykit.attempt_start = self.attempt_start
        _engine.set_failure(self.state, exc)
        self.pending = _engine.decide(self.policy, self.state)
        return self.pending is not None


class SyncAttempts:
    """Strictly private: the sync iterator of ``attempts()``."""

    __slots__ = ("_run",)

    def __init__(self, run: BlockRun) -> None:
        self._run = run

    def __iter__(self) -> Iterator[Attempt]:
        return self

    def __next__(self) -> Attempt:
        run = self._run
        delay = run.delay()
        if run.state is not None:
            _engine.discard(run.state.retrykit)
        if delay is None:
            raise StopIteration
        if delay:
            _scope.sleep_sync(delay)
        return run.advance()
