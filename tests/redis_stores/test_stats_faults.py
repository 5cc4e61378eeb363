"""Redis statistics under faults: a private redis-server hung, killed or full; exact totals after."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from redis.connection import AbstractConnection

import retrykit
import retrykit.events
import retrykit.stats
from retrykit import _stats
from retrykit.stats import MemoryStore, RedisStore, StatsRecorder, analyze

FIELD = "failed:network_error"
T0 = 1_800_000_000.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_SERVER = ("redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")


class OwnRedis:
    """A private redis-server for one test: hang it, kill it, fill it, without touching the shared one."""

    def __init__(self, *extra: str) -> None:
        self.port = _free_port()
        self.extra = extra
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start (or restart, on the same port) the server and wait until it answers."""
        self.proc = subprocess.Popen(
            [*_SERVER, "--port", str(self.port), *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def client(self) -> redis.Redis:
        """A plain client of this server."""
        return redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def hang(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing is answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL and reap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(5)

    def stop(self) -> None:
        """Stop for good (teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    """A redis-server of this test's own on a free port, stopped afterwards."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not on PATH; install it (apt-get install redis-server)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    server = OwnRedis()
    try:
        yield server
    finally:
        server.stop()


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Waits:
    """What the calling thread waited on: Redis (each connect or reply, by its timeout) and stats threads."""

    def __init__(self) -> None:
        self.redis: list[float | None] = []
        self.joins: list[float | None] = []


@contextmanager
def caller_waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Waits]:
    """Record, for this thread only, every Redis connect and reply awaited and every stats thread joined."""
    waits, caller = Waits(), threading.get_ident()
    connect, read_response, join = (
        AbstractConnection.connect,
        AbstractConnection.read_response,
        threading.Thread.join,
    )

    def spy_connect(conn: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == caller:
            waits.redis.append(conn.socket_connect_timeout)
        return connect(conn, *args, **kwargs)

    def spy_read_response(conn: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == caller:
            waits.redis.append(conn.socket_timeout)
        return read_response(conn, *args, **kwargs)

    def spy_join(thread: threading.Thread, timeout: float | None = None) -> None:
        if threading.get_ident() == caller and thread.name == "retrykit-stats":
            waits.joins.append(timeout)
        join(thread, timeout)

    with monkeypatch.context() as patch:
        patch.setattr(AbstractConnection, "connect", spy_connect)
        patch.setattr(AbstractConnection, "read_response", spy_read_response)
        patch.setattr(threading.Thread, "join", spy_join)
        yield waits


def _gave_up(operation: str) -> retrykit.events.GaveUp:
    return retrykit.events.GaveUp(
        operation,
        1,
        "E",
        retrykit.Classification(retrykit.ErrorCategory.NETWORK_ERROR, "t"),
        retrykit.events.StopReason.NON_RETRYABLE,
        0,
    )


def _total(store: RedisStore, field: str = FIELD) -> int:
    now = store.clock()
    return sum(c.get(field, 0) for c in store.read(None, now - 3600, now).values())


def test_a_batch_applied_before_the_connection_failed_is_not_applied_again(own_redis: OwnRedis) -> None:
    """Redis applied the batch, the reply was lost: the resent batch is skipped, not counted twice."""
    store = RedisStore(own_redis.url, prefix="rk-harden", background=False, clock=Clock())
    real = store.client.pipeline

    def pipeline_that_loses_replies(*args: Any, **kwargs: Any) -> Any:
        pipe = real(*args, **kwargs)
        execute = pipe.execute

        def execute_then_fail() -> Any:
            execute()
            raise redis.ConnectionError("reply lost")

        pipe.execute = execute_then_fail
        return pipe

    for _ in range(10):
        store.add("op", {FIELD: 1})
    store.client.pipeline = pipeline_that_loses_replies  # type: ignore[method-assign]
    assert store.flush() is False
    assert store.flush() is False
    store.client.pipeline = real  # type: ignore[method-assign]
    store.add("op", {FIELD: 1})
    assert store.flush() is True
    assert 11 == _total(store)


def _hung_writer(url: str, n: int, ready: Any, go: Any, resumed: Any) -> None:
    store = RedisStore(url, prefix="rk-harden", flush_interval=0.02, timeout=0.2)
    rec = StatsRecorder(MemoryStore(), store)
    for i in range(n // 2):
        rec.local.add("x", {})
        store.add(f"op{i % 3}", {FIELD: 1})
    store.flush()
    ready.set()
    go.wait(10)
    for i in range(n - n // 2):  # sent into a hung server: each batch times out, then lands late
        store.add(f"op{i % 3}", {FIELD: 1})
        if i % 50 == 0:
            time.sleep(0.01)
    resumed.wait(10)
    store.close()


def test_exact_totals_from_four_processes_across_a_hang(own_redis: OwnRedis) -> None:
    """Four writers, Redis hung (SIGSTOP) for 1 s mid-stream: afterwards exactly 4 x N counted."""
    ctx = multiprocessing.get_context("spawn")
    n = 2000
    ready = [ctx.Event() for _ in range(4)]
    go, resumed = ctx.Event(), ctx.Event()
    procs = [ctx.Process(target=_hung_writer, args=(own_redis.url, n, r, go, resumed)) for r in ready]
    for p in procs:
        p.start()
    try:
        for r in ready:
            assert r.wait(30)
        own_redis.hang()
        go.set()
        time.sleep(1.0)
        own_redis.resume()
        resumed.set()
        for p in procs:
            p.join(30)
            assert 0 == p.exitcode
    finally:
        own_redis.resume()
        for p in procs:
            if p.is_alive():
                p.kill()
    reader = RedisStore(own_redis.url, prefix="rk-harden", background=False)
    assert 4 * n == _total(reader)


def test_killed_redis_keeps_counts_and_sends_them_once_back(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed: counts stay buffered, one warning, adds never reach Redis; restarted: exactly those arrive."""
    store = RedisStore(own_redis.url, prefix="rk-harden", background=False, clock=Clock())
    store.add("op", {FIELD: 5})
    assert store.flush()
    own_redis.kill()  # --save '': what Redis held is gone with it
    with caller_waits(monkeypatch) as waits:
        for _ in range(1000):
            store.add("op", {FIELD: 1})
    assert ([], 1) == (waits.redis, store.buffered())  # one buffered counter, no connect, no reply
    with caplog.at_level(logging.INFO, logger="retrykit"):
        for _ in range(3):
            assert store.flush() is False
        own_redis.start()
        assert store.flush() is True
    assert 1000 == _total(store)
    messages = [r.getMessage() for r in caplog.records]
    assert 1 == sum("cannot reach Redis" in m for m in messages)
    assert 1 == sum("reach Redis" in m and "again" in m for m in messages)


def test_maxmemory_refuses_whole_batches_and_nothing_is_counted_twice(own_redis: OwnRedis) -> None:
    """At maxmemory 1mb (noeviction) batches fail whole or apply once: exact totals once memory is freed."""
    client = own_redis.client()
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1mb")
    store = RedisStore(own_redis.url, prefix="rk-harden", background=False, clock=Clock())
    sent = failed = 0
    for round_ in range(60):  # new keys every round until Redis refuses writes
        for i in range(40):
            store.add(f"op-{round_}-{i}", {FIELD: 1, "first_failed": 1})
            sent += 1
        if not store.flush():
            failed += 1
    assert failed > 0  # the limit was reached
    client.config_set("maxmemory", "0")
    assert store.flush() is True
    assert sent == _total(store)
    assert sent == _total(store, "first_failed")


def test_analyze_with_redis_hung_falls_back_fast(
    own_redis: OwnRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis hung, analyze() waits on it once, within the caller timeout, then answers from memory."""
    store = RedisStore(own_redis.url, prefix="rk-harden", flush_interval=3600)  # its thread stays idle
    rec = StatsRecorder(MemoryStore(), store)
    _stats.use_recorder(rec)
    rec(_gave_up("op"))
    own_redis.hang()
    try:
        with caller_waits(monkeypatch) as first:
            results = [analyze("op")]
        with caller_waits(monkeypatch) as later:
            results += [analyze("op"), analyze("op")]
    finally:
        own_redis.resume()
    assert [("memory", 1)] * 3 == [(r.source, r.total_errors) for r in results]
    assert first.redis  # it did ask the hung server
    assert {_stats.CALLER_TIMEOUT} == set(first.redis)  # each wait bounded by the caller timeout
    assert ([], []) == (later.redis, later.joins)  # Redis known unreachable: no wait at all


def test_a_settings_change_never_blocks_a_retried_call(
    own_redis: OwnRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stats setting changed while Redis hangs: the next retried call waits on neither Redis nor threads."""
    retrykit.configure(stats_redis_url=own_redis.url)
    rec = retrykit.stats.recorder()
    assert rec.shared is not None
    rec.shared.prefix = "rk-harden"
    rec.shared.add("op", {FIELD: 1})
    own_redis.hang()
    try:
        retrykit.configure(stats_bucket_seconds=30)
        calls = 0

        @retrykit.retry(operation="after-change")
        def fn() -> str:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionResetError
            return "ok"

        with caller_waits(monkeypatch) as waits, retrykit.testing.no_wait():
            assert "ok" == fn()
        rebuilt = retrykit.stats.recorder()
    finally:
        own_redis.resume()
    assert rebuilt is not rec  # the settings change did replace the recorder during the call
    assert rec.shared._stop.is_set()  # the old store was told to stop; its own thread sends the rest
    assert ([], []) == (waits.redis, waits.joins)


# Prints, at exit, the timeout of every join of a stats thread: its handler is registered before
# retrykit's, so it runs after retrykit's exit handler (atexit runs last-registered first).
_EXIT_SCRIPT = """
import atexit, json, sys, threading, time
joins = []
_join = threading.Thread.join
def join(self, timeout=None):
    if self.name == "retrykit-stats":
        joins.append(timeout)
    _join(self, timeout)
threading.Thread.join = join
atexit.register(lambda: print(json.dumps(joins), flush=True))
import retrykit, retrykit.testing
from retrykit import _stats
retrykit.configure(stats_redis_url=sys.argv[1])
rec = _stats.recorder()
rec.shared.prefix = "rk-harden"
rec.shared.flush_interval = float(sys.argv[2])
calls = 0
@retrykit.retry(operation="exiting")
def fn():
    global calls
    calls += 1
    if calls % 2:
        raise ConnectionResetError
    return "ok"
with retrykit.testing.no_wait():
    for _ in range(50):
        fn()
time.sleep(float(sys.argv[3]))  # hung: the background thread is now stuck on the server
"""


def test_interpreter_exit_is_bounded_with_redis_hung(own_redis: OwnRedis) -> None:
    """A process whose Redis hangs exits cleanly, waiting for its stats thread EXIT_TIMEOUT (1 s) in all."""
    own_redis.hang()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _EXIT_SCRIPT, own_redis.url, "0.05", "0.3"],
            capture_output=True,
            text=True,
            timeout=20,  # a stats thread that kept the interpreter alive would hang it for good
            check=False,
        )
    finally:
        own_redis.resume()
    assert 0 == proc.returncode
    assert "Traceback" not in proc.stderr
    joins = json.loads(proc.stdout)
    assert joins  # exit did wait for the last counts
    assert None not in joins
    assert sum(joins) <= _stats.EXIT_TIMEOUT


def test_exit_sends_the_last_counts_when_redis_is_up(own_redis: OwnRedis) -> None:
    """A healthy Redis gets the counts still buffered at exit (no periodic flush ran)."""
    subprocess.run(
        [sys.executable, "-c", _EXIT_SCRIPT, own_redis.url, "3600", "0"],
        check=True,
        capture_output=True,
        timeout=20,
    )
    reader = RedisStore(own_redis.url, prefix="rk-harden", background=False)
    now = time.time()
    assert 50 == reader.read("exiting", now - 600, now)["exiting"]["failed:network_error"]


@pytest.mark.parametrize(
    "names",
    [
        ["a{b}c", "a(b)c", "a%7Bb%7Dc"],
        ["lone\ud800surrogate", "lone\udfffsurrogate", "lone?surrogate"],
        ["sp ace", "sp%20ace", "ünïcödé", "tab\tnew\nline"],
        ["{", "}", "{}", ""],
    ],
    ids=["braces", "surrogates", "escapes", "tags"],
)
def test_names_are_encoded_safely_and_kept_distinct(own_redis: OwnRedis, names: list[str]) -> None:
    """Any operation (and rule) name round-trips through Redis as itself, each one counted apart."""
    store = RedisStore(own_redis.url, prefix="rk-harden", background=False, clock=Clock())
    for i, name in enumerate(names, start=1):
        store.add(name, {FIELD: i, f"rule_failed:{name}": 1})
    assert store.flush() is True
    counts = store.read(None, T0 - 60, T0)
    assert {name: i for i, name in enumerate(names, start=1)} == {op: c[FIELD] for op, c in counts.items()}
    assert all(counts[name][f"rule_failed:{name}"] == 1 for name in names)
    for name in names:
        key = store.key(name, 0)
        assert key.count("{") == 1
        assert key.count("}") == 1


def test_the_flush_thread_survives_any_error_and_says_so_once(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """A non-Redis error (a bug, a bad value) drops its batch, is logged once, and flushing goes on."""
    store = RedisStore(own_redis.url, prefix="rk-harden", flush_interval=0.02, clock=Clock())
    broken = {"on": True}
    real = store._send

    def send(*args: Any) -> bool:
        if broken["on"]:
            raise OverflowError("cannot convert float infinity to integer")
        return real(*args)

    store._send = send  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="retrykit"):
        for _ in range(5):
            store.add("op", {FIELD: 1})
            time.sleep(0.05)
        broken["on"] = False
        store.add("op", {FIELD: 7})
        deadline = time.monotonic() + 3
        while store.buffered() and time.monotonic() < deadline:
            time.sleep(0.02)
    store.close()
    assert store._thread is not None
    assert not store._thread.is_alive()
    assert 7 == _total(store)
    assert 5 == store.dropped
    assert 1 == sum("OverflowError" in r.getMessage() for r in caplog.records)


def test_absurd_retention_is_refused_and_clamped(own_redis: OwnRedis) -> None:
    """stats_retention_hours=1e308 is refused naming the key; a store given it directly still works."""
    with pytest.raises(retrykit.ConfigError, match="stats_retention_hours"):
        retrykit.configure(stats_retention_hours=1e308)
    store = RedisStore(
        own_redis.url, prefix="rk-harden", background=False, retention_hours=1e308, clock=Clock()
    )
    store.add("op", {FIELD: 3})
    assert store.flush() is True
    assert 3 == _total(store)
    memory = MemoryStore(retention_hours=1e308, clock=Clock())
    memory.add("op", {FIELD: 1})
    assert 1 == memory.read("op", T0, T0)["op"][FIELD]


def test_offline_buffer_caps_operation_names_and_counts_the_overflow() -> None:
    """While Redis is down, 100,000 names buffer as 1,000 plus <other>, and the overflow is counted."""
    store = RedisStore("redis://127.0.0.1:1/10", prefix="rk-harden", background=False, clock=Clock())
    local = MemoryStore(clock=Clock())
    rec = StatsRecorder(local, store)
    for i in range(100_000):
        rec(_gave_up(f"name-{i}"))
    assert store.flush() is False
    assert 1001 == store.buffered()
    assert 99_000 == store.overflowed
    a = analyze(recorder=rec)
    assert ("memory", 100_000, 99_000) == (a.source, a.total_errors, a.overflowed)
