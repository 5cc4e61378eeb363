"""The retry loop at its edges: failing async callbacks and conditions, first-try successes."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import tenacity

import retrykit
from retrykit import ErrorCategory, Policy, RetryBudget, Strategy
from retrykit._budget import MemoryOverloadStore
from retrykit.testing import no_wait

NETWORK_TWICE = {ErrorCategory.NETWORK_ERROR: Strategy.immediately(max_retries=2)}


def _fails(times: int) -> Any:
    calls = [0]

    def fn() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise ConnectionResetError("reset")
        return "ok"

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def test_a_first_try_success_judged_by_a_retry_condition_counts_for_an_adaptive_budget() -> None:
    """A first-try success judged by a retry condition (no fast path) is an accept for an adaptive budget."""
    budget = RetryBudget.adaptive("edges", store=MemoryOverloadStore())
    condition = tenacity.retry_if_exception_type(ConnectionResetError)
    ok = retrykit.retry(Policy(strategies=NETWORK_TWICE, budget=budget), retry=condition)(_fails(0))
    assert "ok" == ok()
    assert (1, 1) == (budget.state()["requests"], budget.state()["accepts"])


def test_a_retry_condition_that_raises_means_no_retry() -> None:
    """A user's retry condition that raises is taken as 'do not retry': one attempt, the caller's error."""

    def broken(state: Any) -> bool:
        raise ZeroDivisionError

    fn = _fails(5)
    with pytest.raises(ConnectionResetError), no_wait():
        retrykit.retry(Policy(strategies=NETWORK_TWICE), retry=broken)(fn)()
    assert 1 == fn.calls[0]


@pytest.mark.anyio
async def test_a_failing_async_callback_is_logged_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An async on_retry that raises is logged by error type; the retried coroutine still succeeds."""
    calls = [0]

    async def on_retry(event: Any) -> None:
        raise LookupError("callback bug")

    async def fn() -> str:
        calls[0] += 1
        if calls[0] == 1:
            raise ConnectionResetError
        return "ok"

    with caplog.at_level(logging.ERROR, logger="retrykit"), no_wait():
        assert "ok" == await retrykit.retry(Policy(strategies=NETWORK_TWICE, on_retry=on_retry))(fn)()
    assert "an async callback failed: LookupError" in caplog.text
