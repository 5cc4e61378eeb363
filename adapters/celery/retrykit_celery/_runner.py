"""The event-loop runner: ``async def`` task bodies from sync code, on every pool (gevent, eventlet)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import importlib
import inspect
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from celery._state import get_current_task

from retrykit import ConfigError

_STATE: Any = importlib.import_module("celery._state")  # its _task_stack, as Task.__call__ uses it
_Outcome = tuple[bool, Any]
"""``(True, value)`` or ``(False, exception)``: a thread pool that sees no exception prints no traceback."""


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """
    Run *coroutine* to completion from sync code, on a fresh event loop.

    Never ``asyncio.get_event_loop()``; from a thread whose loop is running, in a helper thread.
    Under gevent or eventlet (greenlets share one OS thread) the loop runs in a real OS thread of
    the hub's thread pool while the calling greenlet waits cooperatively. In another thread the
    body still sees its task's ``self.request`` and ``current_task``. ``task()`` uses it for
    ``async def`` tasks.

    Args:
        coroutine: The coroutine object to run.

    Returns:
        What the coroutine returned; what it raised is raised.
    """
    offload = _green_offload()
    if offload is not None:
        ok, value = offload(_in_thread(coroutine))
    else:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _run_fresh(coroutine)
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="retrykit-async") as pool:
            ok, value = pool.submit(_in_thread(coroutine)).result()
    if ok:
        return value
    raise value


def resolve_coroutine(value: object) -> object:
    """*value*, or what it returns when it is a coroutine (an ``async def`` body's call)."""
    return run_coroutine(value) if inspect.iscoroutine(value) else value


def _green_offload() -> Callable[[Callable[[], _Outcome]], _Outcome] | None:
    """A call that runs a function in a real OS thread, if threading is monkey-patched (gevent, eventlet)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return importlib.import_module("gevent").get_hub().threadpool.apply  # type: ignore[no-any-return]
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return importlib.import_module("eventlet.tpool").execute  # type: ignore[no-any-return]
    return None


def _in_thread(coroutine: Coroutine[Any, Any, Any]) -> Callable[[], _Outcome]:
    """
    ``_run_fresh(coroutine)`` for another thread, in this one's context, with this thread's Celery
    task and request on that thread's stacks.
    """
    context = contextvars.copy_context()
    task: Any = get_current_task()  # None outside a task, whatever the stubs say
    request = task.request if task is not None else None

    def run() -> _Outcome:
        if task is not None:
            _STATE._task_stack.push(task)
            task.request_stack.push(request)
        try:
            return True, context.run(_run_fresh, coroutine)
        except BaseException as exc:
            return False, _greenlet_error(coroutine, exc)
        finally:
            if task is not None:
                task.request_stack.pop()
                _STATE._task_stack.pop()

    return run


def _greenlet_error(coroutine: Coroutine[Any, Any, Any], exc: BaseException) -> BaseException:
    """*exc*, or a ``ConfigError`` saying what it means when the greenlet hub refused a foreign thread."""
    if type(exc).__module__ == "greenlet" and type(exc).__name__ == "error":
        return ConfigError(
            "async def task",
            getattr(coroutine, "__qualname__", "coroutine"),
            f"used an object of the greenlet hub from its event loop's OS thread ({exc})",
            "create the sockets and clients the coroutine uses inside it",
        )
    return exc


def _run_fresh(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run``; another loop running in this OS thread is a configuration error, never retried."""
    if asyncio._get_running_loop() is not None:
        coroutine.close()
        pool = next((name for name in ("gevent", "eventlet") if name in sys.modules), None)
        raise ConfigError(
            "async def task",
            getattr(coroutine, "__qualname__", "coroutine"),
            "cannot run: another event loop is running in this OS thread"
            + (f" (greenlets of the {pool} pool share one thread)" if pool else ""),
            f"monkey-patch threading before importing the task (celery -P {pool or 'gevent'} does), "
            "or run the worker with -P prefork, threads or solo",
        )
    return asyncio.run(coroutine)
