"""Real ``celery worker`` processes: an open breaker holds tasks in the broker; the ledger's Redis down."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")
redis = pytest.importorskip("redis")

from celery_services import require_service  # noqa: E402

HERE = Path(__file__).resolve().parent  # the apps are top-level modules here (no package)
BROKERS = {
    "redis": "redis://127.0.0.1:6379/14",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
BACKEND = "redis://127.0.0.1:6379/15"
STORE_URL = "redis://127.0.0.1:6379/14"
OPEN_FOR = 2.0
JOBS = 6
LEDGER_TASKS = 6
LEDGER_BOUND = 20.0


def _need(broker: str) -> None:
    require_service("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --port 6379")
    if broker == "rabbitmq":
        require_service("RabbitMQ", "127.0.0.1", 5672, "rabbitmq-server -detached")


@contextlib.contextmanager
def breaker_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, broker: str, pool: str, **settings: str
) -> Iterator[tuple[Any, Any, Path]]:
    """celery_breaker_app configured for a run of its own, here and in a worker process."""
    _need(broker)
    run = uuid.uuid4().hex[:8]
    own = {
        "RK_BROKER": BROKERS[broker],
        "RK_BACKEND": BACKEND,
        "RK_QUEUE": f"rk-breaker-{run}",
        "RK_RUNS": f"rk:breaker:{run}:runs",
        "RK_PREFIX": f"rk-overload:breaker-{run}",
        "RK_OPEN_FOR": str(OPEN_FOR),
        **settings,
    }
    for key, value in own.items():
        monkeypatch.setenv(key, value)  # restored after the test
    sys.modules.pop("celery_breaker_app", None)
    app = importlib.import_module("celery_breaker_app")
    log = tmp_path / "worker.log"
    command = [sys.executable, "-m", "celery", "-A", "celery_breaker_app", "worker", "-P", pool]
    command += ["-c", "2"] if pool == "prefork" else []
    command += ["--without-mingle", "--without-gossip", "--loglevel=WARNING", "-n", f"w{run}@%h"]
    env = {**os.environ, **own, "PYTHONPATH": str(HERE)}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    runs = redis.Redis.from_url(BACKEND)
    try:
        yield app, runs, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the worker leads its own session
        proc.wait(10)
        runs.delete(own["RK_RUNS"])
        with contextlib.suppress(Exception), app.app.connection_for_write() as conn:
            conn.default_channel.queue_delete(own["RK_QUEUE"])
        if app.STORE is not None:
            app.STORE.close()
            keys = redis.Redis.from_url(STORE_URL)
            for key in keys.scan_iter(f"{own['RK_PREFIX']}:*"):
                keys.delete(key)


def _runs(runs: Any, app: Any) -> list[tuple[str, str, int, float]]:
    """The attempt bodies run so far: (task, id, retries, time)."""
    out = []
    for raw in runs.lrange(app.RUNS, 0, -1):
        name, task_id, retries, at = raw.decode().split(":")
        out.append((name, task_id, int(retries), float(at)))
    return out


def _all_ready(results: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(r.ready() for r in results):
        time.sleep(0.05)


def _lines(log: Path, event: str) -> list[dict[str, str]]:
    """The worker's retrykit log lines of *event*, as their key=value fields."""
    found = []
    for line in log.read_text().splitlines():
        at = line.find(f"retrykit.{event} ")
        if at >= 0:
            found.append(dict(re.findall(r"(\w+)=(\S+)", line[at:])))
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("broker", "store", "pool"),
    [
        ("redis", "memory", "solo"),
        ("rabbitmq", "memory", "solo"),
        ("redis", "redis", "prefork"),
        ("rabbitmq", "redis", "prefork"),
    ],
)
def test_an_open_breaker_holds_tasks_in_the_broker(
    broker: str,
    store: str,
    pool: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A failure opens the breaker: queued tasks run no body until it ends, then succeed on attempt 1."""
    where = "memory" if store == "memory" else STORE_URL
    with breaker_app(monkeypatch, tmp_path, broker, pool, RK_STORE=where) as (app, runs, log):
        tripped = app.trip.delay()
        if store == "redis":  # the fleet's breaker: open in Redis before the jobs are sent
            deadline = time.monotonic() + 30
            while app.BREAKER.state()["state"] != "open" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert "open" == app.BREAKER.state()["state"], log.read_text()[-3000:]
        jobs = [app.job.delay(i) for i in range(JOBS)]  # solo: queued behind the trip
        _all_ready([tripped, *jobs], 60)
        assert "ok" == tripped.get(timeout=1), log.read_text()[-3000:]
        assert list(range(JOBS)) == [r.get(timeout=1) for r in jobs]
        bodies = _runs(runs, app)
    trips = [b for b in bodies if b[0] == "trip"]
    job_bodies = [b for b in bodies if b[0] == "job"]
    assert [0, 1] == [b[2] for b in trips]
    opened = trips[0][3]
    assert JOBS == len(job_bodies) == len({b[1] for b in job_bodies})  # each job's body ran once
    assert {0} == {b[2] for b in job_bodies}  # on attempt 1: a refused delivery is not an attempt
    assert min(b[3] for b in [trips[1], *job_bodies]) >= opened + OPEN_FOR - 0.3  # nothing ran while open
    held = _lines(log, "circuit_open")
    not_run = [line for line in held if line["body"] == "not"]
    with capsys.disabled():
        starts = sorted(b[3] - opened for b in [trips[1], *job_bodies])
        print(
            f"\n[breaker:{broker}/{store}] open {OPEN_FOR:g}s: {len(job_bodies)} job bodies for {JOBS} jobs "
            f"(all on attempt 1), {len(not_run)} deliveries held without a body; bodies ran "
            f"{starts[0]:.2f}s to {starts[-1]:.2f}s after the failure that opened it"
        )
    assert len(not_run) >= JOBS
    assert all(0 < float(line["countdown"]) <= OPEN_FOR for line in not_run)
    assert {"circuit_open"} == {line["stop_reason"] for line in held}
    if store == "memory":  # the failure that opened it: a retry held for the open period, not 0.1 s
        after_failure = [line for line in held if line["body"] == "failed"]
        assert 1 == len(after_failure)
        assert float(after_failure[0]["countdown"]) >= OPEN_FOR - 0.3
        scheduled = _lines(log, "retry_scheduled")
        assert [after_failure[0]["countdown"]] == [line["delay"] for line in scheduled]


# --------------------------------------------------------------------------- the ledger's Redis down


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own on a free port, to kill or freeze."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not on PATH; install it (apt-get install redis-server)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    for _ in range(250):
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/10", proc
    proc.send_signal(signal.SIGCONT)
    proc.kill()
    proc.wait(5)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["kill", "freeze"])
@pytest.mark.parametrize("broker", list(BROKERS))
def test_the_ledger_with_its_redis_down(
    broker: str,
    how: str,
    own_redis: tuple[str, subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The ledger's Redis killed or frozen: tasks run every attempt, counted by the broker; one warning."""
    url, server = own_redis
    with breaker_app(monkeypatch, tmp_path, broker, "prefork", RK_GUARD=url) as (app, runs, log):
        assert 3 == app.flaky.delay().get(timeout=60)  # the ledger works: its keys are in its Redis
        assert redis.Redis.from_url(url).keys("retrykit:attempt:*")
        server.send_signal(signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        started = time.monotonic()
        results = [app.flaky.delay() for _ in range(LEDGER_TASKS)]
        # A bound, not a speed measurement: frozen, each ledger call waits its 2 s socket timeout;
        # paying it on every attempt took 3.7 s per attempt (about 33 s for these 18 attempts).
        _all_ready(results, LEDGER_BOUND)
        took = time.monotonic() - started
        assert all(r.ready() for r in results), f"not done in {LEDGER_BOUND}s: {log.read_text()[-3000:]}"
        assert [3] * LEDGER_TASKS == [r.get(timeout=1) for r in results], log.read_text()[-3000:]
        bodies = [b for b in _runs(runs, app) if b[1] in {r.id for r in results}]
    assert sorted([0, 1, 2] * LEDGER_TASKS) == sorted(b[2] for b in bodies)  # counted by request.retries
    warnings = log.read_text().count("the attempt ledger cannot reach Redis")
    with capsys.disabled():
        print(
            f"\n[ledger:{broker}] its Redis {how}: {LEDGER_TASKS} tasks x 3 attempts done in {took:.1f}s, "
            f"{warnings} warning(s)"
        )
    assert 1 <= warnings <= 2  # one per worker process that used the ledger (2 pool processes)
