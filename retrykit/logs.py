"""
JSON logs with a correlation id, through structlog.

``configure_json()`` sets structlog up to render one JSON object per line (retrykit's events
included), with a ``trace_id`` on every line: the one bound with ``trace()``, else the Celery
task id when running inside a Celery task. Stdlib ``logging`` records are rendered the same way.

    import retrykit.logs
    retrykit.logs.configure_json()
    with retrykit.logs.trace("req-42"):
        handle_request()            # every log line inside carries "trace_id": "req-42"
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


def add_trace_id(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id`` from ``trace()``, else the running task's id (adapters)."""
    if "trace_id" not in event:
        task_id = _logging.context_fields().get("task_id")
        if task_id:
            event["trace_id"] = task_id
    return event


def configure_json(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Render structlog and stdlib logging as JSON lines with timestamps, levels and trace ids."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("retrykit-json")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "retrykit-json"] + [handler]
    root.setLevel(level)


@contextlib.contextmanager
def trace(trace_id: str | None = None) -> Iterator[str]:
    """Bind a correlation id (a new one if None) to every log line in this context."""
    value = trace_id or uuid.uuid4().hex
    with structlog.contextvars.bound_contextvars(trace_id=value):
        yield value


__all__ = ["add_trace_id", "configure_json", "trace"]
