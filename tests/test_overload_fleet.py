"""Overload protection across a fleet: the ratio bound, the Redis allowance, fork safety."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from retrykit import ErrorCategory, RetryBudget, _budget
from retrykit.overload import RedisOverloadStore

from . import test_overload

own_redis = test_overload.own_redis  # the fixture: a Redis server of the test's own, to kill

NET = ErrorCategory.NETWORK_ERROR
REDIS_DB = "redis://127.0.0.1:6379/14"


@pytest.fixture(autouse=True)
def _fresh_store() -> Iterator[None]:
    _budget.reset_default_store()
    yield
    _budget.reset_default_store()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ratio_bound_holds_in_every_window_not_only_aligned_ones() -> None:
    """
    Greedy retries against steady calls: in no interval of the window's length do retries
    exceed ratio x the calls in it (+ the floor), wherever the interval starts within a bucket.
    """
    clock = Clock()
    budget = RetryBudget("svc", ratio=0.1, min_per_second=0.5, window=10, clock=clock)
    calls: list[float] = []
    retries: list[float] = []
    step = 0.05
    for i in range(int(40 / step)):
        clock.now = 1000.0 + i * step
        if i * step < 5:  # busy before the "outage", then every attempt fails and wants a retry
            for _ in range(4):
                budget.admitted()
                calls.append(clock.now)
        else:
            budget.admitted()
            calls.append(clock.now)
        while budget.withdraw(NET) is not None:
            retries.append(clock.now)
    worst = 0.0
    for j in range(int(30 / step)):
        start = 1000.0 + j * step + 0.013
        end = start + 10
        made = sum(start <= t < end for t in retries)
        allowed = 0.1 * sum(start <= t < end for t in calls) + budget.reserve()
        worst = max(worst, made - allowed)
    assert worst <= 0, f"{worst:.1f} retries over the bound in some window"


# --------------------------------------------------------------------------- Redis


def _fresh(prefix: str, **kw: Any) -> RedisOverloadStore:
    # These tests are about what Redis decides: a loaded machine answering after the default
    # 10 ms would send the caller to its local fallback (seen in CI), so the caller waits up to 1 s.
    kw.setdefault("timeout", 1.0)
    store = RedisOverloadStore(REDIS_DB, prefix=prefix, **kw)
    for key in store.client.scan_iter(f"{prefix}*"):
        store.client.delete(key)
    return store


@pytest.mark.needs_service("redis")
def test_redis_retry_charge_makes_no_round_trip_and_keeps_the_fleet_bound(redis_url: str) -> None:
    """
    Two processes' stores share one ratio budget: retries are charged from an allowance the
    background thread leases (never a Redis command on the caller's thread), and together they
    get the fleet's 50 % of 40 calls, not more.
    """
    prefix = f"rk-overload:lease:{os.getpid()}"
    one = _fresh(prefix, flush_interval=0.02)
    two = RedisOverloadStore(REDIS_DB, prefix=prefix, flush_interval=0.02, timeout=1.0)
    callers: list[str] = []
    for store in (one, two):
        script = store._budget_script

        def spy(*args: Any, _script: Any = script, **kw: Any) -> Any:
            callers.append(threading.current_thread().name)
            return _script(*args, **kw)

        store._budget_script = spy  # type: ignore[method-assign]
    budgets = [RetryBudget("dep", ratio=0.5, min_per_second=0, window=10, store=s) for s in (one, two)]
    try:
        for budget in budgets:
            for _ in range(20):
                budget.admitted()
        time.sleep(0.2)  # deposits sent, allowances leased
        granted = 0
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 0.5:
            for budget in budgets:
                if budget.withdraw(NET) is not None:
                    granted += 1
                    idle_since = time.monotonic()
            time.sleep(0.005)
        seen = set(callers)  # before close(): its last flush runs on this thread
    finally:
        one.close()
        two.close()
    assert 20 == granted
    assert {"retrykit-overload"} == seen
    state = budgets[0].state()
    assert (40.0, 20.0, 20) == (state["calls"], state["retries"], state["spent"])


@pytest.mark.needs_service("redis")
def test_redis_store_starts_afresh_in_a_forked_child(redis_url: str) -> None:
    """After fork(): a new writer, no inherited counts or leases, a live thread, a free lock."""
    store = _fresh(f"rk-overload:fork:{os.getpid()}", flush_interval=0.05)
    budget = RetryBudget("dep", store=store)
    try:
        budget.admitted()
        writer = store.writer
        read, write = os.pipe()
        with store._lock:  # a parent thread holds it at fork() time
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe, whatever happens
            ok = False
            try:
                ok = (
                    store.writer != writer
                    and not store._budgets
                    and not getattr(store, "_leases", None)
                    and store._thread is not None
                    and store._thread.is_alive()
                    and store._lock.acquire(timeout=1)
                )
            finally:
                os.write(write, b"1" if ok else b"0")
                os._exit(0)
        os.close(write)
        answer = os.read(read, 1)
        os.close(read)
        os.waitpid(pid, 0)
    finally:
        store.close()
    assert b"1" == answer


# --------------------------------------------------------------------------- visible


def test_analysis_shows_budget_spend_exhaustion_and_breaker_state() -> None:
    """``analyze()`` (``retrykit stats``/``analyze``) reports each budget and breaker by key."""
    import io

    import retrykit
    from retrykit import CircuitBreaker, Policy, Strategy
    from retrykit._analysis import analyze, render_analysis
    from retrykit.testing import no_wait

    budget = RetryBudget.quota("payments", capacity=20)
    breaker = CircuitBreaker("payments", min_throughput=4, open_for=30)
    policy = Policy(strategies={"network_error": Strategy.immediately(max_retries=3)}, budget=budget)

    @retrykit.retry(policy)
    def fn() -> None:
        raise ConnectionResetError()

    with no_wait():
        for _ in range(3):
            with pytest.raises(ConnectionResetError):
                fn()
    breaker.record(0, 4)
    result = analyze()
    assert {"shape": "quota", "spent": 2, "refused": 3, "balance": 0.0, "store": "memory"} == (
        result.budgets["payments"]
    )
    assert "open" == result.breakers["payments"]["state"]
    assert 29 < result.breakers["payments"]["remaining"] <= 30
    assert "payments" in result.to_dict()["breakers"]
    out = io.StringIO()
    render_analysis(result, out)
    text = out.getvalue()
    assert "retry budget      payments (quota): 2 retries spent, 3 refused, balance 0.0 (exhausted)" in text
    assert "circuit breaker   payments: open for " in text
    assert "s, 0 calls refused" in text
    assert any("'payments' is open" in tip for tip in result.suggestions)


@pytest.mark.parametrize(
    ("spent", "refused", "give_ups", "tip"),
    [
        (10, 30, 0, "The retry budget 'payments' refused 30 of 40 retries (75%)"),
        (80, 20, 0, None),  # 20 %: not often
        (5, 15, 0, None),  # too few to judge
        (0, 0, 20, "20 of 40 give-ups were refused by the retry budget"),  # no budget state seen
        (10, 30, 20, "The retry budget 'payments' refused 30 of 40 retries (75%)"),  # named once
    ],
)
def test_analysis_suggests_looking_at_a_budget_exhausted_often(
    spent: int, refused: int, give_ups: int, tip: str | None
) -> None:
    """A budget that refused over a fifth of >= 20 retries (or such give-ups) gets a suggestion."""
    from collections import Counter

    from retrykit._analysis import from_counts

    counts = {"op": Counter({"gave_up:network_error:budget_exhausted": give_ups, "gave_up:x:deadline": 20})}
    budgets = {"payments": {"shape": "ratio", "spent": spent, "refused": refused}} if spent or refused else {}
    result = from_counts(counts, operation=None, since=0, until=1, source="memory", overload=(budgets, {}))
    found = [t for t in result.suggestions if "retry budget" in t]
    assert ([] if tip is None else [tip]) == [t[: len(tip or "")] for t in found]


@pytest.mark.needs_service("redis")
def test_analysis_shows_the_fleet_figures_of_a_redis_budget(redis_url: str) -> None:
    """A budget kept in Redis is reported with the fleet's figures, marked [redis]."""
    import io

    from retrykit._analysis import analyze, render_analysis

    store = _fresh(f"rk-overload:visible:{os.getpid()}", background=False)
    budget = RetryBudget.quota("fleet", capacity=10, store=store)
    assert [10, None] == [budget.withdraw(NET), budget.withdraw(NET)]
    result = analyze()
    assert (1, 1, "redis") == tuple(result.budgets["fleet"][k] for k in ("spent", "refused", "store"))
    out = io.StringIO()
    render_analysis(result, out)
    assert "fleet (quota): 1 retries spent, 1 refused, balance 0.0 (exhausted) [redis]" in out.getvalue()


@pytest.mark.needs_service("redis")
def test_redis_first_retry_of_a_new_budget_is_decided_in_redis(redis_url: str) -> None:
    """Before its first allowance a budget's retry is one round trip, not a refusal."""
    store = _fresh(f"rk-overload:first:{os.getpid()}", flush_interval=10, wait=0.0)
    try:
        budget = RetryBudget.quota("dep", capacity=20, store=store)
        assert 10 == budget.withdraw(NET)
    finally:
        store.close()


# --------------------------------------------------------------------------- Redis down: fair


@pytest.mark.parametrize(
    ("shape", "fleet_ttl", "each"),
    [
        ("ratio", None, 5),  # the floor of 10 retries, halved
        ("quota", None, 2),  # 40 tokens at 10 a retry, halved
        ("ratio", 0.0, 10),  # the other process was not heard from within fleet_ttl: all of it
    ],
)
def test_redis_down_each_process_takes_its_share_of_the_fleet_budget(
    own_redis: tuple[str, Any], shape: str, fleet_ttl: float | None, each: int
) -> None:
    """With Redis killed, each of the N processes it last counted falls back to 1/N of the budget."""
    url, proc = own_redis
    clock = Clock()
    stores = [RedisOverloadStore(url, background=False, fleet_ttl=fleet_ttl) for _ in range(2)]
    if shape == "ratio":
        budgets = [
            RetryBudget("dep", ratio=0.1, min_per_second=1, window=10, store=s, clock=clock) for s in stores
        ]
    else:
        budgets = [RetryBudget.quota("dep", capacity=40, store=s, clock=clock) for s in stores]
    for budget in [*budgets, budgets[0]]:  # each sends a batch; the first hears of the second
        if shape == "ratio":
            budget.admitted()
        else:
            budget.succeeded(None)
        assert budget.store.flush()
    proc.kill()
    proc.wait(5)
    granted = []
    for budget in budgets:
        n = 0
        while budget.withdraw(NET) is not None:
            n += 1
        granted.append(n)
    assert [each, each] == granted
