"""The Redis overload store at its edges: local answers without round trips, closing, the background loop."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
import redis

from retrykit import CircuitBreaker, RetryBudget
from retrykit._breaker import CLOSED, OPEN
from retrykit._overload_redis import RedisOverloadStore

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


# ---------------------------------------------------------------------------- with a real Redis


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
