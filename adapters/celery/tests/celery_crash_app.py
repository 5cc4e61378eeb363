"""
The Celery app of the crash test, run by real ``celery worker -P prefork`` subprocesses.

Configured from the environment: RK_BROKER, RK_BACKEND, RK_QUEUE, RK_GUARD (a Redis URL, or
empty for no guard) and RK_RUNS (the Redis list each attempt body appends ``id:retries`` to).
"""

from __future__ import annotations

import os
import time

import celery
import redis

from retrykit import ErrorCategory, Policy, Strategy
from retrykit_celery import app_options, task

app = celery.Celery(
    "rk_crash",
    broker=os.environ.get("RK_BROKER", "memory://"),
    backend=os.environ.get("RK_BACKEND", "cache+memory://"),
)
app.conf.update(
    app_options(),
    task_default_queue=os.environ.get("RK_QUEUE", "rk-crash"),
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("RK_VT", "8")),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    broker_heartbeat=0,
    result_expires=3600,
)
_store = redis.Redis.from_url(os.environ.get("RK_STORE", "redis://127.0.0.1:6379/15"))
RUNS = os.environ.get("RK_RUNS", "rk:crash:runs")

POLICY = Policy(
    strategies={
        ErrorCategory.NETWORK_ERROR: Strategy.delay(0.3, max_retries=5),
        ErrorCategory.TEMPORARY_ERROR: Strategy.delay(0.3, max_retries=5),
    },
    max_attempts=6,
)


@task(
    POLICY,
    app=app,
    bind=True,
    name="rk_crash.job",
    retrykit_guard=os.environ.get("RK_GUARD") or None,
    retrykit_lease=2.0,
)
def job(self: celery.Task, i: int) -> int:
    """Fails with a network error until attempt (i % 3) + 1, after 0.2 s of work per attempt."""
    _store.rpush(RUNS, f"{self.request.id}:{self.request.retries}")
    time.sleep(0.2)
    if self.request.retries < i % 3:
        raise ConnectionResetError(f"job {i} attempt {self.request.retries + 1}")
    return i


LOST_POLICY = Policy(
    strategies={ErrorCategory.SYSTEM_ERROR: Strategy.delay(0.2, max_retries=5)}, max_attempts=3
)


@task(LOST_POLICY, app=app, bind=True, name="rk_crash.suicide", retrykit_lease=2.0)
def suicide(self: celery.Task) -> None:
    """Kills its own pool process on every attempt (the worker-lost path)."""
    _store.rpush(RUNS, f"{self.request.id}:{self.request.retries}")
    os.kill(os.getpid(), 9)


@task(POLICY, app=app, bind=True, name="rk_crash.async_job")
async def async_job(self: celery.Task, x: int) -> int:
    """An async def body in a prefork pool, retried once."""
    import asyncio

    await asyncio.sleep(0)
    if self.request.retries < 1:
        raise ConnectionResetError("async blip")
    return x * 3


@task(
    Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(5.0, max_retries=1)}, max_attempts=2),
    app=app,
    bind=True,
    name="rk_crash.long_wait",
    retrykit_lease=2.0,
)
def long_wait(self: celery.Task, body: float) -> str:
    """Fails attempt 1 with a network error (policy delay 5 s, longer than the visibility timeout)."""
    _store.rpush(RUNS, f"{self.request.id}:{self.request.retries}")
    time.sleep(body)
    if self.request.retries == 0:
        raise ConnectionResetError("first attempt")
    return "ok"
