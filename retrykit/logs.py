"""
JSON logs with a correlation id, as an opt-in that never touches the application's logging.

Nothing here changes the root logger, its level, or structlog's global configuration. You attach
what you want where you want it:

    import logging
    from retrykit.logs import json_formatter, json_handler, trace

    logging.getLogger("retrykit").addHandler(json_handler())  # retrykit's lines
    logging.getLogger().handlers[0].setFormatter(json_formatter())  # or all lines
    with trace("req-42"):
        handle_request()  # every JSON line inside carries "trace_id": "req-42"

Each line is one JSON object with timestamp, level, logger and ``trace_id`` (the one bound with
``trace()``, else the Celery task id inside a Celery task), and retrykit's event fields at the
top level. An application that configured structlog itself gets retrykit's events through its own
pipeline; adding ``structlog.contextvars.merge_contextvars`` and ``retrykit.logs.add_trace_id``
to its processors gives them the trace id.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from typing import Any, TextIO

import structlog

from . import _logging

HANDLER_NAME = "retrykit-json"
"""The name of the handler ``configure_json()`` attaches (it replaces one of that name)."""


def add_trace_id(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """
    structlog processor: ``trace_id`` from ``trace()``, else the id of the running Celery task.

    Args:
        logger: The wrapped logger (structlog's processor signature).
        method: The log method's name.
        event: The event dict.

    Returns:
        The event dict, with ``trace_id`` added when one is known.
    """
    if "trace_id" not in event:
        task_id = _logging.context_fields().get("task_id")
        if task_id:
            event["trace_id"] = task_id
    return event


def add_retrykit_fields(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """
    structlog processor: a stdlib record of retrykit's gets its fields at the top level.

    Args:
        logger: The wrapped logger (structlog's processor signature).
        method: The log method's name.
        event: The event dict.

    Returns:
        The event dict, with retrykit's fields (``operation``, ``category``, ...) merged in.
    """
    fields = getattr(event.get("_record"), "retrykit", None)
    if isinstance(fields, dict):
        name = fields.get("event")
        event.update((k, v) for k, v in fields.items() if k != "event")
        if name:
            event["event"] = f"retrykit.{name}"
    return event


def json_formatter() -> logging.Formatter:
    """A ``logging.Formatter`` rendering each record as one JSON line (with timestamp and trace id)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_id,
        add_retrykit_fields,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )


def json_handler(stream: TextIO | None = None, level: int = logging.NOTSET) -> logging.Handler:
    """
    A stream handler with ``json_formatter()``, for you to attach where you want JSON.

    Args:
        stream: Where to write. Default: stderr.
        level: The handler's level.

    Returns:
        The handler (named ``retrykit-json``).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    handler.setLevel(level)
    handler.set_name(HANDLER_NAME)
    return handler


def configure_json(level: int = logging.NOTSET, stream: TextIO | None = None) -> logging.Handler:
    """
    Write retrykit's own log lines as JSON: attach ``json_handler()`` to the ``retrykit`` logger.

    A handler attached by an earlier call is replaced. Only that handler is added: the root
    logger, every level (the ``retrykit`` logger's too) and structlog's configuration stay the
    application's. Records still propagate to the application's handlers as usual.

    Args:
        level: The handler's level.
        stream: Where to write. Default: stderr.

    Returns:
        The handler it attached.
    """
    handler = json_handler(stream, level)
    logger = logging.getLogger("retrykit")
    for old in [h for h in logger.handlers if h.get_name() == HANDLER_NAME]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    return handler


@contextlib.contextmanager
def trace(trace_id: str | None = None) -> Iterator[str]:
    """
    Bind a correlation id to every log line in this context.

    Args:
        trace_id: The id. Default: a new random one.

    Yields:
        The id bound.
    """
    value = trace_id or uuid.uuid4().hex
    with structlog.contextvars.bound_contextvars(trace_id=value):
        yield value


__all__ = ["add_retrykit_fields", "add_trace_id", "configure_json", "json_formatter", "json_handler", "trace"]
