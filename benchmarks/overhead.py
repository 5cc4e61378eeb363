"""
Success-path overhead per call: bare call, hand-written loop, retrykit, tenacity (sync and async).

A first look for issue 5's full suite: interleaved rounds, medians, ratios to the bare call
measured in the same run. ``python benchmarks/overhead.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import timeit
from collections.abc import Callable
from typing import Any

import tenacity

import retrykit


def bare(x: int) -> int:
    return x


def loop(x: int) -> int:
    for attempt in range(3):
        try:
            return bare(x)
        except ConnectionError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


rk = retrykit.retry("http")(bare)
tn = tenacity.retry(stop=tenacity.stop_after_attempt(3), reraise=True)(bare)


async def abare(x: int) -> int:
    return x


ark = retrykit.retry("http")(abare)
atn = tenacity.retry(stop=tenacity.stop_after_attempt(3), reraise=True)(abare)


def _sync(fn: Callable[[int], Any], n: int) -> float:
    return timeit.timeit(lambda: fn(1), number=n) / n


def _async(fn: Callable[[int], Any], n: int) -> float:
    async def many() -> None:
        for _ in range(n):
            await fn(1)

    loop_ = asyncio.new_event_loop()
    try:
        t = timeit.timeit(lambda: loop_.run_until_complete(many()), number=1)
    finally:
        loop_.close()
    return t / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    cases: dict[str, tuple[Callable[[Callable[[int], Any], int], float], Callable[[int], Any]]] = {
        "sync bare": (_sync, bare),
        "sync loop": (_sync, loop),
        "sync retrykit": (_sync, rk),
        "sync tenacity": (_sync, tn),
        "async bare": (_async, abare),
        "async retrykit": (_async, ark),
        "async tenacity": (_async, atn),
    }
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for name, (runner, fn) in cases.items():
            samples[name].append(runner(fn, args.number))
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"{'case':<16} {'median us/call':>15} {'overhead us':>12} {'spread us':>10}")
    for name, value in med.items():
        base = med["sync bare" if name.startswith("sync") else "async bare"]
        spread = max(samples[name]) - min(samples[name])
        print(f"{name:<16} {value * 1e6:>15.3f} {(value - base) * 1e6:>12.3f} {spread * 1e6:>10.3f}")
    for kind in ("sync", "async"):
        base = med[f"{kind} bare"]
        ratio = (med[f"{kind} tenacity"] - base) / max(med[f"{kind} retrykit"] - base, 1e-12)
        print(f"{kind}: retrykit's overhead is 1/{ratio:.1f} of tenacity's")


if __name__ == "__main__":
    main()
