"""Retry budgets at their edges: bad settings refused by name, the adaptive shape, the explain line."""

from __future__ import annotations

from typing import Any

import pytest

from retrykit import ConfigError, ErrorCategory, RetryBudget
from retrykit._budget import BudgetState, MemoryOverloadStore


class Clock:
    """A clock that stands still."""

    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("settings", "argument"),
    [
        ({"key": ""}, "key"),
        ({"shape": "leaky"}, "shape"),
        ({"ratio": "10%"}, "ratio"),
        ({"ratio": float("nan")}, "ratio"),
        ({"ratio": float("inf")}, "ratio"),
        ({"k": 0.5}, "k"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": True}, "capacity"),
        ({"costs": {"network_error": -1}}, "costs['network_error']"),
        ({"costs": {"network_error": 1.5}}, "costs['network_error']"),
        ({"costs": {"no_such_category": 1}}, "costs"),
    ],
)
def test_bad_settings_are_refused_naming_the_argument(settings: dict[str, Any], argument: str) -> None:
    """Each bad setting fails at construction with a ConfigError that names it."""
    kwargs = {"key": "svc", **settings}
    with pytest.raises(ConfigError) as raised:
        RetryBudget(**kwargs)
    assert argument in str(raised.value)


def test_costs_accept_category_names() -> None:
    """A quota's costs may name categories by their value; the others keep their defaults."""
    budget = RetryBudget.quota("svc", 10, costs={"network_error": 3})
    assert 3 == budget.cost(ErrorCategory.NETWORK_ERROR)
    assert RetryBudget.quota("svc", 10).cost(ErrorCategory.API_RATE_LIMIT) == budget.cost(
        ErrorCategory.API_RATE_LIMIT
    )


@pytest.mark.parametrize(
    ("budget", "line"),
    [
        (
            RetryBudget("svc", ratio=0.2, window=10),
            "retries <= 20% of calls per 10s + 10/s",
        ),
        (RetryBudget.quota("svc", 7, costs={"network_error": 2}), "quota budget 'svc': 7 tokens;"),
        (RetryBudget.adaptive("svc", k=1.5, window=60), "(requests - 1.5*accepts)/(requests+1)) over 60s"),
    ],
    ids=["ratio", "quota", "adaptive"],
)
def test_describe_says_each_shape(budget: RetryBudget, line: str) -> None:
    """explain's line names the shape, the key and the shape's own figures; repr names shape and key."""
    assert line in budget.describe()
    assert f"<RetryBudget {budget.shape} 'svc'>" == repr(budget)


def test_adaptive_refuses_with_the_sre_probability() -> None:
    """Adaptive: 3 requests and 1 accept at k=2 give p = 1/4; a roll below it is refused, above allowed."""
    store = MemoryOverloadStore()
    budget = RetryBudget.adaptive("svc", k=2, store=store, clock=Clock(), rng=lambda: 0.2)
    for _ in range(3):
        budget.admitted()
    budget.succeeded(None)
    assert 0.25 == budget.state()["reject_probability"]
    assert budget.withdraw(ErrorCategory.NETWORK_ERROR) is None  # 0.2 < 0.25: refused
    budget.rng = lambda: 0.3
    assert 1 == budget.withdraw(ErrorCategory.NETWORK_ERROR)
    assert {"requests": 4, "accepts": 1, "spent": 1, "refused": 1} == {
        k: budget.state()[k] for k in ("requests", "accepts", "spent", "refused")
    }


@pytest.mark.parametrize(
    ("budget", "field", "after"),
    [
        (RetryBudget("svc", min_per_second=0, ratio=0.5, window=10), "retries", 1),
        (RetryBudget.quota("svc", 10), "balance", 5),
        (RetryBudget.adaptive("svc", window=10), "requests", 1),
    ],
    ids=["ratio", "quota", "adaptive"],
)
def test_a_charge_from_another_store_counts_here(budget: RetryBudget, field: str, after: float) -> None:
    """A retry another store allowed is recorded locally, in each shape's own measure."""
    state = BudgetState(budget)
    state.charge(Clock.now, 5)
    assert after == state.snapshot(Clock.now)[field]
