"""The loop's fast path (``Call.fail``) decides a retry exactly as the general path (``Call.step``)."""

from __future__ import annotations

import errno
import itertools
import logging
from collections.abc import Callable
from typing import Any

import anyio.lowlevel
import pytest

import retrykit
from retrykit import ErrorCategory, Policy, Strategy, _decision, _scope, _stats, driver
from retrykit._loop import FAST_DELAYS, Call, fast_entry, fast_table
from retrykit.driver import Action, Step

from .flaky import AsyncFlaky, Flaky

NET = ErrorCategory.NETWORK_ERROR
TEMPORARY = ErrorCategory.TEMPORARY_ERROR

CASES: dict[str, tuple[dict[str, Any], Callable[[], tuple[Exception, ...]]]] = {
    # (each run gets new exceptions: a note left on one by a give-up sends it the general way)
    "fixed delay, recovers": ({NET: Strategy.delay(0.5)}, lambda: (ConnectionResetError("reset"),) * 3),
    "backoff with jitter, two categories": (
        {NET: Strategy.backoff(0.1, max_retries=5), TEMPORARY: Strategy.backoff(0.2, jitter="equal")},
        lambda: (
            ConnectionResetError("a"),
            BlockingIOError("t"),
            ConnectionResetError("a"),
            BlockingIOError("t"),
        ),
    ),
    "an errno-keyed OSError": (
        {NET: Strategy.delay(0.25)},
        lambda: (ConnectionRefusedError(errno.ECONNREFUSED, "refused"),) * 2,
    ),
    "the category's retries run out": (
        {NET: Strategy.delay(0.1, max_retries=2)},
        lambda: tuple(ConnectionResetError() for _ in range(4)),
    ),
    "more retries than the delay table holds": (
        {NET: Strategy.backoff(0.01, max_retries=FAST_DELAYS + 4, jitter="none", max_delay=1.0)},
        lambda: tuple(ConnectionResetError("x") for _ in range(FAST_DELAYS + 2)),
    ),
    "not retried at all": ({}, lambda: (ValueError("bad"),)),
}
_STEP = Call.step
OPTIONS: dict[str, dict[str, Any]] = {"no limit": {}, "max_attempts=3": {"max_attempts": 3}}


def _draws() -> Callable[[], float]:
    """The jitter's draws: the same sequence on every run."""
    values = itertools.cycle([0.1, 0.9, 0.5, 0.3, 0.7])
    return lambda: next(values)


class Observed:
    """What one run of a call showed: failures given to ``step``, sleeps, logs, counts, outcome."""

    def __init__(self) -> None:
        self.steps = 0
        self.slept: list[float] = []
        self.outcome: Any = None
        self.statistics: dict[str, Any] = {}
        self.lines: list[Any] = []

    def seen(self) -> tuple[Any, ...]:
        return (self.outcome, self.slept, self.statistics, self.lines)


@pytest.fixture
def general(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    """A switch: True sends every outcome through the general path (``Call.step``)."""
    fast, returned = Call.fail, Call.returned

    def switch(on: bool) -> None:
        monkeypatch.setattr(Call, "fail", (lambda self, exc: self.step(exc, True)) if on else fast)
        monkeypatch.setattr(
            Call,
            "returned",
            (lambda self, value, found=None: self.step(value, False, found)) if on else returned,
        )

    return switch


def _watch(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Observed:
    """Start observing one run: counted steps, recorded sleeps, fixed jitter, fresh statistics."""
    seen = Observed()
    step = _STEP

    def counted(self: Call, outcome: Any, failed: bool, found: Any = None) -> float | None:
        seen.steps += failed
        return step(self, outcome, failed, found)

    async def sleep(delay: float) -> None:
        seen.slept.append(delay)
        await anyio.lowlevel.checkpoint()

    monkeypatch.setattr(Call, "step", counted)
    monkeypatch.setattr(_scope.time, "sleep", seen.slept.append)
    monkeypatch.setattr(_scope, "sleep_async", sleep)
    monkeypatch.setattr(_decision, "_random", _draws())
    _stats.use_recorder(_stats.StatsRecorder(_stats.MemoryStore(clock=lambda: 1000.0)))
    caplog.set_level(logging.DEBUG, logger="retrykit")
    caplog.clear()
    return seen


def _ended(seen: Observed, caplog: pytest.LogCaptureFixture, outcome: Any) -> Observed:
    seen.outcome = outcome
    seen.statistics = {k: dict(v) for k, v in _stats.recorder().local.read(None, 0, 2000).items()}
    seen.lines = [
        (r.levelname, {k: v for k, v in r.retrykit.items() if k != "elapsed"})
        for r in caplog.records
        if hasattr(r, "retrykit")
    ]
    return seen


def _raised(exc: Exception) -> tuple[Any, ...]:
    return ("raised", type(exc), str(exc), getattr(exc, "__notes__", None))


def _observe(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, run: Callable[[], Any]
) -> Observed:
    seen = _watch(monkeypatch, caplog)
    try:
        outcome: Any = ("returned", run())
    except Exception as exc:
        outcome = _raised(exc)
    return _ended(seen, caplog, outcome)


def _both(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    general: Callable[[bool], None],
    run: Callable[[], Any],
) -> Observed:
    general(True)
    slow = _observe(monkeypatch, caplog, run)
    general(False)
    fast = _observe(monkeypatch, caplog, run)
    assert fast.seen() == slow.seen()
    assert slow.steps == len(fast.slept) + (fast.outcome[0] == "raised")
    return fast


def _took_the_fast_path(fast: Observed) -> None:
    """Every retry was decided by ``fail``; ``step`` saw only a failure given up on."""
    assert fast.steps == (fast.outcome[0] == "raised")


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS)
@pytest.mark.parametrize(("strategies", "failures"), CASES.values(), ids=CASES)
def test_a_decorated_function_ends_the_same_on_either_path(
    strategies: dict[ErrorCategory, Strategy],
    failures: Callable[[], tuple[Exception, ...]],
    options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    general: Callable[[bool], None],
) -> None:
    """A decorated function's outcome, sleeps, log lines, statistics and ``.statistics`` match."""
    policy = Policy(strategies=strategies, **options)

    def run() -> Any:
        fn = retrykit.retry(policy, operation="op")(Flaky(*failures(), name="op"))
        try:
            return fn()
        finally:
            caplog.records.append(_record(dict(fn.statistics)))

    _took_the_fast_path(_both(monkeypatch, caplog, general, run))


def _record(statistics: dict[str, Any]) -> logging.LogRecord:
    """The decorated function's ``.statistics`` as a log record, compared with the lines."""
    record = logging.makeLogRecord({"levelname": "STATS"})
    record.retrykit = statistics
    return record


@pytest.mark.anyio
@pytest.mark.parametrize(("strategies", "failures"), CASES.values(), ids=CASES)
async def test_a_decorated_coroutine_ends_the_same_on_either_path(
    strategies: dict[ErrorCategory, Strategy],
    failures: Callable[[], tuple[Exception, ...]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    general: Callable[[bool], None],
) -> None:
    """A decorated coroutine's outcome, sleeps, log lines and statistics match on either path."""
    policy = Policy(strategies=strategies, max_attempts=FAST_DELAYS + 3)
    runs: list[Observed] = []
    for on in (True, False):
        general(on)
        fn = retrykit.retry(policy, operation="op")(AsyncFlaky(*failures(), name="op"))
        seen = _watch(monkeypatch, caplog)
        try:
            outcome: Any = ("returned", await fn())
        except Exception as exc:
            outcome = _raised(exc)
        runs.append(_ended(seen, caplog, outcome))
    slow, fast = runs
    assert fast.seen() == slow.seen()
    _took_the_fast_path(fast)


@pytest.mark.parametrize(("strategies", "failures"), CASES.values(), ids=CASES)
def test_a_block_ends_the_same_on_either_path(
    strategies: dict[ErrorCategory, Strategy],
    failures: Callable[[], tuple[Exception, ...]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    general: Callable[[bool], None],
) -> None:
    """``for attempt in attempts(policy)`` ends with the same outcome, sleeps, logs and counts."""
    policy = Policy(strategies=strategies)

    def run() -> Any:
        flaky = Flaky(*failures(), name="op")
        for attempt in retrykit.attempts(policy, operation="op"):
            with attempt:
                return flaky()
        return None  # pragma: no cover - the block returns or raises

    _took_the_fast_path(_both(monkeypatch, caplog, general, run))


@pytest.mark.parametrize(
    "setting",
    [
        "a context-local sink",
        "a global sink",
        "an on_retry callback",
        "a test mode",
        "a deadline",
        "a rule of the user's",
    ],
)
def test_what_the_fast_path_cannot_decide_takes_the_general_path(
    setting: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Sinks, callbacks, test modes, deadlines and user rules send every failure through ``step``."""
    options: dict[str, Any] = {"strategies": {NET: Strategy.delay(0.5)}}
    if setting == "an on_retry callback":
        options["on_retry"] = lambda event: None
    if setting == "a deadline":
        options["deadline"] = 3600
    if setting == "a rule of the user's":
        options["classifier"] = retrykit.Classifier(
            [retrykit.Rule(ErrorCategory.PERMANENT_ERROR, types=KeyError)]
        )
    fn = retrykit.retry(Policy(**options), operation="op")(Flaky.failing(2, name="op"))

    received: list[Any] = []

    def run() -> Any:
        if setting == "a context-local sink":
            with retrykit.testing.record():
                return fn()
        if setting == "a global sink":
            unsubscribe = retrykit.events.subscribe(received.append)
            try:
                return fn()
            finally:
                unsubscribe()
        if setting == "a test mode":
            with retrykit.testing.no_wait():
                return fn()
        return fn()

    seen = _observe(monkeypatch, caplog, run)
    assert (seen.outcome[0], seen.steps) == ("returned", 2)


@pytest.mark.parametrize(("strategies", "failures"), CASES.values(), ids=CASES)
def test_a_driver_run_steps_the_same_on_either_path(
    strategies: dict[ErrorCategory, Strategy],
    failures: Callable[[], tuple[Exception, ...]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    general: Callable[[bool], None],
) -> None:
    """An adapter's loop over ``retrykit.driver`` gets the same steps, sleeps, logs and counts."""
    policy = Policy(strategies=strategies, max_attempts=FAST_DELAYS + 3)

    def run() -> Any:
        flaky = Flaky(*failures(), name="op")
        steps: list[Step] = []
        with driver.start(policy, operation="op") as attempts:
            while True:
                try:
                    step = attempts.returned(flaky())
                except Exception as exc:
                    step = attempts.failed(exc)
                    if step.action is Action.GIVE_UP:
                        raise  # as an adapter does: the caller gets its own exception
                steps.append(step)
                if step.action is not Action.RETRY:
                    return steps
                attempts.sleep(step.delay)
                assert attempts.next()

    _took_the_fast_path(_both(monkeypatch, caplog, general, run))


@pytest.mark.parametrize("jitter", ["none", "full"])
def test_policies_made_per_call_share_their_strategies_tables(jitter: str) -> None:
    """A policy made with ``replace`` (a driver run with overrides) reuses its strategies' entries."""
    policy = Policy(strategies={NET: Strategy.backoff(0.1, jitter=jitter)})
    entries = [(fast_table(policy.replace(max_attempts=n))[1] or {}).get(NET) for n in (2, 3)]
    assert entries[0] is not None
    assert entries[0] is entries[1] is fast_entry(policy.strategies[NET])
