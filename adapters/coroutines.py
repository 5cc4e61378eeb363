"""The driver for ``async def``: await, and only after a failure build tenacity's state."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio

from retrykit import _config, _engine, _scope
from retrykit._policy import Policy

from ._source import PolicySource
from .functions import Attempt, BlockRun

T = TypeVar("T")


def _attempt_timeout(policy: Policy) -> float | None:
    timeout = policy.attempt_timeout
    if timeout is None:
        return None
    left = _scope.remaining()
    return timeout if left is None else min(timeout, left)


async def _run_attempt(fn: Callable[..., Awaitable[T]], args: Any, kwargs: Any, policy: Policy) -> T:
    timeout = _attempt_timeout(policy)
    if timeout is None:
        return await fn(*args, **kwargs)
    with anyio.fail_after(timeout):
        return await fn(*args, **kwargs)


def wrap(
    fn: Callable[..., Awaitable[T]], source: PolicySource, operation: str
) -> Callable[..., Awaitable[T]]:
    """Wrap a coroutine function; sleeping goes through anyio (asyncio and trio)."""
    current = source.current
    now = _scope.now

    @functools.wraps(fn)
    async def retrying(*args: Any, **kwargs: Any) -> T:
        policy = current()
        start = now()
        token = None if policy.deadline is None else _scope.enter(policy.deadline, start)
        try:
            try:
                if policy.attempt_timeout is None:
                    result = await fn(*args, **kwargs)
                else:
                    result = await _run_attempt(fn, args, kwargs, policy)
            except Exception as exc:
                failure = exc
            else:
                if policy.on_success is not None:
                    pending = _engine.first_success(policy, fn, now() - start)
                    if pending is not None:
                        await _engine.drain(_engine.CallRecord(operation, pending=[pending]))
                return result
            return await _retry(policy, fn, args, kwargs, failure, start, operation)
        finally:
            if token is not None:
                _scope.leave(token)

    return retrying


async def _retry(
    policy: Policy,
    fn: Callable[..., Awaitable[T]],
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
            await _engine.drain(record)
        if delay is None:
            raise exc
        await _scope.sleep_async(delay)
        state.prepare_for_next_attempt()
        record.attempt_start = _scope.now()
        try:
            result = await _run_attempt(fn, args, kwargs, policy)
        except Exception as err:
            exc = err
            continue
        _engine.succeeded(policy, record, state.attempt_number, _scope.now() - start)
        await _engine.drain(record)
        return result


class AsyncAttempts:
    """Strictly private: the async iterator of ``attempts()``."""

    __slots__ = ("_run",)

    def __init__(self, run: BlockRun) -> None:
        self._run = run

    def __aiter__(self) -> AsyncIterator[Attempt]:
        return self

    async def __anext__(self) -> Attempt:
        run = self._run
        delay = run.delay()
        if run.state is not None and run.state.retrykit.pending:
            await _engine.drain(run.state.retrykit)
        if delay is None:
            raise StopAsyncIteration
        if run.number:
            await _scope.sleep_async(delay)
        return run.advance()
