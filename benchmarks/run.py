"""
retrykit against tenacity, stamina, backoff and a hand-written loop, side by side in one process.

    python benchmarks/run.py                 # the full run (minutes on 2 cores)
    python benchmarks/run.py --quick         # a sanity pass, as the test suite runs it
    python benchmarks/run.py --profile ROW   # cProfile retrykit's side of one row, top 25 by tottime

Interleaved rounds, medians, spread (max - min), ratios to a baseline measured in the same run.
Every library sleeps the same way in each mode (benchmarks/sleeping.py): ``noop`` (one no-op
for all, its calls asserted) and ``real`` (each library's own sleep, 0 s). Attempt counts are
checked for every library in every row. Writes benchmarks/results/results.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import inspect
import json
import logging
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import harness
import herd
import sleeping
import stamina
import structlog
from harness import LIBRARIES, Concurrent, Flaky, rounds, summary, wrap
from sleeping import MODES, NOOP, REAL

import retrykit
import retrykit.stats
from retrykit import ErrorCategory, Policy, Strategy
from retrykit._errors import DISTRIBUTION

DISTRIBUTIONS = {"retrykit": DISTRIBUTION}
"""Import name -> name on the package index, where they differ."""

NOMINAL_WAIT = {NOOP: 0.001, REAL: 0.0}
"""The wait each library is asked for in the per-retry rows. Under the no-op it is 1 ms, so that
every library reaches its sleep (retrykit's sync driver skips ``time.sleep`` for a 0 s delay)."""
MASS_WAIT = 0.001
RETRIES = 3
"""Failures per call in the per-retry rows: marginal = (3 failures, then success - success) / 3."""
LOGGERS = ("retrykit", "backoff", "stamina", "tenacity")
SILENT = logging.CRITICAL + 1
PROFILE_ROWS = (
    "success-sync",
    "success-async",
    "retry-sync-noop",
    "retry-sync-real",
    "retry-async-noop",
    "retry-async-real",
    "gather",
)
KINDS = ("sync", "async")


def observability() -> dict[str, Any]:
    """
    Every library logs as it does by default, to loggers silenced at the level (no handler
    formats anything); stamina through its stdlib logging hook. retrykit keeps its default
    sinks: events to logging and to the statistics.
    """
    for name in LOGGERS:
        logging.getLogger(name).setLevel(SILENT)
    # stamina's default picks structlog and Prometheus when importable (structlog is; unconfigured,
    # it prints every line): use its stdlib logging hook, as retrykit's log sink uses stdlib logging
    stamina.instrumentation.set_on_retry_hooks([stamina.instrumentation.LoggingOnRetryHook])
    from retrykit import _config, _events

    sinks = [f"{s.__module__}.{s.__qualname__}" for s in _events._sinks]
    assert {"retrykit._logging.log_event", "retrykit._stats.record_event"} <= set(sinks), sinks
    assert _config.settings.stats_enabled
    assert not structlog.is_configured()  # retrykit's log sink goes through stdlib logging
    return {
        "retrykit_sinks": sinks,
        "retrykit_stats_enabled": True,
        "loggers_silenced_at": dict.fromkeys(LOGGERS, SILENT),
        "stamina_hooks": ["LoggingOnRetryHook"],
    }


def timed(library: str, mode: str, fn: Callable[..., Any], n: int, target: Flaky) -> Callable[[], float]:
    """
    One timed case: *n* calls of *fn* retried by *library*, sleeping as *mode* says. Checks that
    every call made exactly ``target.failures + 1`` attempts and, under the no-op, slept once per
    retry through it.
    """
    is_async = inspect.iscoroutinefunction(fn)
    call = wrap(library, fn, NOMINAL_WAIT[mode], mode)
    timer = harness.per_call_async if is_async else harness.per_call
    retries = target.failures
    sleeps = n * retries if mode == NOOP else None

    def run() -> float:
        attempts = target.attempts
        with sleeping.installed(library, mode, is_async), sleeping.counted(sleeps, f"{library}, {mode}"):
            seconds = timer(call, n)
        made = target.attempts - attempts
        assert made == n * (retries + 1), f"{library}, {mode}: {made} attempts, expected {n * (retries + 1)}"
        return seconds

    return run


def real_sleeps(library: str, fn: Callable[..., Any]) -> int:
    """How many times *library* really calls its own sleep in one call of *fn* (untimed)."""
    is_async = inspect.iscoroutinefunction(fn)
    call = wrap(library, fn, NOMINAL_WAIT[REAL], REAL)
    before = sleeping.calls[0]
    with sleeping.spy(library, is_async):
        assert harness.call_once(call) == 1
    return sleeping.calls[0] - before


def target_fn(target: Flaky, kind: str) -> Callable[..., Any]:
    return target.asyn if kind == "async" else target.sync


# --------------------------------------------------------------------------- rows


def bench_success(n: int, count: int) -> dict[str, Any]:
    """Overhead of a call that succeeds at once, over the bare call, sync and async."""
    ok = Flaky(0)
    cases = {
        f"{kind} {lib}": timed(lib, NOOP if lib != "bare" else REAL, target_fn(ok, kind), n, ok)
        for kind in KINDS
        for lib in ("bare", *LIBRARIES)
    }
    samples = rounds(cases, count)
    out: dict[str, Any] = {}
    for kind in KINDS:
        base = statistics.median(samples[f"{kind} bare"])
        out[kind] = {"bare": summary(samples[f"{kind} bare"])}
        for lib in LIBRARIES:
            s = summary(samples[f"{kind} {lib}"])
            out[kind][lib] = {**s, "overhead": s["median"] - base, "attempts_per_call": 1, "sleeps": 0}
    return out


def bench_retry(n: int, count: int) -> dict[str, Any]:
    """Marginal cost of one retry, (3 failures then success - success) / 3, in both sleep modes."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        ok, flaky = Flaky(0), Flaky(RETRIES)
        cases: dict[str, Callable[[], float]] = {}
        for lib in LIBRARIES:
            cases[f"{lib} ok"] = timed(lib, NOOP, target_fn(ok, kind), n, ok)
            for mode in MODES:
                cases[f"{lib} {mode}"] = timed(lib, mode, target_fn(flaky, kind), n, flaky)
        samples = rounds(cases, count)
        out[kind] = {
            "attempts_per_call": RETRIES + 1,
            "noop_sleeps_per_retry": dict.fromkeys(LIBRARIES, 1),  # asserted on every timed run
            "real_sleeps_per_retry": {
                lib: real_sleeps(lib, target_fn(flaky, kind)) / RETRIES for lib in LIBRARIES
            },
        }
        for mode in MODES:
            out[kind][mode] = {
                lib: {
                    "marginal": (
                        statistics.median(samples[f"{lib} {mode}"]) - statistics.median(samples[f"{lib} ok"])
                    )
                    / RETRIES,
                    "spread": (max(samples[f"{lib} {mode}"]) - min(samples[f"{lib} {mode}"])) / RETRIES,
                }
                for lib in LIBRARIES
            }
    return out


def gather_once(library: str, coroutines: int, memory: bool = False) -> float:
    """
    *coroutines* concurrent calls of one function retried by *library*, each failing twice with
    1 ms real sleeps. Returns the wall time, or with *memory* the traced peak bytes per call
    (a separate run: tracemalloc slows allocation and would distort the wall time).
    """
    target = Concurrent(coroutines, failures=2)
    call = wrap(library, target.call, MASS_WAIT, REAL)

    async def main() -> float:
        started = time.perf_counter()
        results = await asyncio.gather(*(call(i) for i in range(coroutines)))
        assert results == [1] * coroutines
        return time.perf_counter() - started

    if memory:
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        asyncio.run(main())
        result = (tracemalloc.get_traced_memory()[1] - base) / coroutines
        tracemalloc.stop()
    else:
        result = asyncio.run(main())
    target.check(f"{library}, {coroutines} gathered")
    return result


def bench_gather(coroutines: int, count: int) -> dict[str, Any]:
    """Wall time (interleaved rounds) and, in one separate pass per library, bytes per call."""
    samples = rounds({lib: lambda lib=lib: gather_once(lib, coroutines) for lib in LIBRARIES}, count)
    base = statistics.median(samples["loop"])
    return {
        lib: {
            **summary(samples[lib]),
            "ratio": statistics.median(samples[lib]) / base,
            "bytes_per_call": gather_once(lib, coroutines, memory=True),
            "attempts_per_call": 3,
        }
        for lib in LIBRARIES
    }


def bench_celery(tasks: int, brokers: list[str]) -> dict[str, Any]:
    """Tasks failing twice then succeeding: the retrykit adapter vs Celery's autoretry_for."""
    import celery
    from celery.contrib.testing.worker import start_worker

    from retrykit_celery import task

    urls = {
        "memory": ("memory://", "cache+memory://"),
        "redis": ("redis://127.0.0.1:6379/11", "redis://127.0.0.1:6379/11"),
    }
    policy = Policy(
        strategies={ErrorCategory.NETWORK_ERROR: Strategy.immediately(max_retries=3)}, max_attempts=4
    )
    out: dict[str, Any] = {}
    for broker in brokers:
        out[broker] = {}
        for kind in ("autoretry_for", "retrykit") * 3:  # interleaved, three samples each
            app = celery.Celery(
                f"bench{os.getpid()}{kind}{broker}", broker=urls[broker][0], backend=urls[broker][1]
            )
            app.conf.update(
                broker_transport_options={"polling_interval": 0.005},
                worker_hijack_root_logger=False,
                broker_heartbeat=0,
                task_default_queue=f"bench-{time.time_ns()}",
            )
            runs = {"n": 0}

            def job(self: Any, runs: dict[str, int] = runs) -> int:
                runs["n"] += 1
                if self.request.retries < 2:
                    raise ConnectionError("flaky")
                return 1

            if kind == "retrykit":
                bound = task(policy, app=app, bind=True, name="bench.job")(job)
            else:
                bound = app.task(
                    bind=True,
                    name="bench.job",
                    autoretry_for=(ConnectionError,),
                    max_retries=3,
                    default_retry_delay=0,
                    retry_jitter=False,
                    shared=False,
                )(job)
            with start_worker(app, perform_ping_check=False, loglevel="critical", shutdown_timeout=30):
                started = time.perf_counter()
                results = [bound.delay() for _ in range(tasks)]
                for r in results:
                    assert r.get(timeout=120, interval=0.005) == 1
                wall = time.perf_counter() - started
            assert runs["n"] == 3 * tasks, (kind, runs["n"])
            out[broker].setdefault(kind, []).append(tasks / wall)
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


# --------------------------------------------------------------------------- profile


def profile(row: str, quick: bool) -> None:
    """cProfile retrykit's side of *row* (after a warm-up run); print the top 25 by tottime."""
    if row == "gather":
        coroutines = 1000 if quick else 10_000
        run: Callable[[], Any] = lambda: gather_once("retrykit", coroutines)
    else:
        what, kind, *rest = row.split("-")
        target = Flaky(0 if what == "success" else RETRIES)
        mode = rest[0] if rest else NOOP
        run = timed("retrykit", mode, target_fn(target, kind), 2000 if quick else 20_000, target)
    run()
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    print(f"retrykit, {row}: top 25 functions by tottime")
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(25)


# --------------------------------------------------------------------------- report


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} µs"


def row(label: str, cells: list[str], bare: str = "—") -> str:
    return f"| {label} | {bare} | " + " | ".join(cells) + " |"


def targets(r: dict[str, Any]) -> list[str]:
    """The engine issue's targets, read off this run (reported, never asserted)."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = []
    for kind in KINDS:
        over = r["success"][kind]["retrykit"]["overhead"]
        allowed = r["success"][kind]["loop"]["overhead"] + 0.1e-6
        lines.append(
            f"- Success path, {kind}: retrykit +{over * 1e6:.2f} µs over the bare call (≤ the loop's "
            f"+ 0.1 = {allowed * 1e6:.2f} µs): {verdict(over <= allowed)}"
        )
    for kind, limit in (("sync", 4e-6), ("async", 5e-6)):
        rk, tn = (r["retry"][kind][NOOP][lib]["marginal"] for lib in ("retrykit", "tenacity"))
        lines.append(
            f"- Per retry, {kind}, no-op sleep: retrykit {us(rk)}, tenacity {us(tn)} "
            f"(≤ {limit * 1e6:g} µs): {verdict(rk <= limit)}"
        )
    g = r["gather"]
    lines.append(
        f"- Mass failure wall: retrykit {g['retrykit']['ratio']:.2f}× the loop (≤ 1.5×): {verdict(g['retrykit']['ratio'] <= 1.5)}"
    )
    rk_b = g["retrykit"]["bytes_per_call"]
    lines.append(
        f"- Mass failure memory: retrykit {rk_b:,.0f} B per call (≤ 3,000 B): {verdict(rk_b <= 3000)}"
    )
    return lines


def per_call_rows(r: dict[str, Any], spread: bool = False) -> list[str]:
    """The timed rows: medians (overhead, marginal cost, ratio to the loop), or with *spread* their spread."""
    lines = []
    for kind in KINDS:
        s = r["success"][kind]
        cells = [us(s[lib]["spread"]) if spread else f"+{us(s[lib]['overhead'])}" for lib in LIBRARIES]
        bare = us(s["bare"]["spread" if spread else "median"])
        lines.append(row(f"success, {kind} (over the bare call)", cells, bare))
    for kind in KINDS:
        for mode, label in ((NOOP, "same no-op sleep"), (REAL, "own real sleep, 0 s")):
            s = r["retry"][kind][mode]
            cells = [us(s[lib]["spread" if spread else "marginal"]) for lib in LIBRARIES]
            lines.append(row(f"per retry, {kind}, {label}", cells))
    for kind in KINDS:
        if not spread:
            s = r["retry"][kind]["real_sleeps_per_retry"]
            lines.append(row(f"real sleep calls per retry, {kind}", [f"{s[lib]:g}" for lib in LIBRARIES]))
    g = r["gather"]
    cells = [
        f"{g[lib]['spread']:.3f} s" if spread else f"{g[lib]['ratio']:.2f}× ({g[lib]['median']:.2f} s)"
        for lib in LIBRARIES
    ]
    lines.append(
        row(f"{r['coroutines']:,} gathered coroutines failing twice, 1 ms real sleeps: wall, × loop", cells)
    )
    return lines


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    v = r["versions"]
    lines = [
        f"# retrykit benchmarks ({'quick' if r['quick'] else 'full'} run, {r['seconds']:.0f} s)",
        "",
        "Seconds per row: " + ", ".join(f"{k} {x:g}" for k, x in r["row_seconds"].items()) + ".",
        "",
        f"Machine: {m['cpus']} cores, {m['platform']}, Python {m['python']}; load average "
        f"{m['loadavg_start']} at the start, {m['loadavg_end']} at the end. retrykit at {m['retrykit_commit']}.",
        "Versions: " + ", ".join(f"{k} {x}" for k, x in v.items()),
        "",
        "## Per call (median of interleaved rounds)",
        "",
        "| per call | bare | " + " | ".join(f"{lib} {v.get(lib, '')}".strip() for lib in LIBRARIES) + " |",
        "|---" * (len(LIBRARIES) + 2) + "|",
    ]
    lines += per_call_rows(r)
    g = r["gather"]
    lines.append(
        row(
            "bytes per in-flight call (tracemalloc peak / calls)",
            [f"{g[lib]['bytes_per_call']:,.0f} B" for lib in LIBRARIES],
        )
    )
    lines += [
        "",
        "- Observability: retrykit runs with its defaults ON (classification, events to the stdlib "
        "logging sink, in-memory statistics). Every library logs as it does by default (backoff's "
        "handlers, stamina's stdlib LoggingOnRetryHook; tenacity logs nothing by default) to loggers "
        f"silenced at the level ({', '.join(LOGGERS)} at CRITICAL+1), so no handler formats.",
        "- Sleeping: *same no-op* — one counting no-op replaces every library's sleep (tenacity via "
        "`sleep=`, the rest by patching the attribute their sleep is looked up through; "
        "benchmarks/sleeping.py), asked for 1 ms, called exactly once per retry (asserted). *Own real "
        "sleep* — each library's own sleep asked for 0 s; the row below counts how often each "
        "really called it.",
        f"- Per retry = (a call failing {RETRIES} times, then succeeding − a call succeeding at once) / {RETRIES}. "
        "Attempt counts are asserted for every library in every row.",
        "",
        "## Spread of the same rows (max - min over the rounds)",
        "",
        "| spread | bare | " + " | ".join(LIBRARIES) + " |",
        "|---" * (len(LIBRARIES) + 2) + "|",
        *per_call_rows(r, spread=True),
        "",
        "## Targets (this run)",
        "",
        *targets(r),
    ]
    for kind in KINDS:
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
                f"| {broker} | {c['autoretry_for']['tasks_per_s']:.0f} | {c['retrykit']['tasks_per_s']:.0f} | {c['ratio']:.2f} |"
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


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "-C", str(Path(retrykit.__file__).parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "retrykit_commit": commit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a sanity pass in seconds")
    parser.add_argument(
        "--profile", metavar="ROW", choices=PROFILE_ROWS, help="cProfile retrykit's side of ROW"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--no-celery", action="store_true")
    args = parser.parse_args()
    quick = args.quick
    obs = observability()
    if args.profile:
        profile(args.profile, quick)
        return
    started = time.perf_counter()
    r: dict[str, Any] = {
        "quick": quick,
        "versions": {
            p: version(DISTRIBUTIONS.get(p, p))
            for p in ("retrykit", "tenacity", "stamina", "backoff", "celery", "anyio")
        },
        "machine": machine(),
        "observability": obs,
        "sleep_points": {
            lib: {kind: sleeping.SLEEPS[lib](kind == "async") for kind in KINDS} for lib in LIBRARIES
        },
        "noop_by_argument": sorted(sleeping.SLEEP_ARGUMENT),
        "nominal_wait": NOMINAL_WAIT,
        "coroutines": 1000 if quick else 10_000,
    }
    rows: dict[str, Callable[[], dict[str, Any]]] = {
        "success": lambda: bench_success(2000 if quick else 20_000, 3 if quick else 9),
        "retry": lambda: bench_retry(300 if quick else 2000, 3 if quick else 9),
        "gather": lambda: bench_gather(r["coroutines"], 1 if quick else 3),
        "celery": lambda: bench_celery(20 if quick else 150, ["memory"] if quick else ["memory", "redis"]),
        "herd": lambda: bench_herd(quick),
    }
    if args.no_celery:
        del rows["celery"]
    r["row_seconds"] = {}
    for name, bench in rows.items():
        row_started = time.perf_counter()
        r[name] = bench()
        r["row_seconds"][name] = round(time.perf_counter() - row_started, 1)
    r["retrykit_stats_total_errors"] = retrykit.stats.analyze(
        since=86_400
    ).total_errors  # the statistics were on
    r["seconds"] = time.perf_counter() - started
    r["machine"]["loadavg_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(r, indent=2, default=str))
    text = markdown(r)
    (out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
