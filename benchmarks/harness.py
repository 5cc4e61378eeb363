"""
The pieces every benchmark shares: the same retrying call in each library, the functions they
retry (counting every attempt), and the timers (interleaved rounds, medians, spread).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import backoff
import stamina
import tenacity
from sleeping import REAL, sleep_argument

import retrykit
from retrykit import ErrorCategory, Policy, Strategy

LIBRARIES = ("loop", "backoff", "stamina", "tenacity", "retrykit")
TRIES = 6
"""Every library makes up to this many attempts on ConnectionError."""


def _loop(fn: Callable[..., Any], wait: float) -> Callable[..., Any]:
    """The hand-written loop: sleeps through ``time.sleep`` / ``asyncio.sleep``, even for 0 s."""
    if inspect.iscoroutinefunction(fn):

        async def aloop(*args: Any) -> Any:
            for attempt in range(TRIES):
                try:
                    return await fn(*args)
                except ConnectionError:
                    if attempt == TRIES - 1:
                        raise
                    await asyncio.sleep(wait)
            raise AssertionError("unreachable")

        return aloop

    def loop(*args: Any) -> Any:
        for attempt in range(TRIES):
            try:
                return fn(*args)
            except ConnectionError:
                if attempt == TRIES - 1:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")

    return loop


def wrap(library: str, fn: Callable[..., Any], wait: float, mode: str = REAL) -> Callable[..., Any]:
    """
    *fn* (sync or async) retried by *library*: up to ``TRIES`` attempts on ConnectionError,
    *wait* seconds apart, no jitter; the no-op sleep goes in here where it is an argument.
    ``"bare"`` is *fn* itself.
    """
    sleep = sleep_argument(library, mode, inspect.iscoroutinefunction(fn))
    if library == "bare":
        return fn
    if library == "loop":
        return _loop(fn, wait)
    if library == "backoff":
        return backoff.on_exception(
            backoff.constant, ConnectionError, max_tries=TRIES, interval=wait, jitter=None
        )(fn)
    if library == "stamina":
        return stamina.retry(
            on=ConnectionError, attempts=TRIES, wait_initial=wait, wait_max=wait, wait_jitter=0
        )(fn)
    if library == "tenacity":
        return tenacity.retry(
            retry=tenacity.retry_if_exception_type(ConnectionError),
            stop=tenacity.stop_after_attempt(TRIES),
            wait=tenacity.wait_fixed(wait),
            reraise=True,
            **sleep,
        )(fn)
    if library == "retrykit":
        strategy = Strategy.delay(wait, max_retries=TRIES - 1)
        return retrykit.retry(Policy(strategies={ErrorCategory.NETWORK_ERROR: strategy}, max_attempts=TRIES))(
            fn
        )
    raise ValueError(f"unknown library {library!r}")


class Flaky:
    """Calls made one at a time: each fails with ConnectionError *failures* times, then returns 1."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.left = failures
        self.attempts = 0

    def sync(self) -> int:
        self.attempts += 1
        if self.left:
            self.left -= 1
            raise ConnectionError("flaky")
        self.left = self.failures
        return 1

    async def asyn(self) -> int:
        return self.sync()


class Concurrent:
    """*calls* concurrent calls ``call(i)``: each fails *failures* times, then returns 1."""

    def __init__(self, calls: int, failures: int) -> None:
        self.failures = failures
        self.attempts = [0] * calls

    async def call(self, i: int) -> int:
        self.attempts[i] += 1
        if self.attempts[i] <= self.failures:
            raise ConnectionError("flaky")
        return 1

    def check(self, what: str) -> None:
        """Every call made exactly ``failures + 1`` attempts."""
        wrong = [a for a in self.attempts if a != self.failures + 1]
        assert not wrong, (
            f"{what}: {len(wrong)} calls made {sorted(set(wrong))} attempts, not {self.failures + 1}"
        )


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


def call_once(run: Callable[[], Any]) -> Any:
    """Call *run* once, on a new event loop if it is async."""
    return asyncio.run(run()) if inspect.iscoroutinefunction(run) else run()


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
