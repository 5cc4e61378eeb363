"""Binding a policy to a task: ``task()``, ``task_options()``, ``app_options()``, ``policy_of()``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import celery

from retrykit import ConfigError, Policy

from ._bridge import policy_from_celery
from ._checks import builtin, check_options, max_retries_of, named_policy, policy_named
from ._options import TaskOptions
from ._runner import run_coroutine
from ._task import RetrykitTask

if TYPE_CHECKING:
    from typing_extensions import Unpack


def task_options(policy: Policy | str | None = "default", **options: Unpack[TaskOptions]) -> dict[str, Any]:
    """
    The Celery task options that go with a policy: ``@app.task(**task_options("tracking"))``.

    It binds the policy (``base=RetrykitTask``, ``retrykit_policy``) and applies the reliable
    defaults: ``acks_late=True`` (a message is acknowledged after the attempt, so a crash does not
    lose it), ``reject_on_worker_lost=True`` (a killed child's message is delivered again), and
    ``max_retries`` consistent with the policy.

    Args:
        policy: A preset name or a ``Policy``.
        **options: Celery task options (``TaskOptions``), added on top; they win.

    Returns:
        The options, for ``@app.task(**...)``.

    Raises:
        ConfigError: An unknown preset, or one of Celery's own retry options (``autoretry_for``,
            ``retry_backoff``, ...): two retry authorities.
    """
    resolved = policy_named(policy)
    given: dict[str, Any] = dict(options)  # checked here too: untyped callers can pass anything
    check_options(given)
    result: dict[str, Any] = {
        "base": RetrykitTask,
        "retrykit_policy": policy if policy is not None else "default",
        "acks_late": True,
        "reject_on_worker_lost": True,
        "max_retries": max_retries_of(resolved),
    }
    result.update(given)
    return result


def policy_of(task: object) -> Policy:
    """
    The policy *task* (a Celery task or task class) runs under: the one it or its app names,
    else the one ``policy_from_celery`` makes of its Celery options (what it would run under if
    switched over). ``retrykit explain module:task`` prints it.

    Args:
        task: A Celery task or task class.

    Returns:
        The ``Policy`` it runs under (or would, once switched over).

    Raises:
        ConfigError: *task* is not a Celery task.
    """
    cls: type = task if isinstance(task, type) else task.__class__  # a lazy proxy forwards __class__
    if not issubclass(cls, celery.Task):
        raise ConfigError("task", task, "is not a Celery task", "pass a task (@app.task) or a task class")
    named = (
        None
        if not issubclass(cls, RetrykitTask) or builtin(cls)
        else named_policy(cls, getattr(task, "app", None), RetrykitTask)
    )
    if named is not None:
        return policy_named(named)
    return policy_from_celery(task)


def app_options() -> dict[str, Any]:
    """
    App settings for reliable retries: late acks, redelivery on worker loss, prefetch 1.

    Returns:
        ``task_acks_late``, ``task_reject_on_worker_lost`` and ``worker_prefetch_multiplier``,
            for ``app.conf.update(app_options())``.
    """
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
    }


def task(
    policy: Policy | str | None = "default",
    *,
    app: celery.Celery | None = None,
    **options: Unpack[TaskOptions],
) -> Callable[[Callable[..., Any]], Any]:
    """
    Register a Celery task retried by *policy*, in one step: ``@task("tracking", app=app)``.

    Use it in place of ``@app.task`` (or ``@shared_task``). ``async def`` functions work: each
    call runs on a fresh event loop (``run_coroutine``).

    Args:
        policy: A preset name or a ``Policy``.
        app: The Celery app; the task is registered on it only unless ``shared=True``. Without
            one, the task is a ``shared_task``.
        **options: Celery task options (``TaskOptions``: ``bind=True``, ``name=``, ``queue=``,
            ...), on top of ``task_options(policy)``.

    Returns:
        A decorator that makes the function a task.

    Raises:
        ConfigError: Used without parentheses, on a function already decorated by
            ``@retrykit.retry`` or already a task, a function taking ``self`` without
            ``bind=True``, or Celery's own retry options.
    """
    given: object = policy  # untyped callers write @task without parentheses
    if callable(given) and not isinstance(given, Policy):
        raise ConfigError(
            "policy",
            policy,
            "@task needs to be called: @task() or @task('tracking')",
            "write @retrykit_celery.task(...) with parentheses",
        )
    merged = task_options(policy, **options)

    def decorator(fn: Callable[..., Any]) -> Any:
        _check_function(fn, merged)
        target = _sync(fn)
        register: Any = celery.shared_task if app is None else app.task  # Celery's options, untyped
        extra = {} if app is None else {"shared": False}  # on this app only
        return register(**extra, **merged)(target)

    return decorator


def _sync(fn: Callable[..., Any]) -> Callable[..., Any]:
    """*fn*, or for an ``async def`` a function that runs its coroutine to completion."""
    if not inspect.iscoroutinefunction(fn):
        return fn

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return run_coroutine(fn(*args, **kwargs))

    return run


def _check_function(fn: Callable[..., Any], options: dict[str, Any]) -> None:
    """Refuse a function already retried or already a task, or taking ``self`` unbound."""
    if hasattr(fn, "__retrykit__"):
        raise ConfigError(
            "fn",
            getattr(fn, "__qualname__", fn),
            "it already has @retrykit.retry and gets a task policy (applied twice)",
            "drop @retrykit.retry; the task's policy retries it",
        )
    task_class: type = celery.Task
    if isinstance(fn, task_class):
        name: object = getattr(fn, "name", fn)
        raise ConfigError(
            "fn",
            name,
            "it is already a Celery task (decorators in the wrong order)",
            "use this decorator in place of @app.task, not on top of it",
        )
    _check_bind(fn, options)


def _check_bind(fn: Callable[..., Any], options: dict[str, Any]) -> None:
    """A ``def task(self, ...)`` without ``bind=True`` fails at ``.delay()``: say so now."""
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return
    if params and params[0] == "self" and not options.get("bind"):
        raise ConfigError(
            "bind",
            options.get("bind", False),
            f"task function {getattr(fn, '__qualname__', fn)} takes self but the task is not bound "
            "(Celery would pass your first argument as self)",
            "add bind=True: @retrykit_celery.task(policy, app=app, bind=True)",
        )
