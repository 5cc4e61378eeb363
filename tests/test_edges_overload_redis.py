"""The Redis overload store at its edges: Redis unreachable or back, breaker and budget states, fork."""

from __future__ import annotations

import logging
import uuid

import pytest
import redis

from retrykit import CircuitBreaker, ErrorCategory, RetryBudget
from retrykit._breaker import OPEN
from retrykit._overload_redis import RedisOverloadStore, _after_fork_in_child

NOWHERE = "redis://127.0.0.1:1/10"  # nothing listens: refused at once


def _nowhere() -> RedisOverloadStore:
    return RedisOverloadStore(NOWHERE, background=False)


@pytest.mark.parametrize("what", ["budget", "breaker"])
def test_states_fall_back_to_this_process_when_redis_is_unreachable(what: str) -> None:
    """budget_state and breaker_state answer from the local fallback and say so."""
    store = _nowhere()
    if what == "budget":
        state = store.budget_state(RetryBudget("svc", store=store))
    else:
        state = store.breaker_state(CircuitBreaker("svc", store=store))
    assert "memory (Redis unreachable)" == state["store"]


def test_a_breaker_known_open_is_asked_again_once_its_time_is_up() -> None:
    """An open breaker whose time is up asks Redis; unreachable, the local breaker answers (counted)."""
    store = _nowhere()
    breaker = CircuitBreaker("svc", store=store)
    store._cache[breaker.key] = (OPEN, 0.0)
    assert (0.0, True, 1) == (store.allow(breaker), store.down, store.fallbacks)


def test_while_redis_is_down_every_decision_is_local() -> None:
    """Down: allow and peek use this process's breaker (opened here by local failures)."""
    store = _nowhere()
    store._failed(redis.ConnectionError("down"))
    breaker = CircuitBreaker("svc", store=store, min_throughput=2, failure_ratio=0.5, open_for=30)
    store.record(breaker, 0, 4)
    assert (True, True, 1) == (store.allow(breaker) > 0, store.peek(breaker) > 0, store.fallbacks)


def test_a_failed_flush_keeps_the_store_down_and_answers_false(caplog: pytest.LogCaptureFixture) -> None:
    """A flush that cannot reach Redis returns False, marks the store down and warns once."""
    store = _nowhere()
    breaker = CircuitBreaker("svc", store=store)
    store.record(breaker, 1, 0)
    with caplog.at_level(logging.WARNING, logger="retrykit"):
        assert [False, False] == [store.flush(), store.flush()]
    assert store.down
    assert 1 == caplog.text.count("overload protection cannot reach Redis")


def test_a_forked_child_starts_with_its_own_writer_id() -> None:
    """After fork, a store forgets the parent's batches and takes a writer id of its own."""
    store = _nowhere()
    store.record(CircuitBreaker("svc", store=store), 1, 0)
    writer = store.writer
    _after_fork_in_child()
    assert ({}, True) == (store._breakers, store.writer != writer)


# ---------------------------------------------------------------------------- with a real Redis


@pytest.fixture
def store(redis_url: str) -> RedisOverloadStore:
    """A store on the tests' Redis under a prefix of its own (its keys expire on their own)."""
    return RedisOverloadStore(redis_url, prefix=f"rktest-{uuid.uuid4().hex}", background=False, timeout=1.0)


def test_redis_back_is_said_once_and_used_again(
    store: RedisOverloadStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A flush that reaches Redis after a failure logs that it is back and clears the down flag."""
    store._failed(redis.ConnectionError("was down"))
    store.record(CircuitBreaker("svc", store=store), 1, 0)
    with caplog.at_level(logging.INFO, logger="retrykit"):
        assert store.flush() is True
    assert (False, 1) == (store.down, caplog.text.count("reaches Redis at"))


def test_breaker_state_from_redis_counts_the_window(store: RedisOverloadStore) -> None:
    """Failures recorded by this store reach Redis, which opens the breaker past the ratio and says so."""
    breaker = CircuitBreaker("svc", store=store, min_throughput=4, failure_ratio=0.5, open_for=60)
    store.record(breaker, 1, 4)
    assert store.flush() is True
    state = store.breaker_state(breaker)
    assert ("redis", "open", True) == (state["store"], state["state"], state["remaining"] > 0)
    assert store.allow(breaker) > 0  # the open state came back with the flush: no round trip needed


@pytest.mark.parametrize("shape", ["ratio", "quota", "adaptive"])
def test_budget_state_from_redis_has_each_shapes_figures(store: RedisOverloadStore, shape: str) -> None:
    """Read from Redis, each shape reports its own measure (balance or reject probability)."""
    budget = {
        "ratio": RetryBudget("svc", store=store),
        "quota": RetryBudget.quota("svc", 10, store=store),
        "adaptive": RetryBudget.adaptive("svc", store=store),
    }[shape]
    budget.admitted()
    assert budget.withdraw(ErrorCategory.NETWORK_ERROR) is not None
    store.flush()
    state = budget.state()
    assert "redis" == state["store"]
    assert 1 == state["spent"]
    assert ("reject_probability" if shape == "adaptive" else "balance") in state
