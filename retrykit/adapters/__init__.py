"""
Bindings of retrykit policies to code: plain functions, coroutines, blocks (Celery is the
retrykit-celery distribution, ``retrykit_celery``). ``retry`` and ``attempts`` are also
``retrykit.retry`` and ``retrykit.attempts``: they run the attempts and sleep; the policy
decides what each failure gets.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

import tenacity

from retrykit import _decision, _logging
from retrykit._decision import RetryCondition, StopCondition, WaitCondition
from retrykit._errors import ConfigError
from retrykit._loop import operation_name
from retrykit._policy import Policy, PolicyOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

from . import coroutines, functions
from ._source import PolicySource, resolve
from .functions import Attempt, BlockRun, Statistics

P = ParamSpec("P")
P2 = ParamSpec("P2")
S = TypeVar("S")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class RetryOptions(PolicyOptions, total=False):
    """``retry_with()``'s keywords: a policy's options and the decorator's tenacity objects."""

    retry: RetryCondition | None
    wait: WaitCondition | None
    stop: StopCondition | None


class Retried(Protocol[P, T_co]):
    """
    A function or coroutine function decorated by ``retrykit.retry``.

    It is called as the function it wraps (same signature, name and docstring). Not created
    directly: ``@retrykit.retry`` returns one.

    Attributes:
        statistics: The last finished call: ``attempt_number``, ``idle_for``, ``outcome``,
            ``stop_reason``.
    """

    statistics: Statistics
    """The last finished call: ``attempt_number``, ``idle_for``, ``outcome``, ``stop_reason``."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T_co: ...

    def retry_with(self, **overrides: Unpack[RetryOptions]) -> Retried[P, T_co]:
        """
        The same function, retried with *overrides*, for one call or a few.

        Args:
            **overrides: Any option of ``Policy``, and ``retry=``, ``wait=``, ``stop=`` as the
                decorator takes them.

        Returns:
            A new retried function; this one is unchanged.
        """
        ...

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Retried[P, T_co]: ...

    @overload
    def __get__(
        self: Retried[Concatenate[S, P2], T_co], instance: S, owner: type[Any] | None = None
    ) -> Retried[P2, T_co]: ...

    def __get__(self, instance: Any, owner: type[Any] | None = None) -> Any:
        """Bound to an instance, a decorated method drops its first parameter, as functions do."""
        ...


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


def _is_generator(fn: Any) -> bool:
    """Whether calling *fn* makes a generator (sync or async): a function, a partial, or ``__call__``."""
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(type(target), "__call__", None)  # noqa: B004 - a callable object
    return inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target)


def _is_celery_task(obj: Any) -> bool:
    celery_app = sys.modules.get("celery.app.task")
    task_type = getattr(celery_app, "Task", None)
    return task_type is not None and isinstance(obj, task_type)


_RETRIERS = {"tenacity": "tenacity", "backoff": "backoff", "stamina": "stamina"}


def _check_operation(operation: Any) -> None:
    if operation is not None and not (isinstance(operation, str) and operation):
        raise ConfigError(
            "operation", operation, "must be a non-empty str", "pass e.g. operation='fetch_orders'"
        )


def other_retrier(fn: Any) -> str | None:
    """The retry decorator already on *fn* (retrykit, tenacity, stamina, backoff), if any."""
    for _ in range(8):
        if hasattr(fn, _MARKER):
            return "retrykit"
        if isinstance(getattr(fn, "retry", None), tenacity.BaseRetrying):
            return "tenacity"
        globals_ = getattr(fn, "__globals__", None)  # the wrapper was defined in the library
        module = globals_.get("__name__") if isinstance(globals_, dict) else None
        if isinstance(module, str) and module.split(".", 1)[0] in _RETRIERS:
            return _RETRIERS[module.split(".", 1)[0]]
        inner = getattr(fn, "func", None)  # functools.partial
        if inner is None or not callable(inner):
            return None
        fn = inner
    return None


def _decorate(fn: Any, source: PolicySource, operation: str | None) -> Any:
    if isinstance(fn, (staticmethod, classmethod)):
        return type(fn)(_decorate(fn.__func__, source, operation))
    _refuse(fn, operation)
    name = operation or operation_name(fn)
    stats = Statistics()
    if _is_async(fn):
        wrapped: Any = coroutines.wrap(fn, source, name, stats)
    else:
        _check_plain(source.current(), name)
        wrapped = functions.wrap(fn, source, name, stats)
    setattr(wrapped, _MARKER, source)
    wrapped.statistics = stats

    def retry_with(**overrides: Any) -> Any:
        return _decorate(fn, source.derive(dict(overrides)), operation)

    wrapped.retry_with = retry_with
    return wrapped


def _refuse(fn: Any, operation: str | None) -> None:
    """Refuse what ``@retrykit.retry`` cannot retry, saying why and what to do instead."""
    if _is_celery_task(fn):
        raise ConfigError(
            "fn",
            getattr(fn, "name", fn),
            "@retrykit.retry is above @app.task (the wrong order)",
            "use @retrykit_celery.task(policy) in place of @app.task, or put "
            "@retrykit.retry below @app.task on a helper the task calls",
        )
    if isinstance(fn, type):
        raise ConfigError(
            "fn",
            fn.__qualname__,
            "retrykit.retry decorates functions and methods, not classes",
            "decorate the method that does the failing call",
        )
    if not callable(fn):
        raise ConfigError(
            "fn", fn, "retrykit.retry decorates callables", "put @retrykit.retry on a def or async def"
        )
    if _is_generator(fn):
        raise ConfigError(
            "fn",
            operation_name(fn),
            "a generator cannot be retried: a failure after a value was yielded cannot be undone",
            "retry the call that produces the data inside the generator, or collect the items in "
            "a function and retry that",
        )
    other = other_retrier(fn)
    if other is not None:
        raise ConfigError(
            "fn",
            operation_name(fn),
            f"it already has a retry decorator ({other}): two retry authorities",
            "keep one retry decorator on a function",
        )


def _check_plain(policy: Policy, name: str) -> None:
    """What a plain function's policy cannot do: refuse async callbacks, warn of a timeout."""
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
            stacklevel=4,  # _check_plain, _decorate, the decorator, the user's line
        )


@overload
def retry(fn: Callable[P, T], /) -> Retried[P, T]: ...


@overload
def retry(
    policy: Policy | str | None = None,
    /,
    *,
    operation: str | None = None,
    retry: RetryCondition | None = None,
    wait: WaitCondition | None = None,
    stop: StopCondition | None = None,
    **overrides: Unpack[PolicyOptions],
) -> Callable[[Callable[P, T]], Retried[P, T]]: ...


def retry(
    policy: Any = None,
    /,
    *,
    operation: str | None = None,
    retry: Any = None,
    wait: Any = None,
    stop: Any = None,
    **overrides: Any,
) -> Any:
    """
    Retry a function or coroutine function by a policy.

    Use it bare (``@retry``), with a preset name (``@retry("http")``), with a ``Policy``, and
    with keyword overrides of the policy's options
    (``@retry("http", max_attempts=3, on_giveup=alert)``). One decorator serves ``def`` and
    ``async def`` (asyncio and trio), methods, ``staticmethod`` and ``classmethod``. The first
    attempt is a plain call; retrying machinery is built only after a failure.

    tenacity objects combine with the policy: *stop* adds a stop condition, *wait* replaces the
    computed delay, *retry* decides *whether* an outcome is retried, while the policy still
    decides *how*.

    Args:
        policy (Policy | str | None): A preset name (``"http"``, ``"database"``, ...), a
            ``Policy``, or nothing for the ``default`` preset. Used bare, ``@retry``
            receives the function itself here.
        operation: The name of the call in events, log lines and statistics. Default: the
            function's qualified name.
        retry (tenacity.retry_base | None): A tenacity ``retry`` condition that decides
            whether an outcome is retried, as in tenacity (``retry_if_result(...)`` retries
            results, ``policy.retry | ...`` widens, ``policy.retry & ...`` narrows). An outcome
            the policy would not retry itself is retried under the temporary category's
            strategy.
        wait (tenacity.wait.wait_base | None): A tenacity ``wait`` that replaces the computed
            delay; still capped by the category's ``max_delay``, the deadline and a server's
            Retry-After rules.
        stop (tenacity.stop.stop_base | None): A tenacity ``stop`` checked on the whole call
            (tenacity's attempt number), in addition to the policy's own limits.
        **overrides (PolicyOptions): Any option of ``Policy`` by keyword (``max_attempts``,
            ``deadline``, ``strategies``, ``on_retry``, ``on_giveup``, ...), applied over
            *policy*: see ``Policy`` for each.

    Returns:
        A decorator, or used bare the decorated function (a ``Retried``). The decorated
            function has the same signature, a ``retry_with(**overrides)`` method for a
            per-call variant and a ``statistics`` attribute describing its last finished
            call.

    Raises:
        ConfigError: When the decorator is applied: an unknown preset, a bad option, a
            generator function, or a function another retry decorator already wraps.
    """
    if (
        policy is not None
        and not isinstance(policy, (str, Policy))
        and callable(policy)
        and not (isinstance(policy, (tenacity.retry_base, tenacity.stop.stop_base, tenacity.wait.wait_base)))
    ):
        return _decorate(policy, resolve(None, {}), None)
    _check_operation(operation)
    source = resolve(policy, overrides, retry, wait, stop)

    def decorator(fn: Callable[P, T]) -> Retried[P, T]:
        result: Retried[P, T] = _decorate(fn, source, operation)
        return result

    return decorator


class Attempts:
    """
    The attempts of a retried block: ``for attempt in attempts(policy): with attempt: ...``.

    Iterate with ``for`` (or ``async for`` in async code). Each pass of the loop is one attempt;
    the loop ends after a success, or raises the failure retrykit gave up on. Not created
    directly: ``retrykit.attempts()`` returns one.
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
        return functions.SyncAttempts(BlockRun(policy, self._operation, self._source.extras, False))

    def __aiter__(self) -> AsyncIterator[Attempt]:
        source = self._source
        return coroutines.AsyncAttempts(BlockRun(source.current(), self._operation, source.extras, True))


def attempts(
    policy: Policy | str | None = None,
    /,
    *,
    operation: str = "<block>",
    retry: RetryCondition | None = None,
    wait: WaitCondition | None = None,
    stop: StopCondition | None = None,
    **overrides: Unpack[PolicyOptions],
) -> Attempts:
    """
    Retry a block of code: the block form of ``retry``.

    ```python
    for attempt in retrykit.attempts("http"):
        with attempt:
            ...
    ```

    ``async for`` works the same in async code.

    Args:
        policy: A preset name, a ``Policy``, or nothing for the ``default`` preset.
        operation: The name of the block in events, log lines and statistics.
        retry: A tenacity ``retry`` condition, as ``retry()`` takes it.
        wait: A tenacity ``wait`` that replaces the computed delay, as ``retry()`` takes it.
        stop: A tenacity ``stop`` checked on the whole block, as ``retry()`` takes it.
        **overrides: Any option of ``Policy`` by keyword, applied over *policy*.

    Returns:
        The attempts to iterate over.

    Raises:
        ConfigError: An unknown preset or a bad option (when called), or an ``async`` callback
            in a sync ``for`` (when the loop starts).
    """
    _check_operation(operation)
    return Attempts(resolve(policy, dict(overrides), retry, wait, stop), operation)


# --------------------------------------------------------------------------- task queues
# Celery's control-flow exceptions pass through every layer, and log lines inside a task carry its
# id, as soon as Celery is in use (imported), whether or not ``retrykit_celery`` is.

_CELERY_FLOW = (
    "Retry",
    "Ignore",
    "Reject",
    "MaxRetriesExceededError",
    "SoftTimeLimitExceeded",
    "TimeLimitExceeded",
    "WorkerLostError",
    "Terminated",
)
_celery_flow: tuple[type[BaseException], ...] | None = None


def celery_control_flow(exc: BaseException) -> bool:
    """Celery's control-flow exceptions (Retry, Ignore, Reject, time limits): never retried."""
    global _celery_flow
    module = sys.modules.get("celery.exceptions")
    if module is None:
        return False
    if _celery_flow is None:
        found = (getattr(module, name, None) for name in _CELERY_FLOW)
        _celery_flow = tuple(cls for cls in found if isinstance(cls, type))
    return isinstance(exc, _celery_flow)


def celery_task_id() -> dict[str, Any] | None:
    """The id of the Celery task running in this thread, for log lines."""
    state = sys.modules.get("celery._state")
    if state is None:
        return None
    task = state.get_current_task()
    task_id = getattr(getattr(task, "request", None), "id", None)
    return {"task_id": task_id} if isinstance(task_id, str) else None


_decision.register_passthrough(celery_control_flow, builtins=False)  # Celery's classes only
_logging.register_context(celery_task_id)

__all__ = ["Attempt", "Attempts", "Retried", "attempts", "retry"]
