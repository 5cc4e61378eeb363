"""
The thundering-herd simulation of "Exponential Backoff and Jitter" (AWS Architecture Blog, 2015),
ported from the post's description and published figures, with retrykit's own ``Strategy``
objects computing every delay.

N clients each update one row once with optimistic concurrency; every failed conditional write
backs off and tries again. Network legs take |Normal(10, 2)| ms. We count writes (``calls``) and
the time the last client finishes (``time``). Virtual time, seeded: deterministic and fast.
"""

from __future__ import annotations

import heapq
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from retrykit import Jitter, Strategy

BASE_MS = 5.0
CAP_MS = 2000.0


def strategies() -> dict[str, Strategy | None]:
    """The simulator's algorithms, as retrykit strategies (seconds). ``None``: no backoff."""
    window = BASE_MS * 2 / 1000  # expo(n) = min(cap, base * 2**n): the first window is 2 * base
    common = {"max_delay": CAP_MS / 1000, "max_retries": 10_000}
    return {
        "None": None,
        "Exponential": Strategy.backoff(window, jitter=Jitter.NONE, **common),
        "EqualJitter": Strategy.backoff(window, jitter=Jitter.EQUAL, **common),
        "FullJitter": Strategy.backoff(window, jitter=Jitter.FULL, **common),
        "Decorr": Strategy.backoff(BASE_MS / 1000, jitter=Jitter.DECORRELATED, **common),
    }


@dataclass
class Result:
    """One run: writes and completion time (ms)."""

    calls: int
    time: float


def simulate(
    clients: int, strategy: Strategy | None, rng: random.Random, writes: list[float] | None = None
) -> Result:
    """One run of the simulation with *clients* contending clients."""
    net: Callable[[], float] = lambda: abs(rng.gauss(10, 2))
    version = 0
    calls = 0
    last = 0.0
    seq = 0
    queue: list[tuple[float, int, str, int, int, int]] = []  # (time, seq, kind, client, version, attempt)
    previous: list[float | None] = [None] * clients

    def push(at: float, kind: str, client: int, seen: int, attempt: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, (at, seq, kind, client, seen, attempt))

    for client in range(clients):
        push(net(), "read", client, 0, 0)
    while queue:
        now, _, kind, client, seen, attempt = heapq.heappop(queue)
        last = now
        if kind == "read":  # the server answers with the current version
            push(now + net(), "read_reply", client, version, attempt)
        elif kind == "read_reply":  # the client sends its conditional write
            push(now + net(), "write", client, seen, attempt)
        elif kind == "write":
            calls += 1
            if writes is not None:
                writes.append(now)
            ok = seen == version
            if ok:
                version += 1
            push(now + net(), "ok" if ok else "conflict", client, seen, attempt)
        elif kind == "conflict":
            attempt += 1
            if strategy is None:
                delay = 0.0
            else:
                delay = strategy.delay_for(attempt, previous=previous[client], rng=rng.random) * 1000
                previous[client] = delay / 1000
            push(now + net() + delay, "read", client, 0, attempt)
    return Result(calls, last)


def sweep(clients: list[int], runs: int, seeds: list[int]) -> dict[str, dict[int, Result]]:
    """Mean calls and time per algorithm and client count, over *runs* runs on each seed."""
    out: dict[str, dict[int, Result]] = {}
    for name, strategy in strategies().items():
        out[name] = {}
        for n in clients:
            results = []
            for seed in seeds:
                rng = random.Random(seed * 1_000_003 + n)
                results.extend(simulate(n, strategy, rng) for _ in range(runs))
            out[name][n] = Result(
                round(statistics.fmean(r.calls for r in results)), statistics.fmean(r.time for r in results)
            )
    return out


REFERENCE_N100 = {"FullJitter": (796, 4911.0), "Decorr": (1002, 4492.0), "EqualJitter": (812, 6597.0)}
"""A reproduction's results at N = 100 (the simulation as the post describes it): calls, time in ms."""


def check(results: dict[str, dict[int, Result]]) -> list[str]:
    """Deviations from the published shape at N = 100 (calls +-3 %, time +-10 %); empty if none."""
    problems = []
    for name, (calls, time_ms) in REFERENCE_N100.items():
        got = results[name][100]
        if abs(got.calls - calls) > 0.03 * calls:
            problems.append(f"{name}: {got.calls} calls, expected {calls} +-3%")
        if abs(got.time - time_ms) > 0.10 * time_ms:
            problems.append(f"{name}: {got.time:.0f} ms, expected {time_ms:.0f} +-10%")
    ratio = results["Exponential"][100].calls / results["FullJitter"][100].calls
    if ratio < 2.2:
        problems.append(f"Exponential/FullJitter calls ratio {ratio:.2f} < 2.2: harness broken")
    return problems


def empty_bins(name: str, clients: int = 100, runs: int = 100, seed: int = 0) -> int:
    """Empty 10 ms bins between 50 and 2000 ms in the pooled write times (the 'waves')."""
    writes: list[float] = []
    strategy = strategies()[name]
    rng = random.Random(seed)
    for _ in range(runs):
        simulate(clients, strategy, rng, writes)
    filled = {int(t // 10) for t in writes if 50 <= t < 2000}
    return len(range(5, 200)) - len(filled)


if __name__ == "__main__":
    import sys

    quick = "--quick" in sys.argv
    ns = [10, 50, 100] if quick else list(range(10, 200, 10))
    res = sweep(ns, 20 if quick else 100, [0] if quick else [0, 1, 2])
    print("clients," + ",".join(f"{a}_calls,{a}_ms" for a in res))
    for n in ns:
        print(f"{n}," + ",".join(f"{res[a][n].calls},{res[a][n].time:.0f}" for a in res))
    if not quick:
        print("deviations:", check(res) or "none")
