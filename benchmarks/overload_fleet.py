"""
A real fleet run: 4 processes call a local HTTP server that answers 503 for 10 s, then 200.

Each process runs 8 threads, each starting a call every 0.1 s for 16 s, through
``@retrykit.retry`` with a ratio budget (10 % + 2 retries/s) keyed ``"fleet-dep"``. Modes:

- ``shared``: one budget in a Redis server this run starts itself (``RedisOverloadStore``);
- ``local``: a budget per process (the in-memory store);
- ``redis-killed``: shared, and the Redis server is killed 4 s into the outage (each process
  then falls back to its share of the budget: 1/4 of the floor, the fleet Redis last counted).

Printed per mode: first attempts and retries during the outage, calls the server saw against
calls the clients made (lost or double-counted calls), what Redis counted, how long callers
waited for budget decisions (p50, p99 of the slowest process, the slowest) and the machine's
1-minute load average at the end (the latencies depend on it), and the share of the budget
each process would take in its local fallback.

    python benchmarks/overload_fleet.py
"""

from __future__ import annotations

import contextlib
import http.server
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

PROCESSES, THREADS, PERIOD, DURATION = 4, 8, 0.1, 16.0
OUTAGE_START, OUTAGE_END = 2.0, 12.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Handler(http.server.BaseHTTPRequestHandler):
    counts: dict[str, int] = {"total": 0, "outage": 0}
    start = 0.0
    lock = threading.Lock()

    def do_GET(self) -> None:
        elapsed = time.monotonic() - self.start
        down = OUTAGE_START <= elapsed < OUTAGE_END
        with self.lock:
            self.counts["total"] += 1
            self.counts["outage"] += down
        self.send_response(503 if down else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def worker(mode: str, url: str, redis_url: str, start: float, out: Any) -> None:
    import logging

    import retrykit
    from retrykit import Policy, RetryBudget, Strategy
    from retrykit.overload import MemoryOverloadStore, RedisOverloadStore

    logging.getLogger("retrykit").setLevel(logging.CRITICAL)  # a flood of retry lines otherwise
    store = RedisOverloadStore(redis_url, prefix="rk-overload:fleet") if mode != "local" else None
    used: Any = store if store is not None else MemoryOverloadStore()
    budget = RetryBudget("fleet-dep", ratio=0.1, min_per_second=2, window=10, store=used)
    slowest = [0.0]
    durations: list[float] = []
    original = used.withdraw

    def timed(*args: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*args)
        finally:
            durations.append(time.perf_counter() - began)
            slowest[0] = max(slowest[0], durations[-1])

    used.withdraw = timed
    policy = Policy(strategies={"temporary_error": Strategy.backoff(0.05, 0.5, max_retries=3)}, budget=budget)
    tally = {"calls": 0, "attempts": 0, "outage_calls": 0, "outage_retries": 0}
    lock = threading.Lock()

    @retrykit.retry(policy)
    def call() -> None:
        with lock:
            tally["attempts"] += 1
        with urllib.request.urlopen(url, timeout=2):  # our own local server; a 503 raises HTTPError
            pass

    def loop() -> None:
        next_at = start
        while next_at < start + DURATION:
            time.sleep(max(0.0, next_at - time.monotonic()))
            elapsed = time.monotonic() - start
            with lock:
                tally["calls"] += 1
                tally["outage_calls"] += OUTAGE_START <= elapsed < OUTAGE_END
            with contextlib.suppress(Exception):  # the 503 retrykit gave up on (HTTPError)
                call()
            next_at += PERIOD

    def count_retry(event: Any) -> None:
        if OUTAGE_START <= time.monotonic() - start < OUTAGE_END:
            with lock:
                tally["outage_retries"] += 1

    retrykit.events.subscribe(
        lambda e: count_retry(e) if isinstance(e, retrykit.events.RetryScheduled) else None
    )
    threads = [threading.Thread(target=loop) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if store is not None:
        store.close()
    durations.sort()
    p99 = durations[int(len(durations) * 0.99)] if durations else 0.0
    p50 = durations[len(durations) // 2] if durations else 0.0
    out.put(
        {
            **tally,
            "slowest_ms": slowest[0] * 1000,
            "p99_ms": p99 * 1000,
            "p50_ms": p50 * 1000,
            "decisions": len(durations),
            "fallbacks": 0 if store is None else store.fallbacks,
            "share": 1.0 if store is None else store.local.budget(budget).share,
        }
    )


def run(mode: str) -> dict[str, Any]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed"
    redis_port, http_port = free_port(), free_port()
    redis_proc = subprocess.Popen(
        [binary, "--port", str(redis_port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    time.sleep(0.3)
    Handler.counts = {"total": 0, "outage": 0}
    http.server.ThreadingHTTPServer.request_queue_size = 256  # 32 callers: never refuse one
    server = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    start = time.monotonic() + 1.5
    Handler.start = start
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    url, redis_url = f"http://127.0.0.1:{http_port}/", f"redis://127.0.0.1:{redis_port}/0"
    procs = [ctx.Process(target=worker, args=(mode, url, redis_url, start, out)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    redis_total = None
    if mode == "redis-killed":
        time.sleep(max(0.0, start + OUTAGE_START + 4 - time.monotonic()))
        redis_proc.kill()
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(10)
    server.shutdown()
    if mode != "redis-killed":
        import redis

        client = redis.Redis(port=redis_port, decode_responses=True)
        found = client.hgetall("rk-overload:fleet:{fleet-dep}:budget:ratio")
        redis_total = int(found.get("total_requests", 0)) if found else None
    redis_proc.kill()
    redis_proc.wait()
    calls = sum(r["calls"] for r in results)
    attempts = sum(r["attempts"] for r in results)
    return {
        "mode": mode,
        "first_attempts": calls,
        "outage_first_attempts": sum(r["outage_calls"] for r in results),
        "outage_retries": sum(r["outage_retries"] for r in results),
        "client_attempts": attempts,
        "server_requests": Handler.counts["total"],
        "redis_counted_calls": redis_total,
        "slowest_budget_decision_ms": round(max(r["slowest_ms"] for r in results), 2),
        "p99_budget_decision_ms": round(max(r["p99_ms"] for r in results), 2),
        "p50_budget_decision_ms": round(max(r["p50_ms"] for r in results), 3),
        "budget_decisions": sum(r["decisions"] for r in results),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "local_fallback_decisions": sum(r["fallbacks"] for r in results),
        "fallback_shares": sorted(r["share"] for r in results),
    }


if __name__ == "__main__":
    modes = sys.argv[1:] or ["shared", "local", "redis-killed"]
    for mode in modes:
        result = run(mode)
        floor = 2 * 10 * (1 if mode != "local" else PROCESSES)
        result["outage_retry_ratio"] = round(
            result["outage_retries"] / max(result["outage_first_attempts"], 1), 4
        )
        result["allowed_10pct_plus_floor"] = round(result["outage_first_attempts"] * 0.1 + floor)
        print(json.dumps(result), flush=True)
    os._exit(0)
