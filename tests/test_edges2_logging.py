"""The log sink at its edges: the bounded limiter, context providers, repeated rule failures, quiet events."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from retrykit import ErrorCategory, _events, _logging
from retrykit._classify import Classification

FAILED = _events.AttemptFailed("op", 1, "OSError", Classification(ErrorCategory.NETWORK_ERROR, "reset"), 0.0)
RULE = _events.RuleFailed("my_rule", "OSError", "KeyError")


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("keys", "kept"), [(["a", "b", "c"], ["b", "c"]), (["a", "b"], ["a", "b"])])
def test_the_limiter_forgets_its_oldest_half_when_full(keys: list[str], kept: list[str]) -> None:
    """Past its size the limiter drops its oldest keys, so it stays bounded whatever fails."""
    limiter = _logging._OncePerInterval(clock=_Clock(), size=2)
    for key in keys:
        assert 0 == limiter.check(key)
    assert kept == list(limiter._last)


def test_an_attempt_failure_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The log sink writes nothing for AttemptFailed: the retry or give-up that follows says it."""
    with caplog.at_level(logging.DEBUG, logger="retrykit"):
        _logging.log_event(FAILED)
    assert [] == caplog.records


def test_a_repeated_rule_failure_says_how_many_were_not_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule failing again after the interval is logged with the count of failures kept quiet since."""
    clock = _Clock()
    monkeypatch.setattr(_logging, "_limiter", _logging._OncePerInterval(clock=clock))
    with caplog.at_level(logging.ERROR, logger="retrykit"):
        for moment in (0.0, 1.0, 2.0, _logging.REPORT_INTERVAL + 1):
            clock.now = moment
            _logging.log_event(RULE)
    said = [record.retrykit.get("not_logged_since") for record in caplog.records]  # type: ignore[attr-defined]
    assert [None, 2] == said


@pytest.mark.parametrize(
    ("providers", "fields"),
    [
        ((), {}),
        ((lambda: {"task_id": "t1"},), {"task_id": "t1"}),
        ((lambda: 1 / 0, lambda: None, lambda: {"tenant": "x"}), {"tenant": "x"}),
    ],
    ids=["none", "one", "a-failing-one-and-an-empty-one"],
)
def test_log_lines_carry_what_the_context_providers_give(
    providers: tuple[Any, ...],
    fields: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each line gets the providers' fields; a provider that raises or gives nothing adds nothing."""
    monkeypatch.setattr(_logging, "_context", ())
    for provider in providers * 2:  # registered twice: kept once
        _logging.register_context(provider)
    assert len(providers) == len(_logging._context)
    with caplog.at_level(logging.INFO, logger="retrykit"):
        _logging.log_event(_events.Succeeded("op", 2, 0.5))
    extra = caplog.records[0].retrykit  # type: ignore[attr-defined]
    own = ("event", "operation", "attempts", "elapsed")
    assert fields == {k: v for k, v in extra.items() if k not in own}
