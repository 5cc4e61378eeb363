"""The Redis statistics store at its edges: unreachable Redis, broken batches, exit and fork."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from retrykit import _stats
from retrykit.stats import MemoryStore, RedisStore, StatsRecorder, StatsUnavailable

from ..test_stats import _gave_up

FIELD = "failed:network_error"
T0 = 1_800_000_000.0
NOWHERE = "redis://127.0.0.1:1/10"  # nothing listens: refused at once


def _clock() -> float:
    return T0


@pytest.mark.parametrize("what", ["read", "cleanup"])
def test_unreachable_redis_is_stats_unavailable_naming_the_url(what: str) -> None:
    """A read or clean-up of an unreachable Redis raises StatsUnavailable with the URL, not redis's error."""
    store = RedisStore(NOWHERE, background=False, clock=_clock)
    with pytest.raises(StatsUnavailable, match=r"127\.0\.0\.1:1\b"):
        if what == "read":
            store.read("op", T0 - 60, T0)
        else:
            store.cleanup(1)


def test_the_recorder_falls_back_to_its_own_counts(caplog: pytest.LogCaptureFixture) -> None:
    """With Redis unreachable, a recorder's clean-up cleans memory and warns; nothing raises."""
    local = MemoryStore(clock=lambda: T0 - 7200)
    rec = StatsRecorder(local, RedisStore(NOWHERE, background=False, clock=_clock))
    rec(_gave_up())
    local.clock = _clock
    with caplog.at_level(logging.WARNING, logger="retrykit"):
        assert 1 == rec.cleanup(1)
    assert "cannot read statistics from Redis at redis://127.0.0.1:1/10" in caplog.text


def test_a_flush_that_cannot_take_the_lock_keeps_the_counts() -> None:
    """A caller's flush while another flush holds the lock returns False and leaves the counts buffered."""
    store = RedisStore(NOWHERE, background=False, clock=_clock)
    store.add("op", {FIELD: 1})
    with store._flush_lock:
        assert store.flush(timeout=0) is False
    assert 1 == store.buffered()


def test_a_bug_in_flushing_is_reported_once_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    """An unexpected error inside flush is logged once per error type; flush answers False."""
    store = RedisStore(NOWHERE, background=False, clock=_clock)

    def broken(client: Any, timeout: float | None) -> bool:
        raise KeyError("bug")

    store._flush = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="retrykit"):
        assert [False, False] == [store.flush(), store.flush()]
    assert 1 == sum("statistics flush failed (KeyError)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("wait", [True, False])
def test_close_without_a_thread_sends_the_last_counts_once(wait: bool) -> None:
    """A store without a thread flushes once on its first close (whatever wait says), never again."""
    store = RedisStore(NOWHERE, background=False, clock=_clock)
    flushes: list[float | None] = []
    store.flush = lambda timeout=None: bool(flushes.append(timeout))  # type: ignore[method-assign]
    store.close(wait=wait)
    store.close(wait=wait)
    assert [_stats.CALLER_TIMEOUT] == flushes


def test_exit_closes_every_live_store() -> None:
    """The exit handler stops every store still alive, each with its last flush."""
    store = RedisStore(NOWHERE, background=False, clock=_clock)
    _stats._close_all_at_exit()
    assert store._stop.is_set()


def test_a_forked_child_starts_with_empty_buffers_and_its_own_writer_id() -> None:
    """After fork, the child's stores forget the parent's counts (the parent sends them) and get a new id."""
    store = RedisStore(NOWHERE, background=False, clock=_clock)
    store.add("op", {FIELD: 1})
    writer = store._writer
    _stats._after_fork_in_child()
    assert (0, True) == (store.buffered(), store._writer != writer)


def test_a_sink_failure_is_shared_through_redis_too() -> None:
    """A sink's failure is counted under <sinks> in this process and buffered for Redis."""
    shared = RedisStore(NOWHERE, background=False, clock=_clock)
    _stats.use_recorder(StatsRecorder(MemoryStore(), shared))
    _stats.record_sink_failure("mysink", "ValueError")
    assert [(_stats.SINKS, {"sink_failed:mysink:ValueError": 1})] == [
        (op, dict(c)) for (_, op), c in shared._pending.items()
    ]


# ---------------------------------------------------------------------------- with a real Redis


@pytest.fixture
def store(redis_url: str) -> RedisStore:
    """A store on the tests' Redis under a prefix of its own."""
    return RedisStore(redis_url, prefix=f"rktest-{uuid.uuid4().hex}", background=False, clock=_clock)


def test_a_count_that_cannot_be_encoded_is_dropped_and_the_rest_sent(
    store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    """An operation whose counts cannot be sent as integers is dropped and counted; the others arrive."""
    store.add("bad", {FIELD: float("inf")})  # type: ignore[dict-item]
    store.add("good", {FIELD: 2})
    with caplog.at_level(logging.ERROR, logger="retrykit"):
        assert store.flush() is True
    assert "could not encode" in caplog.text
    assert {"good": 2} == {op: c[FIELD] for op, c in store.read(None, T0, T0).items()}
    assert float("inf") == store.dropped  # what was dropped, counted


def test_a_batch_failing_with_a_non_redis_error_is_dropped_not_resent(store: RedisStore) -> None:
    """A non-Redis error while sending drops that batch (counted) so later batches are not stuck."""
    real = store.client.pipeline

    class Broken:
        def __init__(self) -> None:
            self.pipe = real(transaction=False)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.pipe, name)

        def execute(self) -> None:
            raise ValueError("bug")

    store.client.pipeline = lambda transaction=False: Broken()  # type: ignore[method-assign]
    store.add("op", {FIELD: 3})
    assert store.flush() is True
    store.client.pipeline = real  # type: ignore[method-assign]
    store.add("op", {FIELD: 1})
    assert store.flush() is True
    assert (3, 1) == (store.dropped, store.read("op", T0, T0)["op"][FIELD])


def test_cleanup_deletes_buckets_older_than_asked(store: RedisStore) -> None:
    """cleanup(hours) deletes the buckets older than that and keeps the newer ones."""
    store.add("op", {FIELD: 1}, timestamp=T0 - 3 * 3600)
    store.add("op", {FIELD: 2}, timestamp=T0)
    assert store.flush() is True
    assert 1 == store.cleanup(1)
    assert 2 == store.read("op", T0 - 24 * 3600, T0)["op"][FIELD]
    store.client.delete(f"{store.prefix}:operations", store.key("op", int(T0 // 60)))
