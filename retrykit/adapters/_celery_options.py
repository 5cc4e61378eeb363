"""The keywords of ``retrykit.adapters.celery.task`` and ``task_options``: Celery's task options."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from .celery import RetrykitTask


class TaskOptions(TypedDict, total=False):
    """
    Celery's task options (``@app.task(...)``) and ``RetrykitTask``'s own, by name and type.

    Celery's retry options (``autoretry_for``, ``retry_backoff``, ``retry_backoff_max``,
    ``retry_jitter``, ``retry_kwargs``) are left out on purpose: next to a retrykit policy they
    would be a second retry authority (a ``ConfigError`` at run time, a type error before).
    """

    name: str
    bind: bool
    base: type[RetrykitTask]
    shared: bool
    lazy: bool
    typing: bool
    max_retries: int | None
    default_retry_delay: float
    rate_limit: str | float | None
    ignore_result: bool
    store_errors_even_if_ignored: bool
    trail: bool
    send_events: bool
    track_started: bool
    serializer: str
    compression: str
    time_limit: float | None
    soft_time_limit: float | None
    acks_late: bool
    acks_on_failure_or_timeout: bool
    reject_on_worker_lost: bool
    throws: tuple[type[BaseException], ...]
    expires: float | datetime | None
    priority: int | None
    queue: str
    routing_key: str
    exchange: str
    resultrepr_maxsize: int
    pydantic: bool
    pydantic_strict: bool
    pydantic_context: dict[str, Any] | None
    pydantic_dump_kwargs: dict[str, Any] | None
    retrykit_max_countdown: float | None
    retrykit_guard: str | bool | None
    retrykit_lease: float
