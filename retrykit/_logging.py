"""
The structlog sink: one log line per retry, give-up and late success, on the ``retrykit`` logger.

When the application configured structlog, events go through it (JSON, key-value, whatever it
renders). When it did not, they go through the stdlib ``logging`` logger ``retrykit`` with the
same fields in ``extra`` and a readable message, so they obey the application's logging setup.
Argument values are never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

import structlog

from . import _config, _events

_stdlib = logging.getLogger("retrykit")

REPORT_INTERVAL = 60.0
"""A failing sink or classifier rule is logged once per this many seconds per (name, error type)."""


class _OncePerInterval:
    """Which repeated failures to log: the first per key and interval; the rest are counted."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, size: int = 1000) -> None:
        self.clock = clock
        self.size = size
        self._last: dict[Hashable, float] = {}
        self._quiet: Counter[Hashable] = Counter()
        self._lock = threading.Lock()

    def check(self, key: Hashable) -> int | None:
        """None: stay quiet. Else log now, saying how many were not logged since the last line."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < REPORT_INTERVAL:
                self._quiet[key] += 1
                return None
            if len(self._last) >= self.size:  # bounded: forget the oldest keys
                for old in list(self._last)[: self.size // 2]:
                    del self._last[old]
                    self._quiet.pop(old, None)
            self._last[key] = now
            return self._quiet.pop(key, 0)


_limiter = _OncePerInterval()
_sink_failures: Counter[str] = Counter()
_sink_lock = threading.Lock()


sink_name = _events.sink_name


def report_sink_failure(sink: Any, err: BaseException, event: Any) -> None:
    """Count a failed sink call; log it once a minute per sink and error type; never raise."""
    try:
        name, kind = sink_name(sink), type(err).__name__
        with _sink_lock:
            _sink_failures[f"{name}:{kind}"] += 1
        quiet = _limiter.check(("sink", name, kind))
        if quiet is not None:
            _stdlib.error(
                "retrykit: sink %s raised %s on %s; skipped (logged once a minute per sink and "
                "error type, counted in retrykit.stats.sink_failures()%s)",
                name,
                kind,
                type(event).__name__,
                f"; {quiet} more since the last line" if quiet else "",
            )
    except Exception:  # pragma: no cover - reporting must never break the retried call
        pass


def sink_failures() -> dict[str, int]:
    """
    How often each event sink failed in this process.

    Returns:
        Counts, keyed by sink and error type (``"<sink>:<error type>"``).
    """
    with _sink_lock:
        return dict(_sink_failures)


_Outcome = _events.RetryScheduled | _events.GaveUp | _events.Succeeded | _events.RuleFailed


def _inner(c: Any) -> dict[str, Any]:
    """The client that retried inside the call, and the requests it sent (nothing if none did)."""
    inner = c.inner
    if inner is None:
        return {}
    return {"inner_client": inner.client, "inner_requests": inner.attempts}


def _fields(event: _Outcome) -> tuple[str, dict[str, Any]]:
    """The line for *event*: its name (``retrykit.<name>``) and its fields (``_level``: its level)."""
    if isinstance(event, _events.RetryScheduled):
        return "retry_scheduled", _retry_fields(event)
    if isinstance(event, _events.GaveUp):
        return "gave_up", _give_up_fields(event)
    if isinstance(event, _events.Succeeded):
        return "succeeded", _success_fields(event)
    return "rule_failed", _rule_failed_fields(event)


def _retry_fields(event: _events.RetryScheduled) -> dict[str, Any]:
    c = event.classification
    return {
        "operation": event.operation,
        "attempt": event.attempt,
        "error": event.error_type,
        "category": c.category.value,
        "decision": event.decision.value,
        "delay": round(event.delay, 3),
        "reason": c.reason,
        **_inner(c),
    }


def _give_up_fields(event: _events.GaveUp) -> dict[str, Any]:
    c = event.classification
    return {
        "operation": event.operation,
        "attempts": event.attempts,
        "error": event.error_type,
        "category": c.category.value,
        "stop_reason": event.reason.value,
        "reason": c.reason,
        "elapsed": round(event.elapsed, 3),
        **_inner(c),
    }


def _success_fields(event: _events.Succeeded) -> dict[str, Any]:
    return {
        "operation": event.operation,
        "attempts": event.attempts,
        "elapsed": round(event.elapsed, 3),
    }


def _rule_failed_fields(event: _events.RuleFailed) -> dict[str, Any]:
    return {
        "rule": event.rule,
        "error": event.error_type,
        "rule_error": event.rule_error,  # a type name: emit() keeps messages out
    }


def _level(event: _events.Event) -> int:
    if isinstance(event, _events.GaveUp):
        quiet = event.attempts == 1 and event.reason is _events.StopReason.NON_RETRYABLE
        return logging.INFO if quiet else logging.WARNING
    if isinstance(event, _events.RetryScheduled):
        return _config.settings.log_level  # configure(log_level=...), WARNING by default
    return _LEVELS.get(type(event), logging.DEBUG)


_LEVELS: dict[type, int] = {
    _events.Succeeded: logging.INFO,
    _events.RuleFailed: logging.ERROR,
}


_context: tuple[Callable[[], dict[str, Any] | None], ...] = ()


def register_context(provider: Callable[[], dict[str, Any] | None]) -> None:
    """Add the fields *provider* returns to every retrykit log line (adapters: e.g. a task id)."""
    global _context
    if provider not in _context:
        _context = (*_context, provider)


def context_fields() -> dict[str, Any]:
    """The fields the registered providers add now (a provider that fails adds nothing)."""
    fields: dict[str, Any] = {}
    for provider in _context:
        try:
            found = provider()
        except Exception:
            continue
        if found:
            fields.update(found)
    return fields


def log_event(event: _events.Event) -> None:
    """Log *event* through structlog if configured, else through stdlib logging."""
    if isinstance(event, _events.AttemptFailed):
        return  # the retry or give-up that follows says it
    level = _level(event)
    configured = structlog.is_configured()
    if not configured and not _stdlib.isEnabledFor(level):
        return  # nobody would see it: no work
    name, fields = _fields(event)
    if isinstance(event, _events.RuleFailed):
        quiet = _limiter.check(("rule", event.rule, event.rule_error))
        if quiet is None:
            return  # logged in the last minute; the statistics count every one
        if quiet:
            fields["not_logged_since"] = quiet
    if _context:
        fields.update(context_fields())
    attached = getattr(event, "attributes", None)
    if attached:
        fields.update(attached)  # the adapter's own names (retrykit.events.attributes)
    if configured:
        structlog.get_logger("retrykit").log(level, f"retrykit.{name}", **fields)
        return
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    _stdlib.log(level, "retrykit.%s %s", name, text, extra={"retrykit": {"event": name, **fields}})


def log_retry(
    operation: str,
    attempt: int,
    error_type: str,
    classification: Any,
    decision: Any,
    delay: float,
    elapsed: float,
    after: Any,
    error: BaseException | None,
) -> None:
    """``log_event`` for a retry, given its fields: the event is built only if a line is written."""
    if not structlog.is_configured() and not _stdlib.isEnabledFor(_config.settings.log_level):
        return  # nobody would see it: no work
    log_event(
        _events.RetryScheduled(
            operation, attempt, error_type, classification, decision, delay, elapsed, after, error
        )
    )


def log_success(operation: str, attempts: int, elapsed: float, after: Any) -> None:
    """``log_event`` for a success after failures: the event is built only if a line is written."""
    if not structlog.is_configured() and not _stdlib.isEnabledFor(logging.INFO):
        return  # nobody would see it: no work
    log_event(_events.Succeeded(operation, attempts, elapsed, after))


_events.on_sink_failure(report_sink_failure)
_events.take_directly(log_event, _events.RetryScheduled, log_retry)
_events.take_directly(log_event, _events.Succeeded, log_success)
