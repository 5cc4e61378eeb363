"""The analysis at its edges: windows, suggestions on shares, logged alerts, budgets and breakers shown."""

from __future__ import annotations

import io
import logging
from collections import Counter
from datetime import timedelta

import pytest

from retrykit import ConfigError, _analysis
from retrykit._analysis import Thresholds, from_counts, render_analysis


def _analysis_of(
    counts: dict[str, Counter[str]], **overload: dict[str, dict[str, object]]
) -> _analysis.Analysis:
    parts = (overload.get("budgets", {}), overload.get("breakers", {}))
    return from_counts(counts, operation=None, since=0.0, until=60.0, source="memory", overload=parts)


def test_a_timedelta_window_ends_now_and_reaches_back_that_long() -> None:
    """since=timedelta(minutes=5) is the five minutes before the window's end."""
    assert (700.0, 1000.0) == _analysis._window(timedelta(minutes=5), None, lambda: 1000.0)


@pytest.mark.parametrize("since", ["an hour", float("nan"), True])
def test_a_window_start_that_is_no_number_is_refused(since: object) -> None:
    """since must be seconds back, a timestamp or a timedelta: anything else is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="since"):
        _analysis._window(since, None, lambda: 1000.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("permanent", "suggested"),
    [(10, True), (2, False)],
)
def test_permanent_errors_past_a_fifth_of_failures_are_called_bugs(permanent: int, suggested: bool) -> None:
    """A suggestion names permanent errors when they are more than 20 % of at least 20 failures."""
    counts = {"op": Counter({"failed:permanent_error": permanent, "failed:network_error": 30})}
    tips = _analysis_of(counts).suggestions
    assert suggested == any("permanent errors" in tip for tip in tips)


@pytest.mark.parametrize(
    ("a_retries", "b_retries", "named"),
    [(30, 5, "a"), (15, 15, None)],
)
def test_an_operation_is_named_only_when_it_has_most_of_the_retries(
    a_retries: int, b_retries: int, named: str | None
) -> None:
    """With 20+ retries over several operations, the one with more than half of them is pointed at."""
    counts = {
        "a": Counter({"retried:network_error": a_retries}),
        "b": Counter({"retried:network_error": b_retries}),
    }
    tips = [tip for tip in _analysis_of(counts).suggestions if "accounts for" in tip]
    assert ([] if named is None else [named]) == [tip.split()[0] for tip in tips]


@pytest.mark.parametrize(("state", "tips"), [("open", 1), ("closed", 0), ("half_open", 0)])
def test_only_an_open_breaker_makes_a_suggestion(state: str, tips: int) -> None:
    """A breaker in the report yields a suggestion only while it is open."""
    analysis = _analysis_of({}, breakers={"payments": {"state": state, "rejected": 3}})
    assert tips == sum("circuit breaker 'payments'" in tip for tip in analysis.suggestions)


def test_monitor_without_a_callback_logs_each_alert(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """monitor() with no on_alert writes each alert as a warning on the retrykit logger."""
    counts = {"op": Counter({"failed:network_error": 5})}
    monkeypatch.setattr(_analysis, "analyze", lambda name, since: _analysis_of(counts))
    with caplog.at_level(logging.WARNING, logger="retrykit"):
        alerts = _analysis.monitor(Thresholds(total_errors=1))
    assert ["total_errors"] == [alert.kind for alert in alerts]
    assert "retrykit alert: 5 failed attempts in all operations" in caplog.text


@pytest.mark.parametrize(
    ("budget", "shown"),
    [
        ({"shape": "adaptive", "spent": 1, "reject_probability": 0.25}, "refusing 25% now"),
        ({"shape": "ratio", "error": "ConnectionError"}, "(unreadable: ConnectionError)"),
        ({"shape": "quota", "balance": 0.5, "store": "redis"}, "balance 0.5 (exhausted) [redis]"),
    ],
)
def test_the_report_shows_what_each_budget_state_holds(budget: dict[str, object], shown: str) -> None:
    """The human report shows an adaptive budget's refusal rate, an unreadable state, a shared balance."""
    out = io.StringIO()
    render_analysis(_analysis_of({}, budgets={"svc": budget}), out)
    assert shown in out.getvalue()
