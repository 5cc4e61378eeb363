"""
What retrykit did, as typed, frozen events: subscribe a callable to receive them.

``subscribe(sink)`` sends every event to *sink* (a callable taking one event) and returns a
function that unsubscribes it; ``subscribe(sink, kinds=(GaveUp,))`` only the kinds named. The
same events reach the ``on_retry`` / ``on_giveup`` / ``on_success`` callbacks of ``retry()``.

- ``AttemptFailed``: an attempt failed (built only when a subscriber asks for it).
- ``RetryScheduled``: the failure will be retried after ``delay`` seconds.
- ``GaveUp``: no more attempts; ``reason`` is a ``StopReason``.
- ``Succeeded``: a call succeeded after at least one failure.
- ``RuleFailed``: a classification rule raised; the built-in rules decided instead.
"""

from __future__ import annotations

from ._events import (
    AttemptFailed,
    Event,
    GaveUp,
    RetryScheduled,
    RuleFailed,
    StopReason,
    Succeeded,
    attributes,
    subscribe,
)

__all__ = [
    "AttemptFailed",
    "Event",
    "GaveUp",
    "RetryScheduled",
    "RuleFailed",
    "StopReason",
    "Succeeded",
    "attributes",
    "subscribe",
]
