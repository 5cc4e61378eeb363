"""Failing sinks and rules report once a minute per name and error type, then count silently."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import pytest
import structlog

import retrykit
import retrykit.events
import retrykit.stats
from retrykit import _cli, _logging, _stats
from retrykit.stats import analyze, sink_failures
from retrykit.testing import no_wait

NET = retrykit.ErrorCategory.NETWORK_ERROR
THREE = retrykit.Policy(strategies={NET: retrykit.Strategy.immediately(max_retries=2)})


class Clock:
    """A settable monotonic clock for the log limiter."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A fresh log limiter on a clock the test moves."""
    ticks = Clock()
    _logging._limiter = _logging._OncePerInterval(clock=ticks)
    return ticks


def _flaky() -> Any:
    calls = 0

    def fn() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError
        return "ok"

    return fn


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize("error", [RuntimeError, KeyError, ZeroDivisionError])
def test_a_failing_sink_is_logged_once_a_minute_and_counted(
    clock: Clock, caplog: pytest.LogCaptureFixture, error: type[Exception]
) -> None:
    """1,000 calls through a raising sink: one line (name, error type), 3,000 failures counted."""

    def broken(event: Any) -> None:
        raise error("secret detail")

    before = sum(sink_failures().values())
    unsubscribe = retrykit.events.subscribe(broken)
    try:
        with caplog.at_level(logging.DEBUG, logger="retrykit"), no_wait():
            for _ in range(1000):
                retrykit.retry(THREE)(_flaky())()
            clock.now += 61
            retrykit.retry(THREE)(_flaky())()
    finally:
        unsubscribe()
    lines = _lines(caplog, "broken raised")
    name = f"{__name__}.test_a_failing_sink_is_logged_once_a_minute_and_counted.<locals>.broken"
    assert [
        f"retrykit: sink {name} raised {error.__name__} on AttemptFailed; skipped (logged once a minute "
        "per sink and error type, counted in retrykit.stats.sink_failures())",
        f"retrykit: sink {name} raised {error.__name__} on AttemptFailed; skipped (logged once a minute "
        "per sink and error type, counted in retrykit.stats.sink_failures(); 2999 more since the last line)",
    ] == lines
    assert all(r.exc_info is None for r in caplog.records)
    assert "secret detail" not in caplog.text
    assert 3003 == sink_failures()[f"{name}:{error.__name__}"]
    assert 3003 == sum(sink_failures().values()) - before
    assert {f"{name}:{error.__name__}": 3003} == analyze().sink_failures


def test_two_sinks_and_two_error_types_are_reported_apart(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each (sink, error type) pair gets its own line."""
    kinds = iter([ValueError, KeyError] * 100)

    def first(event: Any) -> None:
        raise next(kinds)()

    def second(event: Any) -> None:
        raise RuntimeError

    unsubscribe = [retrykit.events.subscribe(first), retrykit.events.subscribe(second)]
    try:
        with caplog.at_level(logging.DEBUG, logger="retrykit"), no_wait():
            for _ in range(20):
                retrykit.retry(THREE)(_flaky())()
    finally:
        for off in unsubscribe:
            off()
    assert 3 == len(_lines(caplog, " raised "))


def test_sink_failures_show_in_the_stats_command(clock: Clock) -> None:
    """``retrykit stats`` prints the sink failures of the analysed statistics."""

    def broken(event: Any) -> None:
        raise RuntimeError

    unsubscribe = retrykit.events.subscribe(broken)
    try:
        with no_wait():
            retrykit.retry(THREE)(_flaky())()
    finally:
        unsubscribe()
    out = io.StringIO()
    _cli.render_analysis(analyze(), out)
    assert f"sink failures     {__name__}.test_sink_failures_show_in_the_stats_command.<locals>.broken" in (
        out.getvalue()
    )
    assert "RuntimeError 3" in out.getvalue()


def test_overflow_shows_in_the_stats_command() -> None:
    """Counts of names beyond the cap show as an overflow line."""
    rec = _stats.StatsRecorder(_stats.MemoryStore(max_operations=2))
    for i in range(5):
        rec.local.add(f"op{i}", {"failed:network_error": 1})
    out = io.StringIO()
    _cli.render_analysis(analyze(recorder=rec), out)
    assert "name overflow     3 counts of operation names beyond the cap" in out.getvalue()


@pytest.mark.parametrize("structured", [False, True], ids=["stdlib", "structlog"])
def test_a_buggy_rule_over_a_big_exception_group_logs_one_line(
    clock: Clock, caplog: pytest.LogCaptureFixture, structured: bool
) -> None:
    """A rule raising on each of 1,000 group members: one log line, every failure counted."""

    def buggy(exc: BaseException) -> bool:
        raise AttributeError("secret detail")

    policy = retrykit.Policy(
        classifier=retrykit.Classifier([retrykit.Rule("network_error", when=buggy, name="buggy")]),
        max_attempts=1,
    )
    group = ExceptionGroup("many", [ConnectionResetError(i) for i in range(1000)])

    def fn() -> None:
        raise group

    structlog.reset_defaults()
    logs: list[dict[str, Any]] = []
    capture = structlog.testing.capture_logs() if structured else contextlib.nullcontext(logs)
    with capture as logs, caplog.at_level(logging.DEBUG, logger="retrykit"):
        assert structured == structlog.is_configured()
        with pytest.raises(ExceptionGroup):
            retrykit.retry(policy)(fn)()
    rule_lines = [e for e in logs if e["event"] == "retrykit.rule_failed"] + [
        r for r in caplog.records if "rule_failed" in r.getMessage()
    ]
    assert 1 == len(rule_lines)
    assert "secret detail" not in caplog.text + repr(logs)
    assert analyze().rule_failures["buggy"] >= 1000
