"""The keywords of ``retrykit_celery.task`` and ``task_options``: Celery's task options."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from ._task import RetrykitTask


class TaskOptions(TypedDict, total=False):
    """
    The keywords of ``task()`` and ``task_options()``: Celery's task options, by name and type.

    Celery's retry options (``autoretry_for``, ``retry_backoff``, ``retry_backoff_max``,
    ``retry_jitter``, ``retry_kwargs``) are left out on purpose: next to a retrykit policy they
    would be a second retry authority (a ``ConfigError`` at run time, a type error before).

    Attributes:
        name: The task's name (default: module and function name).
        bind: Pass the task instance as ``self`` (needed for ``self.request``, ``self.retry()``).
        base: The task class; a subclass of ``RetrykitTask``.
        shared: Register the task on every app, not only the one given.
        lazy: Create the task when first used.
        typing: Check the arguments against the signature when a call is sent.
        max_retries: Celery's limit; set from the policy, and one that contradicts it is refused.
        default_retry_delay: Celery's delay for ``self.retry()``; the policy's delay is used.
        rate_limit: Executions allowed per time unit (``"10/m"``).
        ignore_result: Do not store the task's result.
        store_errors_even_if_ignored: Store failures even when results are ignored.
        trail: Keep track of sub-tasks.
        send_events: Send task events for monitoring.
        track_started: Report the ``STARTED`` state.
        serializer: The serializer of the task's messages.
        compression: The compression of the task's messages.
        time_limit: The hard time limit of an attempt, in seconds.
        soft_time_limit: The soft time limit of an attempt (``SoftTimeLimitExceeded`` is never
            retried).
        acks_late: Acknowledge the message after the attempt (``True`` from ``task_options``).
        acks_on_failure_or_timeout: Acknowledge a message whose attempt failed or timed out.
        reject_on_worker_lost: Deliver again a message whose worker process died (``True`` from
            ``task_options``); retrykit counts the lost attempt.
        throws: Expected exceptions, logged without a traceback.
        expires: When the task expires; no retry is published that would land after it.
        priority: The message priority.
        queue: The queue the task is sent to.
        routing_key: The routing key of the task's messages.
        exchange: The exchange of the task's messages.
        resultrepr_maxsize: The longest repr of a result in logs.
        pydantic: Validate arguments and results with pydantic.
        pydantic_strict: pydantic's strict mode.
        pydantic_context: pydantic's validation context.
        pydantic_dump_kwargs: pydantic's ``model_dump`` arguments.
        retrykit_max_countdown: The longest single countdown (see ``RetrykitTask``).
        retrykit_guard: Where the attempt ledger lives (see ``RetrykitTask``).
        retrykit_lease: Seconds an attempt's lease lasts (see ``RetrykitTask``).
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
