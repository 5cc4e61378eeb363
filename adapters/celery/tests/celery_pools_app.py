"""
The Celery app of tests/test_celery_pools.py, run by real ``celery worker -P <pool>`` subprocesses.

Configured from the environment: RKP_QUEUE (the test's own queue) and RKP_RUNS (the Redis list
each attempt body appends ``id:retries`` to).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import celery
import redis
from celery import signals

from retrykit import ErrorCategory, Policy, Strategy
from retrykit_celery import app_options, task

app = celery.Celery("rk_pools", broker="redis://127.0.0.1:6379/14", backend="redis://127.0.0.1:6379/15")
app.conf.update(
    app_options(),
    task_default_queue=os.environ.get("RKP_QUEUE", "rk-pools"),
    broker_transport_options={"polling_interval": 0.01},
    broker_heartbeat=0,
    result_expires=600,
)
_store = redis.Redis.from_url("redis://127.0.0.1:6379/15")
RUNS = os.environ.get("RKP_RUNS", "rk:pools:runs")
# Only network errors are retried: any other failure (a RuntimeError of asyncio.run, say) ends the task.
POLICY = Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(0.05, max_retries=2)}, max_attempts=3)


@signals.task_prerun.connect
def _record(task_id: str = "", task: Any = None, **kw: Any) -> None:
    """Each attempt, recorded here: a sync client created outside the coroutine is not used in it."""
    _store.rpush(RUNS, f"{task_id}:{task.request.retries}")


@task(POLICY, app=app, bind=True, name="rk_pools.fetch")
async def fetch(self: celery.Task, x: int) -> list[int]:
    """Fails once with a network error, then returns [2x, request.retries]; its awaits overlap others'."""
    await asyncio.sleep(0.05)  # the loop waits in its selector: under gevent, other greenlets run now
    if self.request.retries < 1:
        raise ConnectionResetError(f"fetch {x}")
    return [x * 2, self.request.retries]
