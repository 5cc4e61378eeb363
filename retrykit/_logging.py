"""
The structlog sink: one log line per retry, give-up and late success, on the ``retrykit`` logger.

When the application configured structlog, events go through it (JSON, key-value, whatever it
renders). When it did not, they go through the stdlib ``logging`` logger ``retrykit`` with the
same fields in ``extra`` and a readable message, so they obey the application's logging setup.
Argument values are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import structlog

from . import _events

_stdlib = logging.getLogger("retrykit")


def _fields(event: _events.Event) -> tuple[str, int, dict[str, Any]]:
    if isinstance(event, _events.RetryScheduled):
        c = event.classification
        return (
            "retry_scheduled",
            logging.WARNING,
            {
                "operation": event.operation,
                "attempt": event.attempt,
                "error": event.error_type,
                "category": c.category.value,
                "decision": event.decision.value,
                "delay": round(event.delay, 3),
                "reason": c.reason,
            },
        )
    if isinstance(event, _events.GaveUp):
        c = event.classification
        quiet = event.attempts == 1 and event.reason is _events.StopReason.NON_RETRYABLE
        return (
            "gave_up",
            logging.INFO if quiet else logging.WARNING,
            {
                "operation": event.operation,
                "attempts": event.attempts,
                "error": event.error_type,
                "category": c.category.value,
                "stop_reason": event.reason.value,
                "reason": c.reason,
                "elapsed": round(event.elapsed, 3),
            },
        )
    if isinstance(event, _events.Succeeded):
        return (
            "succeeded",
            logging.INFO,
            {
                "operation": event.operation,
                "attempts": event.attempts,
                "elapsed": round(event.elapsed, 3),
            },
        )
    if isinstance(event, _events.RuleFailed):
        return (
            "rule_failed",
            logging.ERROR,
            {
                "rule": event.rule,
                "error": event.error_type,
                "rule_error": event.rule_error,
            },
        )
    return "", logging.DEBUG, {}


def _level(event: _events.Event) -> int:
    if isinstance(event, _events.GaveUp):
        quiet = event.attempts == 1 and event.reason is _events.StopReason.NON_RETRYABLE
        return logging.INFO if quiet else logging.WARNING
    return _LEVELS.get(type(event), logging.DEBUG)


_LEVELS: dict[type, int] = {
    _events.RetryScheduled: logging.WARNING,
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
    configured = structlog.is_configured()
    if not configured and not _stdlib.isEnabledFor(_level(event)):
        return  # nobody would see it: no work
    name, level, fields = _fields(event)
    if not name:
        return
    if _context:
        fields.update(context_fields())
    if configured:
        structlog.get_logger("retrykit").log(level, f"retrykit.{name}", **fields)
        return
    if not _stdlib.isEnabledFor(level):
        return
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    _stdlib.log(level, "retrykit.%s %s", name, text, extra={"retrykit": {"event": name, **fields}})
