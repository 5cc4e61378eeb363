"""The Redis overload store at its edges: local answers without round trips, closing, the background
loop; Redis unreachable, down or back; forks; states read from a real Redis."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
import redis

from retrykit import CircuitBreaker, ErrorCategory, RetryBudget
from retrykit._overload_memory import CLOSED, OPEN
from retrykit._overload_redis import RedisOverloadStore, _after_fork_in_child

NOWHERE = "redis://127.0.0.1:1/10"  # nothing listens: refused at once


class _Client:
    """A stand-in redis client: scripts never run; script_load and ping do what the test says."""

    def __init__(self, load: Exception | None = None, ping: Exception | None = None) -> None:
        self.load, self.ping_error = load, ping
        self.store: RedisOverloadStore | None = None
        self.pings = 0

    def register_script(self, source: str) -> Any:
        return lambda **kwargs: pytest.fail("no script runs in these tests")

    def script_load(self, source: str) -> None:
        if self.load is not None:
            raise self.load

    def ping(self) -> None:
        self.pings += 1
        assert self.store is not None
        self.store._stop.set()  # one turn of the loop
        if self.ping_error is not None:
            raise self.ping_error


def _store(client: Any = None) -> RedisOverloadStore:
    return RedisOverloadStore(NOWHERE, background=False, client=client, flush_interval=0.0)


def test_a_closed_breaker_is_allowed_without_a_round_trip() -> None:
    """A breaker last seen closed is allowed at once: the unreachable Redis is not asked."""
    store = _store()
    breaker = CircuitBreaker("svc", store=store)
    store._cache[breaker.key] = (CLOSED, time.monotonic())
    assert (0.0, False, 0) == (store.allow(breaker), store.down, store.fallbacks)


def test_a_breaker_new_to_the_process_is_asked_of_redis() -> None:
    """A breaker new to this process is asked of Redis (another process may have opened it)."""
    store = _store()
    assert (0.0, True, 1) == (store.allow(CircuitBreaker("svc", store=store)), store.down, store.fallbacks)


@pytest.mark.parametrize(
    ("state", "left", "open"), [(CLOSED, 30.0, False), (OPEN, 30.0, True), (OPEN, -1.0, False)]
)
def test_peek_reads_the_state_last_seen(state: int, left: float, open: bool) -> None:
    """peek() answers from the state the last batch brought back: seconds left while open, else 0."""
    store = _store()
    breaker = CircuitBreaker("svc", store=store)
    store._cache[breaker.key] = (state, time.monotonic() + left)
    assert open == (store.peek(breaker) > 0)
    assert not store.down


def test_outcomes_recorded_twice_go_in_one_batch() -> None:
    """Successes and failures recorded before a flush add up in the breaker's one pending batch."""
    store = _store()
    breaker = CircuitBreaker("svc", store=store)
    store.record(breaker, 1, 0)
    store.record(breaker, 2, 3)
    assert [3, 3] == store._breakers[breaker.key].pending[:2]


@pytest.mark.parametrize(("down", "flushes"), [(False, 1), (True, 0)])
def test_close_flushes_only_while_redis_is_reachable(
    down: bool, flushes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() without a background thread sends a last batch, unless Redis is known to be down."""
    store = _store()
    store.down = down
    sent: list[bool] = []
    monkeypatch.setattr(store, "flush", lambda: sent.append(True) or True)
    store.close()
    assert flushes == len(sent)


def test_the_background_loop_says_once_that_it_cannot_load_its_scripts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed script load at the thread's start marks the store down and warns, without raising."""
    client = _Client(load=redis.ConnectionError("refused"))
    store = client.store = _store(client)
    store._stop.set()
    with caplog.at_level(logging.WARNING, logger="retrykit"):
        store._run()
    assert (True, 1) == (store.down, caplog.text.count("cannot reach Redis"))


@pytest.mark.parametrize(
    ("error", "down", "logged"),
    [
        (None, False, ""),
        (redis.ConnectionError("still down"), True, ""),
        (KeyError("bug"), True, "flush failed: KeyError"),
    ],
    ids=["back", "still-down", "a-bug"],
)
def test_the_background_loop_checks_a_down_redis_and_survives(
    error: Exception | None, down: bool, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    """While down, each turn pings Redis: back, the store is up; a Redis error is quiet; a bug is logged."""
    client = _Client(ping=error)
    store = client.store = _store(client)
    store.down = True
    with caplog.at_level(logging.ERROR, logger="retrykit"):
        store._run()
    assert (1, down) == (client.pings, store.down)
    assert logged in caplog.text
    assert ("" == logged) == ("flush failed" not in caplog.text)


# --------------------------------------------------------------------------- Redis unreachable or down, forks


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


# --------------------------------------------------------------------------- with a real Redis


@pytest.fixture
def store(redis_url: str) -> Any:
    """A store on the tests' Redis under a prefix of its own; its keys are removed afterwards."""
    made = RedisOverloadStore(redis_url, prefix=f"rktest-{uuid.uuid4().hex}", background=False, timeout=1.0)
    yield made
    for key in made.flush_client.scan_iter(match=made.prefix + ":*"):
        made.flush_client.delete(key)


def test_a_breaker_whose_open_time_is_up_asks_redis(store: RedisOverloadStore) -> None:
    """Last seen open, its time up: Redis is asked, and a breaker Redis holds closed is allowed."""
    breaker = CircuitBreaker("svc", store=store)
    store._cache[breaker.key] = (OPEN, 0.0)
    assert (0.0, CLOSED) == (store.allow(breaker), store._cache[breaker.key][0])


def test_the_fleet_reads_a_budget_without_settings_with_the_defaults(store: RedisOverloadStore) -> None:
    """A budget hash written before settings were kept is read back as a budget with the default settings."""
    store.flush_client.hset(store.budget_key(RetryBudget("old", store=store)), "spent", 3)
    found = store.fleet()
    assert [("old", "ratio", RetryBudget("old").ratio)] == [(b.key, b.shape, b.ratio) for b in found]


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
