"""
Overload simulation: do retries amplify an outage, and do they slow the recovery?

100 clients each start a call every 0.2 s (500 calls/s, jittered) to one dependency that serves
750 requests/s. From t = 10 s to t = 40 s it is fully down (every request fails with a 503, a
temporary error); then it recovers. Requests beyond its capacity in a 100 ms slot also fail
(503), so a retry storm after recovery shows up as failures. Every client shares one budget or
breaker keyed by the dependency (as with ``RedisOverloadStore``). Virtual time, seeded: the same
numbers on every run, in about a second per row.

Reported per configuration: retries as a fraction of first attempts during the outage, and the
time from recovery to the first 1 s window in which every call started succeeds.
``--series PATH`` also writes each configuration's requests per second over time (first
attempts, retries, successes) as JSON: ``docs/scripts/figures.py`` draws them for the docs.
"""

from __future__ import annotations

import heapq
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from retrykit import CircuitBreaker, ErrorCategory, Jitter, RetryBudget, Strategy, get_preset

TEMP = ErrorCategory.TEMPORARY_ERROR
CLIENTS = 100
PERIOD = 0.2
CAPACITY = 750
SLOT = 0.1
DOWN, UP, END = 10.0, 40.0, 70.0
LATENCY = 0.01


@dataclass
class Row:
    """One configuration's figures."""

    name: str
    first: int
    retries_in_outage: int
    firsts_in_outage: int
    recovery: float | None
    series: dict[str, list[int]] | None = None
    """Per second of the run: first attempts, retries and successes reaching the dependency."""

    @property
    def amplification(self) -> float:
        return self.retries_in_outage / max(self.firsts_in_outage, 1)


def stamina_delay(rng: random.Random) -> Callable[[int], float | None]:
    """stamina's defaults: 10 attempts, min(5, 0.1 * 2**(n-1) + U(0, 1)) s."""
    return lambda n: None if n > 9 else min(5.0, 0.1 * 2 ** (n - 1) + rng.uniform(0, 1))


def strategy_delay(strategy: Strategy, rng: random.Random) -> Callable[[int], float | None]:
    """A retrykit strategy's delays, up to its max_retries."""

    def delay(n: int) -> float | None:
        if strategy.max_retries is not None and n > strategy.max_retries:
            return None
        return strategy.delay_for(n, rng=rng.random)

    return delay


def simulate(
    name: str, make: Callable[[random.Random, Callable[[], float]], dict[str, Any]], seed: int = 0
) -> Row:
    """Run one configuration."""
    rng = random.Random(seed)
    now = [0.0]
    clock = lambda: now[0]
    setup = make(rng, clock)
    delay_of: Callable[[int], float | None] | None = setup.get("delay")
    budget: RetryBudget | None = setup.get("budget")
    breaker: CircuitBreaker | None = setup.get("breaker")
    queue: list[tuple[float, int, str, int]] = []  # (time, seq, kind, attempt)
    seq = 0
    served: dict[int, int] = {}
    started: dict[int, int] = {}
    succeeded: dict[int, int] = {}
    failed_bins: set[int] = set()
    first = retries_out = firsts_out = 0
    sent: dict[str, list[int]] = {"first": [0] * int(END + 60), "retry": [0] * int(END + 60)}

    def push(at: float, kind: str, attempt: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, (at, seq, kind, attempt))

    for _ in range(CLIENTS):
        push(rng.uniform(0, PERIOD), "call", 0)
    while queue:
        t, _, kind, attempt = heapq.heappop(queue)
        now[0] = t
        if kind == "call":
            if t + PERIOD < END:
                push(t + rng.uniform(0.5, 1.5) * PERIOD, "call", 0)
            first += 1
            started[int(t)] = started.get(int(t), 0) + 1
            if DOWN <= t < UP:
                firsts_out += 1
            if breaker is not None and breaker.allow():
                failed_bins.add(int(t))  # refused at once: CircuitOpen
                continue
            if budget is not None:
                budget.admitted()
            push(t + LATENCY, "attempt", 1)
            continue
        if kind == "retry":
            if breaker is not None and breaker.allow():
                failed_bins.add(int(t))
                continue
            push(t + LATENCY, "attempt", attempt)
            continue
        slot = int(t / SLOT)  # an attempt reaches the dependency
        if int(t) < len(sent["first"]):
            sent["first" if attempt == 1 else "retry"][int(t)] += 1
        served[slot] = served.get(slot, 0) + 1
        if not (DOWN <= t < UP) and served[slot] <= CAPACITY * SLOT:
            succeeded[int(t)] = succeeded.get(int(t), 0) + 1
            if breaker is not None:
                breaker.record(1, 0)
            if budget is not None:
                budget.succeeded(budget.cost(TEMP) if attempt > 1 else None)
            continue
        failed_bins.add(int(t))
        if breaker is not None:
            breaker.record(0, 1)
        delay = None if delay_of is None else delay_of(attempt)
        if delay is None:
            continue
        if breaker is not None and breaker._store().peek(breaker) > delay:
            continue  # StopReason.CIRCUIT_OPEN
        if budget is not None and budget.withdraw(TEMP) is None:
            continue  # StopReason.BUDGET_EXHAUSTED
        if DOWN <= t < UP:
            retries_out += 1
        push(t + delay, "retry", attempt + 1)
    recovery = None
    for second in range(int(UP), int(END) - 1):
        if second not in failed_bins and succeeded.get(second, 0) >= started.get(second, 0):
            recovery = second - UP
            break
    seconds = int(END)
    series = {
        "first": sent["first"][:seconds],
        "retry": sent["retry"][:seconds],
        "succeeded": [succeeded.get(second, 0) for second in range(seconds)],
    }
    return Row(name, first, retries_out, firsts_out, recovery, series)


def configurations() -> dict[str, Callable[[random.Random, Callable[[], float]], dict[str, Any]]]:
    """The rows: no retries, naive retries, retrykit without and with each protection."""
    default = get_preset("default").strategy_for(TEMP)
    tenacity_style = Strategy.backoff(1.0, 10.0, max_retries=3, jitter=Jitter.NONE)

    def store() -> Any:
        from retrykit.overload import MemoryOverloadStore

        return MemoryOverloadStore()  # one per row: the 100 clients share it, as through Redis

    return {
        "no retries": lambda rng, clock: {},
        "tenacity-style, 3 retries (1, 2, 4 s)": lambda rng, clock: {
            "delay": strategy_delay(tenacity_style, rng)
        },
        "stamina defaults (9 retries)": lambda rng, clock: {"delay": stamina_delay(rng)},
        "retrykit default, no budget": lambda rng, clock: {"delay": strategy_delay(default, rng)},
        "retrykit + ratio budget (10 %, 1/s)": lambda rng, clock: {
            "delay": strategy_delay(default, rng),
            "budget": RetryBudget("dep", ratio=0.1, min_per_second=1, clock=clock, store=store()),
        },
        "retrykit + quota budget (500 tokens)": lambda rng, clock: {
            "delay": strategy_delay(default, rng),
            "budget": RetryBudget.quota("dep", clock=clock, store=store()),
        },
        "retrykit + adaptive throttle (K = 2)": lambda rng, clock: {
            "delay": strategy_delay(default, rng),
            "budget": RetryBudget.adaptive("dep", clock=clock, rng=rng.random, store=store()),
        },
        "retrykit + circuit breaker": lambda rng, clock: {
            "delay": strategy_delay(default, rng),
            "breaker": CircuitBreaker("dep", clock=clock, store=store()),
        },
        "retrykit + ratio budget + breaker": lambda rng, clock: {
            "delay": strategy_delay(default, rng),
            "budget": RetryBudget("dep", ratio=0.1, min_per_second=1, clock=clock, store=store()),
            "breaker": CircuitBreaker("dep", clock=clock, store=store()),
        },
    }


def run(seed: int = 0) -> list[Row]:
    """Every configuration, seeded."""
    return [simulate(name, make, seed) for name, make in configurations().items()]


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| configuration | retries / first attempts during the outage | time to full throughput after recovery |",
        "|---|---:|---:|",
    ]
    for row in rows:
        recovery = "never (in 30 s)" if row.recovery is None else f"{row.recovery:.0f} s"
        lines.append(f"| {row.name} | {row.amplification:.1%} | {recovery} |")
    return "\n".join(lines)


def write_series(rows: list[Row], path: str) -> None:
    """The rows' time series as JSON (sorted keys, one run's figures: the same on every run)."""
    document = {
        "clients": CLIENTS,
        "capacity": CAPACITY,
        "down": DOWN,
        "up": UP,
        "rows": [
            {"name": row.name, "amplification": round(row.amplification, 4), "recovery": row.recovery}
            | (row.series or {})
            for row in rows
        ],
    }
    rows_text = ",\n".join(json.dumps(row, sort_keys=True) for row in document.pop("rows"))
    with open(path, "w") as file:
        file.write(json.dumps(document, sort_keys=True)[:-1] + ', "rows": [\n' + rows_text + "\n]}\n")


if __name__ == "__main__":
    results = run()
    print(table(results))
    if "--series" in sys.argv:
        write_series(results, sys.argv[sys.argv.index("--series") + 1])
