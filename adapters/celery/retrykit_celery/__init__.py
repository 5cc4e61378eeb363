"""
retrykit-celery: the same retrykit policies on Celery tasks, retried through the broker.

Two ways in, both registering the policy with the task in one step:

* ``@retrykit_celery.task("tracking", app=app, bind=True)`` in place of ``@app.task`` (or of
  ``@shared_task`` without *app*);
* ``@app.task(base=RetrykitTask, retrykit_policy="tracking")``, or a subclass of ``RetrykitTask``
  that sets ``retrykit_policy`` (the ``BaseTaskWithRetry`` pattern).

Each failure is classified by the core; a retry is ``self.retry(countdown=delay, exc=exc)``, so
the worker never sleeps and the wait lives in the broker. The attempt number is
``request.retries + 1``; per-category counters travel in a message header. Inner
``@retrykit.retry`` layers make one attempt inside a bound task (the one-layer rule), Celery's
``Retry``/``Ignore``/``Reject`` pass through untouched, and the original exception ends the task
when retrykit gives up.
"""

from __future__ import annotations

from ._beat import register_monitoring
from ._bind import app_options, policy_of, task, task_options
from ._bridge import policy_from_celery
from ._ledger import AttemptGuard
from ._lost import AttemptLost
from ._options import TaskOptions
from ._runner import run_coroutine
from ._task import RetrykitTask
from ._wire import HEADER, max_countdown

__all__ = [
    "HEADER",
    "AttemptGuard",
    "AttemptLost",
    "RetrykitTask",
    "TaskOptions",
    "app_options",
    "max_countdown",
    "policy_from_celery",
    "policy_of",
    "register_monitoring",
    "run_coroutine",
    "task",
    "task_options",
]
