"""
The worker-side request of a task with a retrykit policy (``RetrykitTask.Request``), loaded by
the worker only: when the pool process running an attempt dies, the worker's main process counts
the attempt as failed and lets the policy decide (retry through the broker, or FAILURE with
``AttemptLost``), instead of Celery's requeue of the same attempt.
"""

from __future__ import annotations

import importlib
from typing import Any

from celery.exceptions import WorkerLostError
from celery.worker.request import Request
from celery.worker.state import task_ready

_WRAPPED: type[BaseException] = importlib.import_module("billiard.einfo").ExceptionWithTraceback
"""How a pool hands an exception over with its traceback (not in celery-types' stubs)."""


class RetrykitRequest(Request):
    """A Celery request whose lost attempts count against the task's retrykit policy."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> Any:
        exc = exc_info.exception
        if isinstance(exc, _WRAPPED):
            exc = getattr(exc, "exc", exc)
        task = self.task
        handler = getattr(task, "_retrykit_worker_lost", None)
        if (
            handler is not None
            and not getattr(task, "_retrykit_off", True)
            and self._lost(exc)
            and not self._stored_success()
            and handler(self, exc_info)
        ):
            task_ready(self)
            return None
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _stored_success(self) -> bool:
        """
        Whether the attempt stored SUCCESS before its process died (then it is not lost).
        Celery >= 5.5 asks the backend with ``Request._success_was_stored`` (bounded retries);
        Celery 5.4 has no such method (every lost attempt raised AttributeError here, so the
        task stayed PENDING), so the backend is asked directly, as Celery does.
        """
        check = getattr(super(), "_success_was_stored", None)
        if check is not None:
            return bool(check())
        if self.ignore_result:
            return False
        backend = self.task.backend
        as_uri = getattr(backend, "as_uri", None)
        if callable(as_uri) and as_uri() == "rpc://":  # results on the caller's queue: not readable here
            return False
        try:
            return bool(backend.get_state(self.id) == "SUCCESS")
        except Exception:
            return False

    def _lost(self, exc: BaseException) -> bool:
        if isinstance(exc, WorkerLostError):
            return True
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            return not (
                getattr(self, "_already_cancelled", False) or getattr(self, "_already_revoked", False)
            )
        return False
