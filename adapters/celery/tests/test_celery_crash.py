"""A prefork worker killed with SIGKILL mid-batch: nothing lost, no attempt body run twice."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
redis = pytest.importorskip("redis")

from celery_services import require_service  # noqa: E402

HERE = Path(__file__).resolve().parent  # the apps are top-level modules here (no package)
BROKERS = {
    "redis": "redis://127.0.0.1:6379/13",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
BACKEND = "redis://127.0.0.1:6379/15"
TASKS = 100
STATS = "redis://127.0.0.1:6379/13"


def _late_successes(start: float) -> int:
    """
    Late successes of the crash app's async task, as every worker reported them to Redis, from a
    fixed point (a minute before *start*): a window that slid with time would lose old counts.
    """
    import retrykit
    import retrykit.stats  # a submodule: not loaded by `import retrykit` (alone, this test failed)

    retrykit.configure(stats_redis_url=STATS)
    return retrykit.stats.analyze("rk_crash.async_job", since=time.time() - start + 60).late_successes


def _worker(env: dict[str, str], log: Path, concurrency: int = 4) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the worker has its own copy of the descriptor
        return _popen_worker(env, out, concurrency)


def _popen_worker(env: dict[str, str], out: Any, concurrency: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_crash_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(concurrency),
            "--without-mingle",
            "--without-gossip",
            "--loglevel=WARNING",
            "-n",
            f"w{uuid.uuid4().hex[:6]}@%h",
        ],
        cwd=HERE,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the worker leads its own session: its group id is its pid
    proc.wait(10)


def _crash_app(
    monkeypatch: pytest.MonkeyPatch, broker_url: str, kind: str, guard: str, vt: float = 8
) -> tuple[dict[str, str], Any]:
    """The worker environment for a run of its own, and the crash app configured the same way here."""
    run = uuid.uuid4().hex[:8]
    own = {
        "RK_BROKER": broker_url,
        "RK_BACKEND": BACKEND,
        "RK_QUEUE": f"rk-{kind}-{run}",
        "RK_GUARD": guard,
        "RK_RUNS": f"rk:{kind}:{run}:runs",
        "RK_VT": str(vt),
    }
    for key, value in own.items():
        monkeypatch.setenv(key, value)  # restored after the test
    sys.modules.pop("celery_crash_app", None)
    crash = importlib.import_module("celery_crash_app")  # configured for this run
    return {**os.environ, **own, "PYTHONPATH": str(HERE)}, crash


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("broker", list(BROKERS))
def test_sigkill_mid_batch_loses_nothing(
    broker: str,
    how: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """100 retrying tasks, the worker killed (SIGKILL to the whole process group) or stopped (SIGTERM:
    warm shutdown) mid-batch, a new worker: all final, none twice. Default options: the ledger
    lives on the broker's Redis, or the result backend's."""
    require_service("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --port 6379")
    if broker == "rabbitmq":
        require_service("RabbitMQ", "127.0.0.1", 5672, "rabbitmq-server -detached")
    env, crash = _crash_app(monkeypatch, BROKERS[broker], "crash", guard="")

    store = redis.Redis.from_url(BACKEND)
    log = tmp_path / "worker.log"
    first = _worker(env, log)
    second = None
    try:
        results = [crash.job.apply_async(args=(i,)) for i in range(TASKS)]
        deadline = time.monotonic() + 60
        while store.llen(env["RK_RUNS"]) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        runs_before_kill = store.llen(env["RK_RUNS"])
        if how == "SIGTERM":
            first.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                first.wait(30)
        _kill(first)
        killed_at = time.monotonic()
        second = _worker(env, log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(r.ready() for r in results):
            time.sleep(0.2)
        drained = time.monotonic() - killed_at
        states = [r.state for r in results]
        runs = [x.decode() for x in store.lrange(env["RK_RUNS"], 0, -1)]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                _kill(proc)
    successes = states.count("SUCCESS")
    failures = states.count("FAILURE")
    duplicates = len(runs) - len(set(runs))
    needed = sum(i % 3 + 1 for i in range(TASKS))  # attempt bodies a crash-free run needs
    with capsys.disabled():
        print(
            f"\n[crash:{broker}] {TASKS} tasks, {how} after {runs_before_kill} attempt bodies; "
            f"after the restart all final in {drained:.1f}s: {successes} SUCCESS, {failures} FAILURE, "
            f"{TASKS - successes - failures} not final; {len(runs)} attempt bodies run ({needed} without a "
            f"crash, {len(runs) - needed} cut by the kill and counted as failed attempts), {duplicates} twice"
        )
    assert TASKS == successes + failures, (states, log.read_text()[-3000:])
    assert 0 == duplicates
    assert successes >= TASKS - 10
    store.delete(env["RK_RUNS"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("broker", list(BROKERS))
def test_a_poison_pill_ends_after_the_policys_attempts(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that kills its pool process on every attempt (defaults: acks_late,
    reject_on_worker_lost) runs max_attempts=3 times, then FAILURE with AttemptLost."""
    require_service("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --port 6379")
    if broker == "rabbitmq":
        require_service("RabbitMQ", "127.0.0.1", 5672, "rabbitmq-server -detached")
    env, crash = _crash_app(monkeypatch, BROKERS[broker], "lost", guard="")
    import retrykit
    from retrykit_celery import AttemptLost

    env["RETRYKIT_STATS_REDIS_URL"] = STATS  # the worker's statistics, shared through Redis
    start = time.time()
    before = _late_successes(start)
    store = redis.Redis.from_url(BACKEND)
    proc = _worker(env, tmp_path / "worker.log")
    try:
        assert 2 == crash.suicide.max_retries
        lost = crash.suicide.delay()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not lost.ready():
            time.sleep(0.1)
        # After the poison pill: a pool process it kills would lose the statistics it holds unsent.
        doubled = crash.async_job.delay(14)
        while time.monotonic() < deadline and not doubled.ready():
            time.sleep(0.1)
        time.sleep(1.0)  # a fourth run, if any, would show up now
        runs = [x.decode() for x in store.lrange(env["RK_RUNS"], 0, -1)]
        assert 42 == doubled.get(timeout=1)
        assert "FAILURE" == lost.state, (runs, (tmp_path / "worker.log").read_text()[-3000:])
        assert isinstance(lost.result, AttemptLost)
        assert 3 == lost.result.attempt
        assert [f"{lost.id}:0", f"{lost.id}:1", f"{lost.id}:2"] == runs
        deadline = time.monotonic() + 30  # statistics are sent every few seconds; CI under load took > 10 s
        while _late_successes(start) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        # async_job succeeded on attempt 2: a late success. At least one: the statistics are
        # fleet-wide, and another run of this suite on the same services may add its own.
        assert before + 1 <= _late_successes(start)
    finally:
        retrykit.configure(stats_redis_url="")
        _kill(proc)
        store.delete(env["RK_RUNS"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("broker", list(BROKERS))
def test_no_body_runs_twice_past_the_visibility_timeout(
    broker: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """visibility_timeout=2: 12 tasks whose retry waits 5 s, 2 of them with a 3 s body, on 2
    processes: every attempt body runs exactly once, none concurrently, the wait is not shortened."""
    require_service("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --port 6379")
    if broker == "rabbitmq":
        require_service("RabbitMQ", "127.0.0.1", 5672, "rabbitmq-server -detached")
    env, crash = _crash_app(monkeypatch, BROKERS[broker], "dup", guard="", vt=2)
    store = redis.Redis.from_url(BACKEND)
    log = tmp_path / "worker.log"
    proc = _worker(env, log, concurrency=2)
    try:
        results = [crash.long_wait.delay(3.0 if i < 2 else 0.3) for i in range(12)]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(r.ready() for r in results):
            time.sleep(0.2)
        states = [r.state for r in results]
        runs = [x.decode() for x in store.lrange(env["RK_RUNS"], 0, -1)]
    finally:
        _kill(proc)
        store.delete(env["RK_RUNS"])
    duplicates = len(runs) - len(set(runs))
    with capsys.disabled():
        print(
            f"\n[dup:{broker}] 12 tasks, policy delay 5 s, visibility timeout 2 s: {states.count('SUCCESS')} "
            f"SUCCESS, {len(runs)} attempt bodies (24 expected), {duplicates} twice"
        )
    assert ["SUCCESS"] * 12 == states, log.read_text()[-3000:]
    assert 0 == duplicates
    assert 24 == len(runs)
