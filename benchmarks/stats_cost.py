"""
What the statistics cost: memory a recorder holds after N events, and the Redis backend's
throughput in events per second (recorded, sent and readable by ``analyze``).

``python benchmarks/stats_cost.py [--events 1000000] [--redis redis://127.0.0.1:6379/0]``
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
import uuid

from retrykit import Classification, Decision, ErrorCategory
from retrykit.events import AttemptFailed, RetryScheduled, Succeeded
from retrykit.stats import MemoryStore, RedisStore, StatsRecorder, analyze

CATEGORIES = list(ErrorCategory)


def events(n: int, operations: int = 50) -> list[object]:
    """A realistic mix: per call a failure, a retry and a late success, over many operations."""
    out: list[object] = []
    for i in range(n // 3):
        op = f"service.operation_{i % operations}"
        cat = CATEGORIES[i % len(CATEGORIES)]
        c = Classification(cat, "bench")
        out.append(AttemptFailed(op, 1, "E", c, 0.0, None))
        out.append(RetryScheduled(op, 1, "E", c, Decision.RETRY_WITH_BACKOFF, 0.5, 0.0))
        out.append(Succeeded(op, 2, 0.6, cat))
    return out


def memory(n: int) -> None:
    batch = events(30_000)
    clock_now = [1_800_000_000.0]
    store = MemoryStore(clock=lambda: clock_now[0])
    rec = StatsRecorder(store)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    sent = 0
    while sent < n:
        for event in batch:
            rec(event)  # type: ignore[arg-type]
        sent += len(batch)
        clock_now[0] += 20  # 30k events every 20 s: 1M events span about 11 minutes
    elapsed = time.perf_counter() - started
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(
        f"memory: {sent:,} events over {(clock_now[0] - 1_800_000_000) / 60:.0f} simulated minutes, "
        f"{store.size():,} counters held, {held / 1024:.0f} KiB held, "
        f"{sent / elapsed:,.0f} events/s recorded"
    )
    # a month: the same rate for 30 days keeps only the last 24 h of buckets
    store2 = MemoryStore(clock=lambda: clock_now[0])
    rec2 = StatsRecorder(store2)
    for _day in range(30 * 24 * 3):  # one batch of 300 events every 20 minutes for 30 days
        for event in batch[:300]:
            rec2(event)  # type: ignore[arg-type]
        clock_now[0] += 1200
    print(f"month: 30 simulated days -> {store2.size():,} counters held (bounded by the 24 h retention)")


def redis_throughput(url: str, n: int) -> None:
    prefix = f"rkbench-{uuid.uuid4().hex[:6]}"
    store = RedisStore(url, prefix=prefix, flush_interval=0.2)
    rec = StatsRecorder(MemoryStore(), store)
    batch = events(n)
    started = time.perf_counter()
    for event in batch:
        rec(event)  # type: ignore[arg-type]
    recorded = time.perf_counter() - started
    store.flush()
    total = time.perf_counter() - started
    result = analyze(since=3600, recorder=rec)
    store.close()
    keys = store.client.keys(f"{prefix}:*")
    if keys:
        store.client.delete(*keys)
    assert result.total_errors == len(batch) // 3, result.total_errors
    print(
        f"redis: {len(batch):,} events recorded in {recorded:.2f}s ({len(batch) / recorded:,.0f} events/s "
        f"in the caller), all in Redis after {total:.2f}s ({len(batch) / total:,.0f} events/s end to end); "
        f"analyze() read back {result.total_errors:,} failures, exact"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--redis-events", type=int, default=300_000)
    args = parser.parse_args()
    memory(args.events)
    redis_throughput(args.redis, args.redis_events)


if __name__ == "__main__":
    main()
