"""
Bindings of retrykit policies to code: plain functions, coroutines, blocks (and Celery, in
``retrykit.adapters.celery``). They run attempts and sleep; every decision is the core's.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ParamSpec, TypeVar, overload

import tenacity

from retrykit._engine import operation_name
from retrykit._errors import ConfigError
from retrykit._policy import Policy

from . import coroutines, functions
from ._source import PolicySource, resolve
from .functions import Attempt, BlockRun

P = ParamSpec("P")
T = TypeVar("T")

_MARKER = "__retrykit__"


def _is_async(fn: Any) -> bool:
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    return inspect.iscoroutinefunction(target) or (
        not inspect.isfunction(target)
        and not inspect.ismethod(target)
        and inspect.iscoroutinefunction(getattr(target, "__call__", None))  # noqa: B004
    )


def _is_celery_task(obj: Any) -> bool:
    celery_app = sys.modules.get("celery.app.task")
    task_type = getattr(celery_app, "Task", None)
    return task_type is not None and isinstance(obj, task_type)


def _decorate(fn: Any, source: PolicySource, operation: str | None) -> Any:
    if isinstance(fn, (staticmethod, classmethod)):
        return type(fn)(_decorate(fn.__func__, source, operation))
    if _is_celery_task(fn):
        raise ConfigError(
            "fn",
            getattr(fn, "name", fn),
            "@retrykit.retry is above @app.task (the wrong order)",
            "use @retrykit.adapters.celery.task(policy) in place of @app.task, or put "
            "@retrykit.retry below @app.task on a helper the task calls",
        )
    if isinstance(fn, type):
        raise TypeError(
            f"retrykit.retry decorates functions and methods, not classes ({fn.__qualname__}); "
            "decorate the method that does the failing call"
        )
    if not callable(fn):
        raise ConfigError(
            "fn", fn, "retrykit.retry decorates callables", "put @retrykit.retry on a def or async def"
        )
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"retrykit.retry cannot retry the generator function {operation_name(fn)}: a "
            "failure after a value was yielded cannot be undone. Retry the call that produces "
            "the data inside the generator, or collect the items in a function and retry that"
        )
    if hasattr(fn, _MARKER) or isinstance(getattr(fn, "retry", None), tenacity.BaseRetrying):
        raise ConfigError(
            "fn",
            operation_name(fn),
            "it already has a retry decorator (two retry authorities)",
            "keep one retry decorator on a function",
        )
    policy = source.current()
    name = operation or operation_name(fn)
    if _is_async(fn):
        wrapped: Any = coroutines.wrap(fn, source, name)
    else:
        if policy.async_callbacks:
            raise ConfigError(
                policy.async_callbacks[0],
                getattr(policy, policy.async_callbacks[0]),
                f"an async callback cannot run for the plain function {name}",
                "use a plain function as callback, or make the decorated function async",
            )
        if policy.attempt_timeout is not None:
            warnings.warn(
                f"attempt_timeout={policy.attempt_timeout} is not enforced for the plain "
                f"function {name}: Python cannot interrupt a running function. Pass a timeout "
                "to the call you make, or make the function async",
                RuntimeWarning,
                stacklevel=3,
            )
        wrapped = functions.wrap(fn, source, name)
    setattr(wrapped, _MARKER, source)
    return wrapped


@overload
def retry(fn: Callable[P, T], /) -> Callable[P, T]: ...


@overload
def retry(
    policy: Policy | str | None = None, /, *, operation: str | None = None, **overrides: Any
) -> Callable[[Callable[P, T]], Callable[P, T]]: ...


def retry(policy: Any = None, /, *, operation: str | None = None, **overrides: Any) -> Any:
    """
    Retry a function or coroutine function by a policy.

    ``@retry``, ``@retry()``, ``@retry("tracking")``, ``@retry(policy)``, with keyword
    overrides of the policy's options (``@retry("http", max_attempts=3, on_giveup=alert)``).
    The first attempt is a plain call; retrying machinery is built only after a failure.
    *operation* names the call in events (default: the function's qualified name).
    """
    if (
        policy is not None
        and not isinstance(policy, (str, Policy))
        and callable(policy)
        and not (isinstance(policy, (tenacity.retry_base, tenacity.stop.stop_base, tenacity.wait.wait_base)))
    ):
        if overrides or operation is not None:  # pragma: no cover - impossible positionally
            raise ConfigError("policy", policy, "cannot combine a function with options", "")
        return _decorate(policy, resolve(None, {}), None)
    source = resolve(policy, overrides)

    def decorator(fn: Callable[P, T]) -> Callable[P, T]:
        result: Callable[P, T] = _decorate(fn, source, operation)
        return result

    return decorator


class Attempts:
    """
    Retry a block of code: ``for attempt in attempts(policy): with attempt: ...`` (or
    ``async for``). Each pass of the loop is one attempt; the loop ends after a success.
    """

    __slots__ = ("_operation", "_source")

    def __init__(self, source: PolicySource, operation: str) -> None:
        self._source = source
        self._operation = operation

    def __iter__(self) -> Iterator[Attempt]:
        policy = self._source.current()
        if policy.async_callbacks:
            raise ConfigError(
                policy.async_callbacks[0],
                getattr(policy, policy.async_callbacks[0]),
                "an async callback cannot run in a sync block",
                "use async for, or a plain callback",
            )
        return functions.SyncAttempts(BlockRun(policy, self._operation))

    def __aiter__(self) -> AsyncIterator[Attempt]:
        return coroutines.AsyncAttempts(BlockRun(self._source.current(), self._operation))


def attempts(
    policy: Policy | str | None = None, /, *, operation: str = "<block>", **overrides: Any
) -> Attempts:
    """The block form of ``retry``: ``for attempt in retrykit.attempts("http"): with attempt: ...``."""
    return Attempts(resolve(policy, overrides), operation)


__all__ = ["Attempt", "Attempts", "attempts", "retry"]
