"""
How each library sleeps in the benchmarks: the one place that decides it, per library.

Two modes:

``noop``
    The same no-op (it only counts its calls) replaces every library's sleep: tenacity gets it
    through its ``sleep=`` argument, the others by patching the exact module attribute their sleep
    is looked up through (``SLEEPS`` below). The harness asserts the no-op was called exactly once
    per retry, so a library that slips past it fails the run instead of quietly sleeping.
``real``
    Every library sleeps its own way (the per-retry rows ask for a 0 s delay).

Patch points are written ``"module:attribute.path"`` and resolved when they are patched, never at
import, so they follow whatever the engine imports at run time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

NOOP = "noop"
REAL = "real"
MODES = (NOOP, REAL)

calls = [0]
"""How many times the no-op (or, in ``spy``, the counting pass-through) was called."""


def noop_sleep(seconds: float) -> None:
    """The no-op every library's sync sleep is replaced by."""
    calls[0] += 1


async def noop_sleep_async(seconds: float) -> None:
    """The no-op every library's async sleep is replaced by (it never suspends)."""
    calls[0] += 1


def retrykit_sleep(is_async: bool) -> str:
    """
    Where retrykit's engine looks its sleep up. Update this when the engine changes (say, to
    ``"retrykit.adapters.coroutines:asyncio.sleep"`` if it awaits ``asyncio.sleep`` directly):
    the harness fails with "slipped past the no-op" until it is right.
    """
    if is_async:
        return "asyncio:sleep"  # _scope.sleep_async on asyncio: ``await sys.modules["asyncio"].sleep``
    return "retrykit._scope:time.sleep"  # _scope.sleep_sync: ``time.sleep(delay)`` if delay > 0


SLEEPS: dict[str, Callable[[bool], str]] = {
    # the harness's own loop calls ``time.sleep`` / ``asyncio.sleep``
    "loop": lambda is_async: "asyncio:sleep" if is_async else "time:sleep",
    # backoff/_sync.py: ``time.sleep(seconds)``; backoff/_async.py: ``await asyncio.sleep(seconds)``
    "backoff": lambda is_async: "backoff._async:asyncio.sleep" if is_async else "backoff._sync:time.sleep",
    # stamina: sync Retrying keeps tenacity's default sleep (tenacity.nap.sleep -> time.sleep);
    # async passes ``sleep=_smart_sleep``, looked up in stamina._core on every call
    "stamina": lambda is_async: "stamina._core:_smart_sleep" if is_async else "tenacity.nap:time.sleep",
    # tenacity: the no-op goes in through ``sleep=`` (SLEEP_ARGUMENT); these are its own defaults,
    # tenacity.nap.sleep -> time.sleep and _portable_async_sleep -> asyncio.sleep, for ``spy``
    "tenacity": lambda is_async: "asyncio:sleep" if is_async else "tenacity.nap:time.sleep",
    "retrykit": retrykit_sleep,
}
SLEEP_ARGUMENT = frozenset({"tenacity"})
"""Libraries whose no-op is passed as an argument at decoration, not patched in."""


def sleep_argument(library: str, mode: str, is_async: bool) -> dict[str, Any]:
    """Keyword arguments for *library*'s decorator: the no-op, where it takes one as an argument."""
    if mode == NOOP and library in SLEEP_ARGUMENT:
        return {"sleep": noop_sleep_async if is_async else noop_sleep}
    return {}


def _resolve(point: str) -> tuple[Any, str]:
    """``"module:a.b"`` -> (the object ``module.a``, ``"b"``), looked up now."""
    module, _, path = point.partition(":")
    owner: Any = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    getattr(owner, name)  # it must exist: a stale patch point fails here, loudly
    return owner, name


@contextmanager
def _patched(point: str, replacement: Callable[[Any], Any]) -> Iterator[None]:
    owner, name = _resolve(point)
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def installed(library: str, mode: str, is_async: bool) -> Iterator[None]:
    """*library* sleeps as *mode* says inside the block (the no-op is patched in for ``noop``)."""
    if mode == REAL or library in SLEEP_ARGUMENT:
        yield
        return
    with _patched(SLEEPS[library](is_async), noop_sleep_async if is_async else noop_sleep):
        yield


@contextmanager
def spy(library: str, is_async: bool) -> Iterator[None]:
    """Count *library*'s real sleeps in ``calls`` (a pass-through at its patch point); untimed use only."""
    owner, name = _resolve(SLEEPS[library](is_async))
    original = getattr(owner, name)

    def counting(seconds: float) -> Any:
        calls[0] += 1
        return original(seconds)  # a coroutine for the async sleeps: the caller awaits it

    with _patched(SLEEPS[library](is_async), counting):
        yield


@contextmanager
def counted(expected: int | None, what: str) -> Iterator[None]:
    """Assert the no-op (or spy) is called *expected* times in the block (``None``: do not check)."""
    before = calls[0]
    yield
    seen = calls[0] - before
    if expected is not None and seen != expected:
        raise AssertionError(
            f"{what}: the sleep was called {seen} times, expected {expected}: the library slipped "
            "past the no-op (update benchmarks/sleeping.py: SLEEPS / retrykit_sleep)"
        )
