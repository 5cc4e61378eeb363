"""
Test helpers: no waiting, no retrying, a recorder, and a pytest plugin.

Every switch here is context-local (a ``ContextVar``): it holds for the code run inside the
``with`` block, including asyncio tasks, trio nurseries and worker threads started from it, and
never for a test running beside it.

Under ``no_wait()`` sleeps are skipped but counted on retrykit's clock, so deadlines behave as
if the time had passed: a 10 s deadline still stops a schedule of 4 s + 8 s waits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from . import _events, _scope
from ._classify import Classification
from ._events import AttemptFailed, Event, GaveUp, RetryScheduled, Succeeded

__all__ = ["Recorder", "no_retry", "no_wait", "record", "scaled_time"]


@contextlib.contextmanager
def _mode(**changes: object) -> Iterator[None]:
    current = _scope._TESTING.get() or _scope.TestMode()
    token = _scope._TESTING.set(replace(current, **changes))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _scope._TESTING.reset(token)


def no_wait() -> contextlib.AbstractContextManager[None]:
    """Skip retrykit's sleeps in this context (still counted on its clock, for deadlines)."""
    return _mode(no_wait=True, scale=None)


def no_retry() -> contextlib.AbstractContextManager[None]:
    """Every retrykit layer in this context makes one attempt and gives up (with its note)."""
    return _mode(no_retry=True)


def scaled_time(factor: float) -> contextlib.AbstractContextManager[None]:
    """Really sleep, but *factor* times as long (deadlines still see the full time)."""
    if not (isinstance(factor, (int, float)) and 0 < factor <= 1):
        from ._errors import ConfigError

        raise ConfigError("factor", factor, "must be in (0, 1]", "pass e.g. 0.01")
    return _mode(scale=float(factor), no_wait=False)


@dataclass
class Recorder:
    """Every retrykit event emitted in the recording context, in order."""

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
