"""The driver for ``async def`` and the async block form (asyncio and trio): await, sleep."""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from retrykit import _scope
from retrykit._loop import Call, drain
from retrykit._policy import Policy

from ._source import PolicySource
from .functions import _FIRST_TRY, Attempt, BlockRun, Statistics, Success, begin, first_result, new_call

T = TypeVar("T")


def _cancelling() -> bool:
    """Whether the running asyncio task is being cancelled (a body may have converted it)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no asyncio loop runs (trio)
        return False
    return task is not None and task.cancelling() > 0


def _timeout(policy: Policy, scope: _scope.Scope) -> float | None:
    """The bound on one attempt: ``attempt_timeout``, and never past the deadline."""
    timeout = policy.attempt_timeout
    deadline = scope.deadline
    if deadline is not None:
        left = max(0.0, deadline - _scope.now())
        timeout = left if timeout is None else min(timeout, left)
    return timeout


async def _bounded(
    fn: Callable[..., Awaitable[T]], args: Any, kwargs: Any, policy: Policy, scope: _scope.Scope
) -> T:
    """Await one attempt, cut by ``_timeout`` (anyio, so asyncio and trio alike)."""
    limit = _timeout(policy, scope)
    if limit is None:
        return await fn(*args, **kwargs)
    import anyio

    with anyio.fail_after(limit):
        return await fn(*args, **kwargs)


def wrap(
    fn: Callable[..., Awaitable[T]], source: PolicySource, operation: str, stats: Statistics
) -> Callable[..., Awaitable[T]]:
    """
    Wrap a coroutine function: the first attempt is a bare await; the call is built at a failure.
    One coroutine runs every attempt (no nested coroutine per call: 10,000 calls in flight hold
    one frame each).
    """
    state, fixed, extras = source.state, source.fixed, source.extras
    plain = extras is None or extras.retry is None  # results need no tenacity condition

    @functools.wraps(fn)
    async def retrying(*args: Any, **kwargs: Any) -> T:
        policy, quiet = fixed or state()
        start, scope = begin(policy, operation)
        bounded = policy.attempt_timeout is not None or scope.deadline is not None
        call: Call | None = None
        token = _scope._SCOPE.set(scope)
        try:
            while True:
                try:
                    result = await (
                        _bounded(fn, args, kwargs, policy, scope) if bounded else fn(*args, **kwargs)
                    )
                except Exception as exc:
                    if _cancelling():
                        raise
                    call = call or new_call(policy, operation, start, scope, extras)
                    delay = call.fail(exc)
                    if delay is None:
                        await _end(call, stats, "raised")
                        raise
                else:
                    if call is None and quiet:  # a first-try success told to nobody: nothing built
                        stats.last = _FIRST_TRY
                        return result
                    if call is None:
                        first = first_result(policy, operation, start, scope, extras, result, stats, plain)
                        if isinstance(first, Success):
                            if first.pending is not None:
                                await drain([first.pending])
                            return result
                        call, delay = first
                    else:
                        delay = call.returned(result)
                    if delay is None:
                        await _end(call, stats, "returned")
                        return result
                if call.pending:
                    await call.drain()
                await _scope.sleep_async(delay)
                if not call.begin():  # the deadline passed, or the breaker opened, while it slept
                    return await _last(call, stats)  # type: ignore[no-any-return]
        finally:
            _scope._SCOPE.reset(token)

    return retrying


async def _end(call: Call, stats: Statistics, outcome: str) -> None:
    if call.pending:
        await call.drain()
    stats.end(call, outcome)


async def _last(call: Call, stats: Statistics) -> Any:
    """End the call with its last outcome (the deadline passed while it slept)."""
    await _end(call, stats, "raised" if call.last_failed else "returned")
    return call.end_with_last()


class AsyncAttempts:
    """The async iterator of ``attempts()``."""

    __slots__ = ("_run",)

    def __init__(self, run: BlockRun) -> None:
        self._run = run

    def __aiter__(self) -> AsyncIterator[Attempt]:
        return self

    async def __anext__(self) -> Attempt:
        run = self._run
        delay = run.next()
        if run.call is not None:
            await run.call.drain()
        if delay is None:
            raise StopAsyncIteration
        if run.number:
            await _scope.sleep_async(delay)
        attempt = run.advance()
        if attempt is None:
            run.last()
            raise StopAsyncIteration  # pragma: no cover - last() raises: blocks end with failures
        return attempt
