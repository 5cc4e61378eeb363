"""retrykit.queues: a call whose attempts are separate deliveries, resumed from its message's state."""

from __future__ import annotations

import pytest

import retrykit
from retrykit import CircuitBreaker, CircuitOpen, Classification, ErrorCategory, Policy, Strategy
from retrykit.driver import Action
from retrykit.queues import RunState, admit, owned, resume
from retrykit.testing import no_wait, record

NETWORK = Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(2.0, max_retries=3)}, max_attempts=4)


def _deliver(attempts: int) -> list[Action]:
    """Run *attempts* deliveries that fail, each resumed from the state the previous one handed on."""
    state, actions = RunState(), []
    for _ in range(attempts):
        delivery = resume(NETWORK, operation="job", state=state)
        step = delivery.failed(ConnectionResetError("reset"))
        actions.append(step.action)
        if step.action is not Action.RETRY:
            break
        state = delivery.state()
    return actions


def test_the_state_carries_the_count_across_deliveries() -> None:
    """Each delivery counts on from the last one: 4 attempts, then the call gives up."""
    assert _deliver(10) == [Action.RETRY, Action.RETRY, Action.RETRY, Action.GIVE_UP]


@pytest.mark.parametrize(("attempt", "action"), [(1, Action.RETRY), (4, Action.GIVE_UP)])
def test_a_resumed_attempt_number_bounds_the_call(attempt: int, action: Action) -> None:
    """The attempt number in the state is the policy's count: attempt 4 of 4 is the last."""
    counts = {ErrorCategory.NETWORK_ERROR: attempt - 1}
    state = RunState(
        attempt=attempt, counts=counts, last=ErrorCategory.NETWORK_ERROR if attempt > 1 else None
    )
    step = resume(NETWORK, operation="job", state=state).failed(ConnectionResetError("reset"))
    assert step.action is action


@pytest.mark.parametrize(("delay", "expected"), [(None, 2.0), (7.5, 7.5)])
def test_a_forced_retry_of_what_the_policy_does_not_retry(delay: float | None, expected: float) -> None:
    """A forced retry retries a data error, after the delay asked for, else the temporary strategy's."""
    policy = NETWORK.replace(strategies={ErrorCategory.TEMPORARY_ERROR: Strategy.delay(2.0, max_retries=3)})
    delivery = resume(policy, operation="job")
    assert delivery.failed(ValueError("bad row")).action is Action.GIVE_UP
    step = resume(policy, operation="job").failed(ValueError("bad row"), forced=True, delay=delay)
    assert (step.action, step.delay) == (Action.RETRY, expected)


def test_the_adapter_classifies_what_it_knows_better() -> None:
    """A classification the adapter gives (a lost worker) is the one the decision uses."""
    lost = Classification(ErrorCategory.NETWORK_ERROR, "the worker died", rule="lost")
    with record() as rec:
        step = resume(NETWORK, operation="job").failed(RuntimeError("lost"), classification=lost)
    assert step.action is Action.RETRY
    assert rec.classifications == [lost]


def test_the_next_state_names_the_last_category_and_the_strategy() -> None:
    """After a retry, the state for the next message carries the counts and the category."""
    delivery = resume(NETWORK, operation="job")
    delivery.failed(ConnectionResetError("reset"))
    state = delivery.state()
    assert (state.attempt, dict(state.counts), state.last) == (
        2,
        {ErrorCategory.NETWORK_ERROR: 1},
        ErrorCategory.NETWORK_ERROR,
    )
    assert delivery.strategy == NETWORK.strategies[ErrorCategory.NETWORK_ERROR]


@pytest.mark.parametrize("hold", [True, False])
def test_an_open_breaker_holds_or_refuses(hold: bool) -> None:
    """admit() says how long an open breaker stays open with hold=True, else raises CircuitOpen."""
    breaker = CircuitBreaker("queues-test", failure_ratio=0.5, min_throughput=1, open_for=30.0)
    policy = NETWORK.replace(breaker=breaker)
    assert admit(policy, operation="job", first=True, hold=hold) == 0.0
    resume(policy, operation="job").failed(ConnectionResetError("reset"))
    if hold:
        assert admit(policy, operation="job", first=False, hold=True) > 0
    else:
        with pytest.raises(CircuitOpen):
            admit(policy, operation="job", first=False, hold=False)


def test_a_layer_inside_the_owned_scope_makes_one_attempt() -> None:
    """Inside owned(), a retrykit layer makes one attempt and lets the failure through."""
    calls = []

    @retrykit.retry(NETWORK)
    def helper() -> None:
        calls.append(1)
        raise ConnectionResetError("reset")

    with no_wait(), owned("my-queue"), pytest.raises(ConnectionResetError):
        helper()
    assert calls == [1]
