"""
Context-local state: the active retry scope (deadline, who owns retries) and the test modes.

Everything here lives in ``contextvars``, so it follows the code into asyncio tasks, trio
nurseries, ``asyncio.to_thread`` and anyio worker threads, and never leaks between requests.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

import anyio

_monotonic = time.monotonic


@dataclass(frozen=True, slots=True)
class Scope:
    """An enclosing retrying call: its absolute *deadline* (on ``now()``'s clock) and *owner*."""

    deadline: float | None
    owner: str | None = None
    """``"celery"`` inside a Celery task bound to a policy: inner layers make one attempt."""


_SCOPE: ContextVar[Scope | None] = ContextVar("retrykit_scope", default=None)


@dataclass(slots=True)
class _VirtualClock:
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class TestMode:
    """Strictly private: what ``retrykit.testing`` switched on in this context."""

    no_wait: bool = False
    no_retry: bool = False
    scale: float | None = None
    clock: _VirtualClock = field(default_factory=_VirtualClock)


_TESTING: ContextVar[TestMode | None] = ContextVar("retrykit_testing", default=None)


def now() -> float:
    """Monotonic seconds; under ``no_wait()``/``scaled_time()`` the skipped sleeps count too."""
    mode = _TESTING.get()
    if mode is None:
        return _monotonic()
    return _monotonic() + mode.clock.offset


def remaining() -> float | None:
    """
    Seconds left before the innermost enclosing retrykit deadline, or ``None`` if there is none.

    Pass it on as a timeout to the calls you make, so they stop when the retrying call must.
    """
    scope = _SCOPE.get()
    if scope is None or scope.deadline is None:
        return None
    return max(0.0, scope.deadline - now())


def enter(deadline: float | None, start: float, owner: str | None = None) -> object:
    """Open a scope with a relative *deadline* from *start*, nested in the current one."""
    outer = _SCOPE.get()
    absolute = None if deadline is None else start + deadline
    if outer is not None:
        if outer.deadline is not None and (absolute is None or outer.deadline < absolute):
            absolute = outer.deadline
        if owner is None:
            owner = outer.owner
    return _SCOPE.set(Scope(absolute, owner))


def leave(token: object) -> None:
    """Close the scope opened by ``enter``."""
    _SCOPE.reset(token)  # type: ignore[arg-type]


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
    mode = _TESTING.get()
    if mode is not None:
        delay = _skip(mode, delay)
    if delay > 0:
        time.sleep(delay)


async def sleep_async(delay: float) -> None:
    """Sleep *delay* seconds through anyio (asyncio or trio); always a cancellation checkpoint."""
    mode = _TESTING.get()
    if mode is not None:
        delay = _skip(mode, delay)
    await anyio.sleep(delay)
