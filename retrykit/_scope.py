"""
Context-local state: the active retry scope (deadline, who owns retries) and the test modes.

Everything here lives in ``contextvars``, so it follows the code into asyncio tasks, trio
nurseries, ``asyncio.to_thread`` and anyio worker threads, and never leaks between requests.
The one exception is the process-wide test mode (``retrykit.testing.set_testing``), which holds
in every thread of the process wherever no context-local test mode is set.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import NamedTuple

_monotonic = time.monotonic


class Scope(NamedTuple):
    """
    A retrying call in progress. Every retrying call opens one (a tuple: cheap, and its identity
    names the call); the deadline and the owner are inherited from the enclosing scope.
    """

    outer: Scope | None
    """The enclosing call's scope (None at the top)."""
    deadline: float | None
    """The absolute deadline on ``now()``'s clock (None: none)."""
    owner: str | None
    """Set by an adapter whose layer owns the retries (a task queue's task): nested layers then
    make one attempt and let the failure through."""


TOP = Scope(None, None, None)
"""The scope of a call with no enclosing call, no deadline and no owner."""

_SCOPE: ContextVar[Scope | None] = ContextVar("retrykit_scope", default=None)


@dataclass(slots=True)
class _VirtualClock:
    """The offset a test mode adds to the clock (virtual sleeps advance it)."""

    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class TestMode:
    """Strictly private: what ``retrykit.testing`` switched on in this context."""

    no_wait: bool = False
    no_retry: bool = False
    scale: float | None = None
    clock: _VirtualClock = field(default_factory=_VirtualClock)


class _ThreadClock(_VirtualClock):
    """The process-wide test mode's clock: skipped sleeps count in the thread that skipped them."""

    __slots__ = ("_local",)

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def offset(self) -> float:
        value: float = getattr(self._local, "offset", 0.0)
        return value

    @offset.setter
    def offset(self, value: float) -> None:
        self._local.offset = value


class _TestingVar:
    """
    The test mode in force: the context's (``no_wait()``, ``no_retry()``, ...), else the
    process-wide one (``set_testing()``), else ``None``. Reads like the ``ContextVar`` it wraps.
    """

    __slots__ = ("_var", "process")

    def __init__(self) -> None:
        self._var: ContextVar[TestMode | None] = ContextVar("retrykit_testing", default=None)
        self.process: TestMode | None = None

    def get(self) -> TestMode | None:
        mode = self._var.get()
        return self.process if mode is None else mode

    def set(self, mode: TestMode | None) -> Token[TestMode | None]:
        return self._var.set(mode)

    def reset(self, token: Token[TestMode | None]) -> None:
        self._var.reset(token)


_TESTING = _TestingVar()
_testing_here = _TESTING._var.get  # (read directly on the hot paths: one call less)


def testing_mode() -> TestMode | None:
    """The test mode in force: this context's, else the process-wide one, else None."""
    mode = _testing_here()
    return _TESTING.process if mode is None else mode


def now() -> float:
    """Monotonic seconds; under ``no_wait()``/``scaled_time()`` the skipped sleeps count too."""
    mode = _testing_here()
    if mode is None:
        mode = _TESTING.process
        if mode is None:
            return _monotonic()
    return _monotonic() + mode.clock.offset


def virtual(raw: float) -> float:
    """A reading of the raw monotonic clock on ``now()``'s clock (test modes add skipped sleeps)."""
    mode = testing_mode()
    return raw if mode is None else raw + mode.clock.offset


def remaining() -> float | None:
    """
    Seconds left before the innermost enclosing retrykit deadline.

    Pass it on as a timeout to the calls you make, so they stop when the retrying call must.

    Returns:
        The seconds left (never negative), or ``None`` outside a retrying call with a deadline.
    """
    scope = _SCOPE.get()
    if scope is None or scope.deadline is None:
        return None
    return max(0.0, scope.deadline - now())


def scope(deadline: float | None, start: float, owner: str | None = None) -> Scope:
    """A new scope nested in the current one, with a *deadline* relative to *start*."""
    outer = _SCOPE.get()
    absolute = None if deadline is None else start + deadline
    if outer is not None:
        inherited = outer.deadline
        if inherited is not None and (absolute is None or inherited < absolute):
            absolute = inherited
        if owner is None:
            owner = outer.owner
    return Scope(outer, absolute, owner)


def enter(deadline: float | None, start: float, owner: str | None = None) -> Token[Scope | None]:
    """Open a scope with a relative *deadline* from *start*, nested in the current one."""
    return _SCOPE.set(scope(deadline, start, owner))


def leave(token: Token[Scope | None]) -> None:
    """Close the scope opened by ``enter``."""
    _SCOPE.reset(token)


def _skip(mode: TestMode, delay: float) -> float:
    """Account for a sleep under a test mode; return how long to really sleep."""
    if mode.no_wait:
        mode.clock.offset += delay
        return 0.0
    if mode.scale is not None:
        real = delay * mode.scale
        mode.clock.offset += delay - real
        return real
    return delay


def sleep_sync(delay: float) -> None:
    """Sleep *delay* seconds (or the test mode's version of it)."""
    mode = _testing_here()
    if mode is None:
        mode = _TESTING.process
    if mode is not None:
        delay = _skip(mode, delay)
    if delay > 0:
        time.sleep(delay)


def _on_trio() -> bool:
    if "trio" not in sys.modules:
        return False  # trio cannot be running if it was never imported
    import sniffio

    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


def sleep_async(delay: float) -> Awaitable[None]:
    """
    The running loop's own sleep of *delay* seconds (or the test mode's version of it), to await:
    ``trio.sleep(...)`` or ``asyncio.sleep(...)`` itself, no coroutine around it; always a
    cancellation point.
    """
    mode = _testing_here()
    if mode is None:
        mode = _TESTING.process
    if mode is not None:
        delay = _skip(mode, delay)
    if "trio" in sys.modules and _on_trio():
        import trio

        return trio.sleep(delay)  # noqa: ASYNC105 - the caller awaits it
    sleep: Callable[[float], Awaitable[None]] = sys.modules["asyncio"].sleep  # asyncio runs
    return sleep(delay)
