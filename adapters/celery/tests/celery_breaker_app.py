"""
The Celery app of the circuit breaker and ledger tests, run by real ``celery worker`` processes.

Configured from the environment: RK_BROKER, RK_BACKEND, RK_QUEUE, RK_STORE (``memory``: the
breaker lives in the worker process; else a Redis URL for a shared ``RedisOverloadStore``),
RK_PREFIX (the overload store's key prefix), RK_OPEN_FOR (the breaker's open period, s), RK_GUARD
(the attempt ledger's Redis URL, or empty for the default) and RK_RUNS (the Redis list each
attempt body appends ``name:id:retries:time`` to).
"""

from __future__ import annotations

import os
import time

import celery
import redis

from retrykit import CircuitBreaker, ErrorCategory, Policy, Strategy
from retrykit.overload import RedisOverloadStore
from retrykit_celery import app_options, task

app = celery.Celery(
    "rk_breaker",
    broker=os.environ.get("RK_BROKER", "memory://"),
    backend=os.environ.get("RK_BACKEND", "cache+memory://"),
)
app.conf.update(
    app_options(),
    task_default_queue=os.environ.get("RK_QUEUE", "rk-breaker"),
    broker_transport_options={"polling_interval": 0.01},
    broker_heartbeat=0,
    result_expires=3600,
)
_runs = redis.Redis.from_url("redis://127.0.0.1:6379/15")
RUNS = os.environ.get("RK_RUNS", "rk:breaker:runs")
_where = os.environ.get("RK_STORE", "memory")
# a 0.25 s timeout, not the default 10 ms: two cores shared with other test runs
STORE = (
    None
    if _where == "memory"
    else RedisOverloadStore(_where, prefix=os.environ.get("RK_PREFIX", "rk-ov"), timeout=0.25)
)
BREAKER = CircuitBreaker(
    "rk-breaker-downstream",
    failure_ratio=0.5,
    min_throughput=1,
    window=30,
    open_for=float(os.environ.get("RK_OPEN_FOR", "2")),
    probes=1,
    store=STORE,
)
# the policy's delay (0.5 s) is longer than a RedisOverloadStore takes to learn the breaker opened
# (its batches go every 0.1 s): a retry of the failure that opened it finds it open
POLICY = Policy(
    strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(0.5, max_retries=3)},
    max_attempts=4,
    breaker=BREAKER,
)


def _ran(name: str, request: celery.Task) -> None:
    _runs.rpush(RUNS, f"{name}:{request.id}:{request.retries}:{time.time():.3f}")


@task(POLICY, app=app, bind=True, name="rk_breaker.trip", retrykit_guard=os.environ.get("RK_GUARD") or None)
def trip(self: celery.Task) -> str:
    """Fails its first attempt with a network error: the breaker (one call is enough) opens."""
    _ran("trip", self.request)
    if self.request.retries == 0:
        raise ConnectionResetError("downstream down")
    return "ok"


@task(POLICY, app=app, bind=True, name="rk_breaker.job", retrykit_guard=os.environ.get("RK_GUARD") or None)
def job(self: celery.Task, i: int) -> int:
    """Calls the downstream the breaker protects, and succeeds."""
    _ran("job", self.request)
    return i


@task(
    Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(0.05, max_retries=2)}, max_attempts=3),
    app=app,
    bind=True,
    name="rk_breaker.flaky",
    retrykit_guard=os.environ.get("RK_GUARD") or None,
)
def flaky(self: celery.Task) -> int:
    """Fails its first two attempts, succeeds on the third: returns the attempt number."""
    _ran("flaky", self.request)
    if self.request.retries < 2:
        raise ConnectionResetError("blip")
    return int(self.request.retries) + 1
