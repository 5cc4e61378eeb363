"""
Celery in a real worker: retrykit's adapter against Celery's own ``autoretry_for``.

    python benchmarks/celery_prefork.py                        # Redis and RabbitMQ, 300 tasks x 3 rounds
    python benchmarks/celery_prefork.py --brokers redis --tasks 100 --rounds 1
    python benchmarks/celery_prefork.py --profile redis        # py-spy on the pool children (retrykit side)

Every task fails twice with ``ConnectionError``, then succeeds (three attempts, retried at once
through the broker). Each round starts a fresh ``celery worker -P prefork -c 2`` subprocess for one
side, warms it up with a few tasks, then times *tasks* tasks from the first ``delay()`` to the last
result; the sides alternate round by round. The same settings on both sides: ``acks_late`` and
``reject_on_worker_lost`` (the adapter's defaults), prefetch 4, results on Redis, worker log level
WARNING, and, as in benchmarks/run.py, every library's logger silenced at the level; retrykit
keeps its default sinks (events to the log and to the statistics). Each result is the task's
``request.retries`` (asserted 2: three attempts, never more). This module is also the worker's app
(``-A celery_prefork``, configured through ``RKB_*`` environment variables).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import celery

HERE = Path(__file__).resolve().parent
BROKERS = {
    "redis": "redis://127.0.0.1:6379/11",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
BACKEND = "redis://127.0.0.1:6379/11"
SIDES = ("autoretry_for", "retrykit")
SILENT = logging.CRITICAL + 1

# ----------------------------------------------------------------------------- the worker's app

app = celery.Celery(
    "rkbench",
    broker=os.environ.get("RKB_BROKER", BROKERS["redis"]),
    backend=os.environ.get("RKB_BACKEND", BACKEND),
)
app.conf.update(
    task_default_queue=os.environ.get("RKB_QUEUE", "rk-bench"),
    broker_transport_options={"polling_interval": 0.005},
    broker_connection_retry_on_startup=True,
    result_expires=600,
    worker_hijack_root_logger=False,
)
for _name in ("retrykit", "celery.app.trace", "celery.worker.strategy"):
    logging.getLogger(_name).setLevel(SILENT)


def job(self: Any) -> int:
    if self.request.retries < 2:
        raise ConnectionError("flaky")
    return int(self.request.retries)


if os.environ.get("RKB_SIDE", "retrykit") == "retrykit":
    from retrykit import ErrorCategory, Policy, Strategy
    from retrykit_celery import task

    policy = Policy(
        strategies={ErrorCategory.NETWORK_ERROR: Strategy.immediately(max_retries=3)}, max_attempts=4
    )
    bench_job = task(policy, app=app, bind=True, name="rkbench.job")(job)
else:
    bench_job = app.task(
        bind=True,
        name="rkbench.job",
        autoretry_for=(ConnectionError,),
        max_retries=3,
        default_retry_delay=0,
        retry_jitter=False,
        acks_late=True,
        reject_on_worker_lost=True,
        shared=False,
    )(job)


# ----------------------------------------------------------------------------- the driver


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_prefork",
                "worker",
                "-P",
                "prefork",
                "-c",
                "2",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "--loglevel=WARNING",
                "-n",
                f"b{uuid.uuid4().hex[:6]}@%h",
            ],
            cwd=HERE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)  # warm shutdown: the main process stops its children
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the worker *pid* and its pool children, so far."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    total = 0
    for p in [str(pid), *children.stdout.split()]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def drive(client: celery.Celery, queue: str, n: int) -> float:
    """Send *n* tasks and wait for every result; the wall time."""
    started = time.perf_counter()
    results = [client.send_task("rkbench.job", queue=queue) for _ in range(n)]
    for r in results:
        assert r.get(timeout=300, interval=0.005) == 2
    return time.perf_counter() - started


def one_round(
    broker: str, side: str, tasks: int, log: Path, profile: Path | None = None
) -> tuple[float, float]:
    """Tasks per second, and the worker's CPU milliseconds per task (main process and children)."""
    queue = f"rk-bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "RKB_BROKER": BROKERS[broker],
        "RKB_BACKEND": BACKEND,
        "RKB_QUEUE": queue,
        "RKB_SIDE": side,
        "PYTHONPATH": str(HERE),
    }
    client = celery.Celery("rkbench-client", broker=BROKERS[broker], backend=BACKEND)
    proc = start_worker(env, log)
    spies: list[subprocess.Popen[bytes]] = []
    try:
        drive(client, queue, 20)  # the worker is up, its children forked and warm
        if profile is not None:
            children = subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
            record = ["py-spy", "record", "-f", "raw", "-r", "200"]
            spies = [
                subprocess.Popen(
                    [*record, "-p", pid, "-o", f"{profile}.{pid}.txt"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for pid in children
            ]
            time.sleep(1.0)
        cpu = cpu_seconds(proc.pid)
        wall = drive(client, queue, tasks)
        cpu = cpu_seconds(proc.pid) - cpu
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        stop_worker(proc)
        with contextlib.suppress(Exception):
            if broker == "rabbitmq":
                with client.connection_for_write() as conn:
                    conn.default_channel.queue_delete(queue)
            else:
                import redis

                redis.Redis.from_url(BROKERS[broker]).delete(queue)
        client.close()
    return tasks / wall, cpu * 1000 / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", metavar="BROKER", help="py-spy the retrykit side's pool children")
    parser.add_argument("--log", default="/tmp/rk-bench-worker.log")
    args = parser.parse_args()
    log = Path(args.log)
    if args.profile:
        out = Path(f"/tmp/rk-bench-profile-{os.getpid()}")
        rate, _ = one_round(args.profile, "retrykit", args.tasks, log, profile=out)
        print(f"retrykit on {args.profile}: {rate:.0f} tasks/s while profiled; raw stacks in {out}.*.txt")
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for broker in args.brokers.split(","):
        rates: dict[str, list[float]] = {side: [] for side in SIDES}
        cpus: dict[str, list[float]] = {side: [] for side in SIDES}
        for _ in range(args.rounds):
            for side in SIDES:
                rate, cpu = one_round(broker, side, args.tasks, log)
                rates[side].append(rate)
                cpus[side].append(cpu)
        ratios = [r / a for r, a in zip(rates["retrykit"], rates["autoretry_for"], strict=True)]
        cpu_ratios = [a / r for r, a in zip(cpus["retrykit"], cpus["autoretry_for"], strict=True)]
        print(
            f"{broker}: worker CPU per task, autoretry_for {' '.join(f'{x:.2f}' for x in cpus['autoretry_for'])} ms, "
            f"retrykit {' '.join(f'{x:.2f}' for x in cpus['retrykit'])} ms; autoretry_for/retrykit per round "
            f"{' '.join(f'{x:.3f}' for x in cpu_ratios)}, median {statistics.median(cpu_ratios):.3f}"
        )
        print(
            f"{broker}: autoretry_for {' '.join(f'{x:.0f}' for x in rates['autoretry_for'])} tasks/s "
            f"(median {statistics.median(rates['autoretry_for']):.0f}); retrykit "
            f"{' '.join(f'{x:.0f}' for x in rates['retrykit'])} (median {statistics.median(rates['retrykit']):.0f}); "
            f"ratio per round {' '.join(f'{x:.3f}' for x in ratios)} (median {statistics.median(ratios):.3f}), of medians "
            f"{statistics.median(rates['retrykit']) / statistics.median(rates['autoretry_for']):.3f}"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
