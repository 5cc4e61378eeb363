"""async def tasks in real workers of every pool, and the attempt ledger's one round trip."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
redis = pytest.importorskip("redis")

from celery_services import require_service  # noqa: E402

import retrykit  # noqa: E402
from retrykit import ConfigError, ErrorCategory  # noqa: E402
from retrykit_celery._ledger import AttemptLedger  # noqa: E402
from retrykit_celery._runner import _run_fresh  # noqa: E402

HERE = Path(__file__).resolve().parent  # the apps are top-level modules here (no package)
STORE = "redis://127.0.0.1:6379/15"
TASKS = 8


def _worker(pool: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    concurrency = "1" if pool == "solo" else "4"
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_pools_app",
                "worker",
                "-P",
                pool,
                "-c",
                concurrency,
                "--without-mingle",
                "--without-gossip",
                "--loglevel=WARNING",
                "-n",
                f"p{uuid.uuid4().hex[:6]}@%h",
            ],
            cwd=HERE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("pool", ["gevent", "eventlet", "prefork", "threads", "solo"])
def test_async_tasks_run_on_every_pool(pool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """8 concurrent async def tasks failing once: each runs exactly twice, sees its own request, and
    returns; no "asyncio.run() cannot be called from a running event loop" on gevent or eventlet."""
    # Found, not imported: importing eventlet here would hook every later fork() in this process.
    if importlib.util.find_spec(pool if pool in ("gevent", "eventlet") else "celery") is None:
        pytest.skip(f"{pool} is not installed: pip install -e '.[dev]'")
    require_service("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --port 6379")
    run = uuid.uuid4().hex[:8]
    own = {"RKP_QUEUE": f"rk-pools-{pool}-{run}", "RKP_RUNS": f"rk:pools:{run}:runs"}
    for key, value in own.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("celery_pools_app", None)
    import celery_pools_app as app_module

    store = redis.Redis.from_url(STORE)
    log = tmp_path / "worker.log"
    proc = _worker(pool, {**os.environ, **own, "PYTHONPATH": str(HERE)}, log)
    try:
        results = [app_module.fetch.delay(i) for i in range(TASKS)]
        outcomes = []
        for r in results:
            try:
                outcomes.append(r.get(timeout=60, interval=0.05))
            except Exception as exc:
                outcomes.append(repr(exc))
        runs = sorted(x.decode() for x in store.lrange(own["RKP_RUNS"], 0, -1))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        store.delete(own["RKP_RUNS"])
        with contextlib.suppress(Exception), app_module.app.connection_for_write() as conn:
            conn.default_channel.queue_delete(own["RKP_QUEUE"])
        sys.modules.pop("celery_pools_app", None)
    text = log.read_text()
    assert [[i * 2, 1] for i in range(TASKS)] == outcomes, text[-3000:]
    assert sorted(f"{r.id}:{n}" for r in results for n in (0, 1)) == runs
    assert "running event loop" not in text


@pytest.mark.parametrize("pool", ["gevent", "eventlet", None])
def test_another_loop_in_the_thread_is_a_configuration_error(
    pool: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coroutine that cannot get a loop of its own (another asyncio loop runs in the OS thread)
    fails with a permanent ConfigError naming the pool and the fix, never the RuntimeError that
    classifies as temporary and is retried; the coroutine is closed, not left unawaited."""
    for name in ("gevent", "eventlet"):
        if name == pool:
            monkeypatch.setitem(sys.modules, name, sys.modules.get(name) or object())
        else:
            monkeypatch.delitem(sys.modules, name, raising=False)

    async def body() -> int:
        return 1

    async def main() -> BaseException:
        coroutine = body()
        with pytest.raises(ConfigError) as caught:
            _run_fresh(coroutine)
        assert coroutine.cr_frame is None
        return caught.value

    err = asyncio.run(main())
    assert "-P prefork, threads or solo" in str(err)
    assert (f"the {pool} pool" in str(err)) is (pool is not None)
    assert ErrorCategory.PERMANENT_ERROR == retrykit.classify(err).category


class _Counting:
    """Counts the replies the ledger's connections read."""

    def __init__(self) -> None:
        self.reads = 0

    def wrap(self, base: type) -> type:
        counting = self

        class Counted(base):  # type: ignore[misc, valid-type]
            def read_response(self, *args: Any, **kwargs: Any) -> Any:
                counting.reads += 1
                return super().read_response(*args, **kwargs)

        return Counted


@pytest.mark.parametrize("attempts", [1, 3])
def test_the_ledger_waits_for_one_reply_per_attempt(redis_url: str, attempts: int) -> None:
    """begin waits for its reply, end reads none (one round trip per attempt); the thread's next
    begin reads end's replies first, and every connection then sees the attempts done."""
    prefix = f"rktest-ledger-{uuid.uuid4().hex[:8]}"
    ledger = AttemptLedger(redis_url, prefix=prefix)
    pool = ledger.client.connection_pool
    counting = _Counting()
    pool.connection_class = counting.wrap(pool.connection_class)
    task_id = uuid.uuid4().hex
    try:
        for n in range(attempts):
            assert "run" == ledger.begin(task_id, n)
            before = counting.reads
            ledger.end(task_id, n)
            assert before == counting.reads
        assert "done" == ledger.begin(task_id, 0)  # a redelivery on this thread, after the ends
        other = AttemptLedger(redis_url, prefix=prefix)
        assert ["done"] * attempts == [other.begin(task_id, n) for n in range(attempts)]
        assert 0 == ledger.client.exists(*(ledger._keys(task_id, n)[1] for n in range(attempts)))
    finally:
        ledger.client.delete(*(k for n in range(attempts) for k in ledger._keys(task_id, n)))
