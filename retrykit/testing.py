"""
Test helpers: no waiting, no retrying, a recorder, settings that reset, and a pytest plugin.

``no_wait()``, ``no_retry()``, ``scaled_time()`` and ``record()`` are context-local (a
``ContextVar``): they hold for the code run inside the ``with`` block, including asyncio tasks,
trio nurseries and ``asyncio.to_thread``, and never for a test running beside it, nor for a
``threading.Thread`` or a ``ThreadPoolExecutor`` worker (those start from an empty context).
``set_testing()`` is the process-wide switch for those: it holds in every thread.

Under ``no_wait()`` sleeps are skipped but counted on retrykit's clock, so deadlines behave as
if the time had passed: a 10 s deadline still stops a schedule of 4 s + 8 s waits.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import cast

from . import _config, _events, _layers, _overload_memory, _overload_redis, _policy, _scope, _stats
from ._classify import Classification
from ._events import AttemptFailed, Event, GaveUp, RetryScheduled, Succeeded

__all__ = [
    "Recorder",
    "Testing",
    "isolated",
    "no_retry",
    "no_wait",
    "record",
    "reset",
    "scaled_time",
    "set_testing",
]


@contextlib.contextmanager
def _mode(**changes: object) -> Iterator[None]:
    current = _scope._TESTING.get() or _scope.TestMode()
    token = _scope._TESTING.set(replace(current, **changes))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _scope._TESTING.reset(token)


def no_wait() -> contextlib.AbstractContextManager[None]:
    """
    Skip retrykit's sleeps in this context; they still count on its clock, for deadlines.

    Returns:
        A context manager. It holds for the ``with`` block and what it starts in that context
            (asyncio tasks, trio nurseries, ``asyncio.to_thread``).
    """
    return _mode(no_wait=True, scale=None)


def no_retry() -> contextlib.AbstractContextManager[None]:
    """
    Every retrykit layer in this context makes one attempt and gives up, with its note.

    Returns:
        A context manager, context-local as ``no_wait()``'s.
    """
    return _mode(no_retry=True)


def scaled_time(factor: float) -> contextlib.AbstractContextManager[None]:
    """
    Really sleep, but *factor* times as long; deadlines still see the full time.

    Args:
        factor: The scale, greater than 0 and at most 1 (``0.1``: ten times shorter).

    Returns:
        A context manager, context-local as ``no_wait()``'s.

    Raises:
        ConfigError: A factor outside (0, 1].
    """
    if not (isinstance(factor, (int, float)) and 0 < factor <= 1):
        from ._errors import ConfigError

        raise ConfigError("factor", factor, "must be in (0, 1]", "pass e.g. 0.01")
    return _mode(scale=float(factor), no_wait=False)


@dataclass
class Recorder:
    """
    Every retrykit event emitted in the recording context, in order.

    ``record()`` and ``set_testing(record=True)`` give you one; its properties sort the events.

    Args:
        events: Events to start with (usually none).
    """

    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    @property
    def failures(self) -> list[AttemptFailed]:
        """Each failed attempt, with its classification."""
        return [e for e in self.events if isinstance(e, AttemptFailed)]

    @property
    def classifications(self) -> list[Classification]:
        """The classification of each failed attempt."""
        return [e.classification for e in self.failures]

    @property
    def sleeps(self) -> list[float]:
        """The delay before each retry."""
        return [e.delay for e in self.events if isinstance(e, RetryScheduled)]

    @property
    def retries(self) -> list[RetryScheduled]:
        """Each scheduled retry."""
        return [e for e in self.events if isinstance(e, RetryScheduled)]

    @property
    def gave_up(self) -> list[GaveUp]:
        """Each give-up."""
        return [e for e in self.events if isinstance(e, GaveUp)]

    @property
    def successes(self) -> list[Succeeded]:
        """Each success after at least one failure."""
        return [e for e in self.events if isinstance(e, Succeeded)]

    def attempts(self, operation: str | None = None) -> int:
        """How many attempts failed (for *operation*, if given)."""
        return sum(1 for e in self.failures if operation is None or e.operation == operation)


@contextlib.contextmanager
def record() -> Iterator[Recorder]:
    """Record the events emitted in this context: ``with record() as rec: ...; rec.sleeps``."""
    recorder = Recorder()
    token = _events._local_sinks.set((*_events._local_sinks.get(), recorder))
    try:
        yield recorder
    finally:
        _events._local_sinks.reset(token)


_process_recorder: tuple[Recorder, Callable[[], None]] | None = None
"""The process-wide recorder and the function that unsubscribes it (``set_testing(record=...)``)."""
_process_lock = threading.Lock()


class Testing:
    """
    What ``set_testing()`` changed.

    As a context manager it gives the process-wide recorder (or ``None``) and, on exit, puts back
    the process-wide switches and recorder that were in force. Not created directly:
    ``set_testing()`` returns one.
    """

    def __init__(self, mode: _scope.TestMode | None, recorder: Recorder | None, previous: Recorder | None):
        self._previous_mode = mode
        self._previous_recorder = previous
        self.recorder = recorder
        """The process-wide recorder in force after ``set_testing()`` (``None`` if none)."""

    def restore(self) -> None:
        """Put back the process-wide switches and recorder in force before ``set_testing()``."""
        _set_process(self._previous_mode, self._previous_recorder)

    def __enter__(self) -> Recorder | None:
        return self.recorder

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()


def _set_process(mode: _scope.TestMode | None, recorder: Recorder | None) -> None:
    global _process_recorder
    with _process_lock:
        _scope._TESTING.process = mode
        current = _process_recorder
        if (current[0] if current else None) is recorder:
            return
        if current is not None:
            current[1]()
        _process_recorder = None if recorder is None else (recorder, _events.subscribe(recorder))


def _process_state() -> tuple[_scope.TestMode | None, Recorder | None]:
    current = _process_recorder
    return _scope._TESTING.process, None if current is None else current[0]


def set_testing(
    *,
    no_wait: bool | None = None,
    no_retry: bool | None = None,
    record: bool | Recorder | None = None,
) -> Testing:
    """
    Switch test modes on or off for the whole process: every thread, every task, every request.

    A context-local switch (``no_wait()``, ...), where one is entered, takes precedence. Use it as
    a context manager (``with set_testing(no_wait=True, record=True) as rec:``), or call it and
    later ``.restore()`` what it returns: either puts back what was in force before.

    Args:
        no_wait: ``True``: retrykit's sleeps are skipped (still counted, per thread, on its clock
            for deadlines). ``None`` leaves the switch as it is.
        no_retry: ``True``: one attempt per call. ``None`` leaves the switch as it is.
        record: ``True`` (or a ``Recorder`` of yours): every event of every thread is appended to
            a recorder; ``False`` stops recording; ``None`` leaves it as it is.

    Returns:
        What was in force before, to restore; as a context manager it gives the recorder.

    Raises:
        ConfigError: A switch that is not a bool or ``None``.
    """
    for name, value in (("no_wait", no_wait), ("no_retry", no_retry)):
        if type(value) not in (type(None), bool):
            from ._errors import ConfigError

            raise ConfigError(name, value, "must be True, False or None", f"pass {name}=True")
    if not isinstance(cast(object, record), (type(None), bool, Recorder)):
        from ._errors import ConfigError

        raise ConfigError("record", record, "must be a bool or a Recorder", "pass record=True")
    mode, recorder = _process_state()
    previous = Testing(mode, None, recorder)
    changed = mode or _scope.TestMode(clock=_scope._ThreadClock())
    if no_wait is not None:
        changed = replace(changed, no_wait=no_wait, scale=None)
    if no_retry is not None:
        changed = replace(changed, no_retry=no_retry)
    new_mode = changed if changed.no_wait or changed.no_retry else None
    new_recorder = recorder
    if record is True:
        new_recorder = Recorder()
    elif record is False:
        new_recorder = None
    elif isinstance(record, Recorder):
        new_recorder = record
    _set_process(new_mode, new_recorder)
    previous.recorder = new_recorder
    return previous


def reset() -> None:
    """
    Settings back to what ``import retrykit`` gives: the built-in ones, then the ``RETRYKIT_*``
    environment variables (read again now), and no client declared with ``inner_retrier``. The
    test switches are not touched.
    """
    _layers.forget_inner_retriers()
    _config.reset()
    _config.load_env_at_import()


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """
    A block that starts from retrykit's state at import and leaves none of its own behind: the
    built-in settings, empty statistics, no budget or breaker state in this process (an open
    breaker of an earlier test cannot fail the next test's calls), and afterwards the presets as
    they were before the block (one registered inside is gone).

    Process-wide, not context-local: for a test fixture (``with isolated(): yield``), not for code
    running beside other tests.
    """
    presets = _policy.snapshot_presets()
    _fresh_state()
    try:
        yield
    finally:
        _policy.restore_presets(presets)
        _fresh_state()


def _fresh_state() -> None:
    """Built-in settings, a new in-memory statistics store, no budget or breaker state."""
    _config.reset()
    old = _stats.use_recorder(_stats.StatsRecorder(_stats.MemoryStore()))
    if old is not None:
        old.close()
    _overload_memory.reset_default_store()
    _overload_redis.forget_stores()
