"""Overload protection in tenacity's own loop (``Retrying(**policy.tenacity_kwargs())``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tenacity

import retrykit
import retrykit.events
from retrykit import CircuitBreaker, CircuitOpen, Policy, RetryBudget, Strategy, _budget
from retrykit.events import StopReason
from retrykit.testing import no_wait, record

FAST = {c: Strategy.backoff(0.01, 0.1, max_retries=3) for c in ("network_error", "temporary_error")}


@pytest.fixture(autouse=True)
def _fresh_store() -> Iterator[None]:
    _budget.reset_default_store()
    yield
    _budget.reset_default_store()


def test_tenacity_loop_counts_calls_and_refunds_first_try_successes() -> None:
    """Each call is deposited in a ratio budget; a first-try success refunds a quota token."""
    ratio = RetryBudget("dep", ratio=0.5, min_per_second=0)
    for _ in range(4):
        tenacity.Retrying(**Policy(strategies=FAST, budget=ratio).tenacity_kwargs())(lambda: "ok")
    assert 4 == ratio.state()["calls"]
    quota = RetryBudget.quota("dep", capacity=100)
    quota._store().budget(quota).tokens = 50.0
    tenacity.Retrying(**Policy(strategies=FAST, budget=quota).tenacity_kwargs())(lambda: "ok")
    assert 51.0 == quota.state()["balance"]


def test_tenacity_loop_refuses_a_call_while_the_breaker_is_open() -> None:
    """An open breaker refuses the first attempt with CircuitOpen."""
    breaker = CircuitBreaker("dep", min_throughput=4)
    breaker.record(0, 4)
    calls = []
    with pytest.raises(CircuitOpen):
        tenacity.Retrying(**Policy(strategies=FAST, breaker=breaker).tenacity_kwargs())(
            lambda: calls.append(1)
        )
    assert [] == calls


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_tenacity_loop_asks_the_breaker_before_a_retry(asynchronous: bool) -> None:
    """The breaker opened while the retry waited: attempt 2 never starts; circuit_open, last error."""
    breaker = CircuitBreaker("dep", min_throughput=4, open_for=60)
    policy = Policy(strategies=FAST, breaker=breaker, on_retry=lambda e: breaker.record(0, 4))
    calls = [0]

    def fn() -> None:
        calls[0] += 1
        raise ConnectionResetError()

    async def afn() -> None:
        fn()

    with record() as rec, no_wait(), pytest.raises(ConnectionResetError) as caught:
        if asynchronous:
            import anyio

            async def main() -> None:
                await tenacity.AsyncRetrying(**policy.tenacity_kwargs(asynchronous=True))(afn)

            anyio.run(main)
        else:
            tenacity.Retrying(**policy.tenacity_kwargs())(fn)
    assert 1 == calls[0]
    assert [StopReason.CIRCUIT_OPEN] == [
        e.reason for e in rec.events if isinstance(e, retrykit.events.GaveUp)
    ]
    note = caught.value.__notes__[-1]
    assert "after 1 attempt" in note
    assert note.endswith("[circuit_open]")
