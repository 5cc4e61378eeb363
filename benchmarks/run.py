"""
retrykit against tenacity, stamina, backoff and a hand-written loop, side by side in one process.

    python benchmarks/run.py            # the full run (a few minutes on 2 cores)
    python benchmarks/run.py --quick    # a sanity pass (seconds), as the test suite runs it

Interleaved rounds, medians, spread (max - min), ratios to a baseline measured in the same run.
Attempt counts are checked as it goes. Writes benchmarks/results/results.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import backoff
import stamina
import tenacity

import retrykit
from retrykit import ErrorCategory, Policy, Strategy

sys.path.insert(0, str(Path(__file__).parent))
import herd

NET = ErrorCategory.NETWORK_ERROR
IMMEDIATE = Policy(strategies={NET: Strategy.immediately(max_retries=5)}, max_attempts=6)
MS = Policy(strategies={NET: Strategy.delay(0.001, max_retries=2)}, max_attempts=3)
LIBRARIES = ("loop", "backoff", "stamina", "tenacity", "retrykit")


class Flaky:
    """Raises ConnectionError *failures* times per call, then returns (counts every attempt)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.left = failures
        self.attempts = 0
        self.__name__ = self.__qualname__ = f"flaky{failures}"  # backoff and retrykit name their target

    def reset(self) -> None:
        self.left = self.failures

    def __call__(self) -> int:
        self.attempts += 1
        if self.left:
            self.left -= 1
            raise ConnectionError("flaky")
        self.left = self.failures
        return 1


# --------------------------------------------------------------------------- sync wrappers


def peers(fn: Callable[[], Any], wait: float) -> dict[str, Any]:
    """backoff, stamina, tenacity and retrykit around *fn* (sync or async): up to 6 attempts."""
    return {
        "backoff": backoff.on_exception(
            backoff.constant, ConnectionError, max_tries=6, interval=wait, jitter=None
        )(fn),
        "stamina": stamina.retry(
            on=ConnectionError, attempts=6, wait_initial=wait, wait_max=wait, wait_jitter=0
        )(fn),
        "tenacity": tenacity.retry(
            retry=tenacity.retry_if_exception_type(ConnectionError),
            stop=tenacity.stop_after_attempt(6),
            wait=tenacity.wait_fixed(wait),
            reraise=True,
        )(fn),
        "retrykit": retrykit.retry(IMMEDIATE if not wait else MS)(fn),
    }


def sync_wrappers(fn: Callable[[], int], wait: float) -> dict[str, Callable[[], int]]:
    """The same retrying call in each library: up to 6 attempts on ConnectionError."""

    def loop() -> int:
        for attempt in range(6):
            try:
                return fn()
            except ConnectionError:
                if attempt == 5:
                    raise
                if wait:
                    time.sleep(wait)
        raise AssertionError("unreachable")

    return {"loop": loop, **peers(fn, wait)}


def async_wrappers(fn: Callable[[], Awaitable[int]], wait: float) -> dict[str, Callable[[], Awaitable[int]]]:
    """The async twins of ``sync_wrappers``."""

    async def loop() -> int:
        for attempt in range(6):
            try:
                return await fn()
            except ConnectionError:
                if attempt == 5:
                    raise
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    return {"loop": loop, **peers(fn, wait)}


def per_call(run: Callable[[], Any], number: int) -> float:
    """Seconds per call of *run*, over *number* calls."""
    started = time.perf_counter()
    for _ in range(number):
        run()
    return (time.perf_counter() - started) / number


def per_call_async(run: Callable[[], Awaitable[Any]], number: int) -> float:
    """Seconds per awaited call of *run*, over *number* calls on one event loop."""

    async def many() -> float:
        started = time.perf_counter()
        for _ in range(number):
            await run()
        return (time.perf_counter() - started) / number

    return asyncio.run(many())


def rounds(cases: dict[str, Callable[[], float]], count: int) -> dict[str, list[float]]:
    """Interleaved rounds: every case once per round, *count* rounds."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(count):
        for name, case in cases.items():
            gc.collect()
            samples[name].append(case())
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "spread": max(samples) - min(samples)}


# --------------------------------------------------------------------------- benchmarks


def bench_success(n: int, count: int) -> dict[str, Any]:
    """Overhead of a call that succeeds at once, over the bare call, sync and async."""
    bare = Flaky(0)

    async def abare() -> int:
        return 1

    sync = sync_wrappers(bare, 0.0)
    asyn = async_wrappers(abare, 0.0)
    cases: dict[str, Callable[[], float]] = {"sync bare": lambda: per_call(bare, n)}
    cases |= {f"sync {k}": (lambda f=f: per_call(f, n)) for k, f in sync.items()}
    cases["async bare"] = lambda: per_call_async(abare, n)
    cases |= {f"async {k}": (lambda f=f: per_call_async(f, n)) for k, f in asyn.items()}
    samples = rounds(cases, count)
    out: dict[str, Any] = {}
    for kind in ("sync", "async"):
        base = statistics.median(samples[f"{kind} bare"])
        out[kind] = {"bare": summary(samples[f"{kind} bare"])}
        for lib in LIBRARIES:
            s = summary(samples[f"{kind} {lib}"])
            s["overhead"] = s["median"] - base
            out[kind][lib] = s
    return out


def bench_retry(n: int, count: int) -> dict[str, Any]:
    """Marginal cost of one retry: (3 failures then success) minus (success), divided by 3."""
    out: dict[str, Any] = {}
    for kind in ("sync", "async"):
        ok, flaky = Flaky(0), Flaky(3)
        if kind == "sync":
            quick, slow = sync_wrappers(ok, 0.0), sync_wrappers(flaky, 0.0)
            run: Callable[[Callable[[], Any], int], float] = per_call
        else:

            async def aok() -> int:
                return ok()

            async def aflaky() -> int:
                return flaky()

            quick, slow = async_wrappers(aok, 0.0), async_wrappers(aflaky, 0.0)  # type: ignore[assignment]
            run = per_call_async
        cases = {}
        for lib in LIBRARIES:
            cases[f"{lib} ok"] = lambda f=quick[lib]: run(f, n)
            cases[f"{lib} flaky"] = lambda f=slow[lib]: run(f, n)
        before = flaky.attempts
        samples = rounds(cases, count)
        calls = n * count * len(LIBRARIES)
        assert flaky.attempts - before == 4 * calls, (flaky.attempts - before, 4 * calls)
        out[kind] = {}
        for lib in LIBRARIES:
            marginal = (
                statistics.median(samples[f"{lib} flaky"]) - statistics.median(samples[f"{lib} ok"])
            ) / 3
            out[kind][lib] = {
                "marginal": marginal,
                "spread": (max(samples[f"{lib} flaky"]) - min(samples[f"{lib} flaky"])) / 3,
            }
    return out


def bench_gather(coroutines: int, count: int) -> dict[str, Any]:
    """*coroutines* calls gathered at once, each failing twice with 1 ms waits: wall and memory."""
    results: dict[str, Any] = {}
    samples: dict[str, list[float]] = {lib: [] for lib in LIBRARIES}
    memory: dict[str, list[float]] = {lib: [] for lib in LIBRARIES}
    for _ in range(count):
        for lib in LIBRARIES:
            attempts = [0]

            def make() -> Callable[[], Awaitable[int]]:
                left = [2]

                async def call() -> int:
                    attempts[0] += 1
                    if left[0]:
                        left[0] -= 1
                        raise ConnectionError("flaky")
                    return 1

                return async_wrappers(call, 0.001)[lib]

            calls = [make() for _ in range(coroutines)]

            async def main(calls: list[Callable[[], Awaitable[int]]] = calls) -> float:
                started = time.perf_counter()
                await asyncio.gather(*(c() for c in calls))
                return time.perf_counter() - started

            gc.collect()
            wall = asyncio.run(main())
            assert attempts[0] == 3 * coroutines, (lib, attempts[0])
            samples[lib].append(wall)
            if memory[lib]:
                continue  # memory is deterministic enough: measured in the first round only
            # memory in a separate run: tracemalloc slows allocation and would distort the wall time
            calls[:] = [make() for _ in range(coroutines)]
            attempts[0] = 0
            gc.collect()
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            asyncio.run(main())
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            assert attempts[0] == 3 * coroutines, (lib, attempts[0])
            memory[lib].append(peak / coroutines)
            del calls
    base_wall = statistics.median(samples["loop"])
    for lib in LIBRARIES:
        results[lib] = {
            **summary(samples[lib]),
            "ratio": statistics.median(samples[lib]) / base_wall,
            "bytes_per_call": statistics.median(memory[lib]),
        }
    return results


def bench_celery(tasks: int, brokers: list[str]) -> dict[str, Any]:
    """Tasks failing twice then succeeding: the retrykit adapter vs Celery's autoretry_for."""
    import celery
    from celery.contrib.testing.worker import start_worker
    from retrykit.adapters.celery import task

    urls = {
        "memory": ("memory://", "cache+memory://"),
        "redis": ("redis://127.0.0.1:6379/11", "redis://127.0.0.1:6379/11"),
    }
    out: dict[str, Any] = {}
    for broker in brokers:
        out[broker] = {}
        for kind in ("autoretry_for", "retrykit") * 3:  # interleaved, three samples each
            app = celery.Celery(
                f"bench{os.getpid()}{kind.strip()}{broker}", broker=urls[broker][0], backend=urls[broker][1]
            )
            app.conf.update(
                broker_transport_options={"polling_interval": 0.005},
                worker_hijack_root_logger=False,
                broker_heartbeat=0,
                task_default_queue=f"bench-{time.time_ns()}",
            )
            runs = {"n": 0}
            if kind.strip() == "retrykit":
                policy = Policy(strategies={NET: Strategy.immediately(max_retries=3)}, max_attempts=4)

                @task(policy, app=app, bind=True, name="bench.job")
                def job(self: Any) -> int:
                    runs["n"] += 1
                    if self.request.retries < 2:
                        raise ConnectionError("flaky")
                    return 1
            else:

                @app.task(
                    bind=True,
                    name="bench.job",
                    autoretry_for=(ConnectionError,),
                    max_retries=3,
                    default_retry_delay=0,
                    retry_jitter=False,
                    shared=False,
                )
                def job(self: Any) -> int:
                    runs["n"] += 1
                    if self.request.retries < 2:
                        raise ConnectionError("flaky")
                    return 1

            with start_worker(app, perform_ping_check=False, loglevel="critical", shutdown_timeout=30):
                started = time.perf_counter()
                results = [job.delay() for _ in range(tasks)]
                for r in results:
                    assert r.get(timeout=120, interval=0.005) == 1
                wall = time.perf_counter() - started
            assert runs["n"] == 3 * tasks, (kind, runs["n"])
            out[broker].setdefault(kind.strip(), []).append(tasks / wall)
        for kind in ("autoretry_for", "retrykit"):
            out[broker][kind] = {"tasks_per_s": statistics.median(out[broker][kind])}
        out[broker]["ratio"] = (
            out[broker]["retrykit"]["tasks_per_s"] / out[broker]["autoretry_for"]["tasks_per_s"]
        )
    return out


def bench_herd(quick: bool) -> dict[str, Any]:
    """The jitter simulation with retrykit's strategies, checked against the published shape."""
    clients = [100] if quick else [10, 50, 100, 150, 190]
    runs = 20 if quick else 100
    res = herd.sweep(clients, runs, [0])  # one seed: within the tolerances, a third of the time
    return {
        "clients": clients,
        "runs": runs,
        "results": {
            a: {n: {"calls": r.calls, "time_ms": round(r.time)} for n, r in by_n.items()}
            for a, by_n in res.items()
        },
        "deviations": [] if quick else herd.check(res),
        "empty_bins_n100": {
            a: herd.empty_bins(a, runs=runs) for a in ("Exponential", "EqualJitter", "FullJitter", "Decorr")
        },
    }


# --------------------------------------------------------------------------- report


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} µs"


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# retrykit benchmarks ({r['machine']['cpus']} cores, Python {r['machine']['python']}, "
        f"{'quick' if r['quick'] else 'full'} run)",
        "",
    ]
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()))
    lines += [
        "",
        "## Per call (median of interleaved rounds; overhead over the bare call)",
        "",
        "| per call | bare | " + " | ".join(LIBRARIES) + " |",
        "|---" * (len(LIBRARIES) + 2) + "|",
    ]
    for kind in ("sync", "async"):
        s = r["success"][kind]
        lines.append(
            f"| success, {kind} | {us(s['bare']['median'])} | "
            + " | ".join(f"+{us(s[lib]['overhead'])}" for lib in LIBRARIES)
            + " |"
        )
    for kind in ("sync", "async"):
        s = r["retry"][kind]
        lines.append(
            f"| marginal per retry, {kind} | — | "
            + " | ".join(us(s[lib]["marginal"]) for lib in LIBRARIES)
            + " |"
        )
    g = r["gather"]
    lines.append(
        f"| {r['coroutines']:,} gathered coroutines, 2 failures, 1 ms waits: wall, × loop | — | "
        + " | ".join(f"{g[lib]['ratio']:.2f}× ({g[lib]['median']:.2f} s)" for lib in LIBRARIES)
        + " |"
    )
    lines.append(
        "| memory per in-flight call (peak / calls) | — | "
        + " | ".join(f"{g[lib]['bytes_per_call'] / 1024:.1f} KiB" for lib in LIBRARIES)
        + " |"
    )
    for kind in ("sync", "async"):
        ratio = r["success"][kind]["tenacity"]["overhead"] / max(
            r["success"][kind]["retrykit"]["overhead"], 1e-12
        )
        lines.append(f"\nSuccess path, {kind}: retrykit's overhead is 1/{ratio:.1f} of tenacity's.")
    if r.get("celery"):
        lines += [
            "",
            "## Celery: tasks failing twice, then succeeding (tasks/s, in-process solo worker)",
            "",
            "| broker | Celery autoretry_for | retrykit adapter | ratio |",
            "|---|---|---|---|",
        ]
        for broker, c in r["celery"].items():
            lines.append(
                f"| {broker} | {c['autoretry_for']['tasks_per_s']:.0f} | {c['retrykit']['tasks_per_s']:.0f} | "
                f"{c['ratio']:.2f} |"
            )
    h = r["herd"]
    lines += [
        "",
        f"## Thundering herd (retrykit's own strategies; {h['runs']} runs per point)",
        "",
        "| clients | " + " | ".join(f"{a} calls / ms" for a in h["results"]) + " |",
        "|---" * (len(h["results"]) + 1) + "|",
    ]
    for n in h["clients"]:
        lines.append(
            f"| {n} | "
            + " | ".join(
                f"{h['results'][a][n]['calls']} / {h['results'][a][n]['time_ms']:,}" for a in h["results"]
            )
            + " |"
        )
    lines.append(
        f"\nEmpty 10 ms bins (50-2000 ms, N = 100): {h['empty_bins_n100']}. "
        f"Deviations from the published shape: {h['deviations'] or 'none'}."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a sanity pass in seconds")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--no-celery", action="store_true")
    args = parser.parse_args()
    logging.getLogger("retrykit").setLevel(logging.ERROR)  # measure the machinery, not stderr
    logging.getLogger("backoff").setLevel(logging.ERROR)
    stamina.instrumentation.set_on_retry_hooks([])
    quick = args.quick
    r: dict[str, Any] = {
        "quick": quick,
        "versions": {p: version(p) for p in ("retrykit", "tenacity", "stamina", "backoff", "celery")},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "coroutines": 1000 if quick else 10_000,
    }
    r["success"] = bench_success(2000 if quick else 20_000, 3 if quick else 7)
    r["retry"] = bench_retry(300 if quick else 2000, 3 if quick else 7)
    r["gather"] = bench_gather(r["coroutines"], 1 if quick else 3)
    if not args.no_celery:
        brokers = ["memory"] if quick else ["memory", "redis"]
        r["celery"] = bench_celery(20 if quick else 150, brokers)
    r["herd"] = bench_herd(quick)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(r, indent=2, default=str))
    text = markdown(r)
    (out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
