"""Overload protection at its edges: no pushback without gRPC, breaker settings, texts, odd reports."""

from __future__ import annotations

from typing import Any

import pytest

from retrykit import CircuitBreaker, ConfigError, Policy, RetryBudget
from retrykit._breaker import HALF_OPEN, OPEN
from retrykit._budget import MemoryOverloadStore
from retrykit._overload import overload_states, pushback_of


def test_an_error_without_trailing_metadata_has_no_pushback() -> None:
    """An error of no gRPC library carries no pushback (the real ones: tests/real_errors/test_grpc.py)."""
    assert pushback_of(ValueError("plain")) is None


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"key": ""}, "key"),
        ({"key": 3}, "key"),
        ({"failure_ratio": 0}, "failure_ratio"),
        ({"failure_ratio": True}, "failure_ratio"),
        ({"failure_ratio": 1.5}, "failure_ratio"),
        ({"min_throughput": 0}, "min_throughput"),
        ({"probes": True}, "probes"),
        ({"probes": 1.0}, "probes"),
    ],
)
def test_bad_breaker_settings_are_refused_by_name(settings: dict[str, Any], named: str) -> None:
    """A breaker's key, failure_ratio, min_throughput and probes are checked, naming the one at fault."""
    given = {"key": "svc", **settings}
    with pytest.raises(ConfigError, match=named):
        CircuitBreaker(given.pop("key"), **given)


@pytest.mark.parametrize(("probes", "plural"), [(1, "1 probe"), (3, "3 probes")])
def test_a_breaker_describes_itself_in_one_line(probes: int, plural: str) -> None:
    """describe() gives the thresholds, the counted categories and the probes; repr names the key."""
    breaker = CircuitBreaker("svc", failure_ratio=0.25, min_throughput=8, probes=probes)
    text = breaker.describe()
    assert text.startswith("circuit breaker 'svc': opens at 25% failures of >= 8 calls")
    assert text.endswith(plural)
    assert "<CircuitBreaker 'svc'>" == repr(breaker)


def test_a_guard_describes_its_budget_and_breaker() -> None:
    """A policy's guard gives one line for its budget and one for its breaker."""
    policy = Policy(budget=RetryBudget("svc"), breaker=CircuitBreaker("svc"))
    assert policy.guard is not None
    lines = policy.guard.describe()
    assert 2 == len(lines)
    assert lines[1].startswith("circuit breaker 'svc'")


@pytest.mark.parametrize(
    ("state", "outcome", "after"),
    [(OPEN, (5, 0), OPEN), (HALF_OPEN, (0, 0), HALF_OPEN), (HALF_OPEN, (1, 0), 0), (HALF_OPEN, (0, 1), OPEN)],
    ids=["open-ignores-late", "half-open-nothing", "half-open-success", "half-open-failure"],
)
def test_outcomes_move_an_open_or_half_open_breaker_only_as_they_should(
    state: int, outcome: tuple[int, int], after: int
) -> None:
    """Open ignores late outcomes; half-open closes on a success, opens on a failure, waits on neither."""
    store = MemoryOverloadStore()
    breaker = CircuitBreaker("svc", store=store)
    held = store.breaker(breaker)
    held.state = state
    breaker.record(*outcome)
    assert after == held.state
    assert (0, 0) == held.slots.sums(breaker.clock())  # nothing counted in the window


class _Unreadable(RetryBudget):
    def state(self) -> dict[str, Any]:
        raise ConnectionError("store down")


def test_the_report_survives_an_unreadable_part_and_keeps_twins_apart() -> None:
    """An unreadable budget is reported with its error; one key with two shapes shows twice, by shape."""
    store = MemoryOverloadStore()
    budgets, _ = overload_states(
        [_Unreadable("down", store=store), RetryBudget("svc"), RetryBudget.quota("svc", 5)]
    )
    assert {"error": "ConnectionError"} == budgets["down"]
    assert ["down", "svc", "svc [quota]"] == sorted(budgets)


def test_a_budget_with_a_share_of_the_fleet_reports_it() -> None:
    """A local budget that is one process's share of a fleet's says which share in its state."""
    store = MemoryOverloadStore()
    budget = RetryBudget("svc", store=store)
    store.budget(budget).set_share(0.25)
    assert 0.25 == budget.state()["share"]
