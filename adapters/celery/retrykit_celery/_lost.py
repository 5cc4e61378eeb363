"""
Worker loss: an attempt whose process died (SIGKILL, the OOM killer, ``os._exit``, a crash in C)
counts as one failed attempt, decided in the worker's main process, in place of Celery's requeue.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import signals
from celery.exceptions import Retry

from retrykit import Classification, ErrorCategory
from retrykit.queues import Delivery

from ._ledger import AttemptLedger
from ._wire import retry_options

if TYPE_CHECKING:
    from ._task import RetrykitTask

Decide = Callable[[Exception, Classification], tuple[Delivery, float | None]]
"""The task's decision on a failed attempt of this request: the delivery, the delay or None."""

_log = logging.getLogger("retrykit")


class AttemptLost(RuntimeError):
    """
    An attempt of a task started but never finished: the process running it died.

    A SIGKILL, the OOM killer, ``os._exit``, a crash in C code, a lost worker. It counts as one
    failed attempt, classified as a system failure; once the policy gives up, the task fails with
    it. Picklable and JSON-serialisable (``exc_message`` is ``[task_id, attempt]``).

    Args:
        task_id: The task's id.
        attempt: The number of the attempt that was lost, from 1.
    """

    def __init__(self, task_id: str, attempt: int) -> None:
        super().__init__(task_id, attempt)
        self.task_id = task_id
        self.attempt: int = int(attempt)

    def __str__(self) -> str:
        return f"attempt {self.attempt} of task {self.task_id} started but never finished (worker lost)"

    def __reduce__(self) -> tuple[type[AttemptLost], tuple[str, int], dict[str, Any]]:
        return (type(self), (self.task_id, self.attempt), dict(self.__dict__))  # notes included


LOST = Classification(
    ErrorCategory.SYSTEM_ERROR, "the process running the attempt was lost", rule="celery worker lost"
)
"""How a lost attempt is classified: a system failure, whatever the policy's default category."""


def worker_lost(
    task: RetrykitTask, req: Any, ledger: AttemptLedger | None, decide: Decide, hop: float | None
) -> bool:
    """
    The pool process running *req*'s attempt died (in the worker's main process): count a failed
    attempt and publish the retry or record the failure, in place of Celery's requeue
    (``reject_on_worker_lost``: a poison pill loops forever). False: not handled.
    """
    request = req._context
    if ledger is not None and not ledger.claim_lost(req.id, request.retries):
        if task.acks_late:  # the attempt finished (retry published or result stored) before the death
            req.acknowledge()
        return True
    lost = AttemptLost(req.id, request.retries + 1)
    try:
        raise lost
    except AttemptLost:
        einfo = importlib.import_module("billiard.einfo").ExceptionInfo()
    delivery, delay = decide(lost, LOST)
    if delay is None:
        _give_up(task, req, lost, einfo)
        return True
    countdown, options = retry_options(request, delivery, delay, hop)
    if not _publish(task, req, countdown, options):
        return False
    _retried(task, req, lost, einfo, countdown)
    _log.warning(
        "retrykit: attempt %s of %s[%s] lost with its worker; retry in %.1fs",
        lost.attempt,
        task.name,
        req.id,
        delay,
    )
    return True


def _publish(task: RetrykitTask, req: Any, countdown: float, options: dict[str, Any]) -> bool:
    """Publish the retry of a lost attempt; False (logged) when the broker refuses it."""
    request = req._context
    try:
        task.signature_from_request(
            request, countdown=countdown, retries=request.retries + 1, **options
        ).apply_async()
    except Exception as err:
        _log.error(
            "retrykit: cannot publish the retry of %s[%s] after its worker was lost: %r",
            task.name,
            req.id,
            err,
        )
        return False
    return True


def _retried(task: RetrykitTask, req: Any, lost: AttemptLost, einfo: Any, countdown: float) -> None:
    """Record the retry of a lost attempt as Celery records one: state, ack, event, handlers, signal."""
    request = req._context
    when: Any = countdown  # a number, as Celery's own retries give it (the stubs say Real)
    if req.store_errors:
        task.backend.mark_as_retry(req.id, lost, einfo.traceback, request=request)
    if task.acks_late:
        req.acknowledge()
    req.send_event("task-retried", exception=repr(lost), traceback=einfo.traceback)
    task.request_stack.push(request)
    try:
        task.on_retry(lost, req.id, req.args, req.kwargs, einfo)
        signals.task_retry.send(
            sender=task,
            request=request,
            reason=Retry(exc=lost, when=when),
            einfo=einfo,
        )
    finally:
        task.request_stack.pop()


def _give_up(task: RetrykitTask, req: Any, lost: AttemptLost, einfo: Any) -> None:
    """Record the failure of a lost attempt the policy gives up on: state, ack, handlers, signal, event."""
    request = req._context
    task.backend.mark_as_failure(
        req.id, lost, einfo.traceback, request=request, store_result=req.store_errors
    )
    if task.acks_late:
        req.acknowledge()
    task.request_stack.push(request)
    try:
        task.on_failure(lost, req.id, req.args, req.kwargs, einfo)
        signals.task_failure.send(
            sender=task,
            task_id=req.id,
            exception=lost,
            args=req.args,
            kwargs=req.kwargs,
            traceback=einfo.traceback,
            einfo=einfo,
        )
    finally:
        task.request_stack.pop()
    req.send_event("task-failed", exception=repr(lost), traceback=einfo.traceback)
    _log.error("retrykit: %s; giving up", lost)
