"""The public driver: one retrying call run by an adapter, step by step, sync and async."""

from __future__ import annotations

from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory
from retrykit.driver import Action, Run, Step, start
from retrykit.events import GaveUp, StopReason
from retrykit.testing import no_wait, record


def failing(times: int, error: type[Exception] = ConnectionResetError) -> Any:
    """A function that raises *error* *times* times, then returns ``"ok"``; ``.calls`` counts."""

    def fn() -> str:
        fn.calls += 1  # type: ignore[attr-defined]
        if fn.calls <= times:  # type: ignore[attr-defined]
            raise error("flaky")
        return "ok"

    fn.calls = 0  # type: ignore[attr-defined]
    return fn


def test_an_adapter_loop_retries_then_passes() -> None:
    """A hand-written loop over failed/returned/next retries a failure, then passes the success."""
    fn = failing(2)
    run = start(retrykit.Policy(max_attempts=5), operation="loop")
    steps: list[Step] = []
    with no_wait(), record() as events, run:
        while True:
            try:
                step = run.returned(fn())
            except Exception as exc:
                step = run.failed(exc)
            steps.append(step)
            if step.action is not Action.RETRY:
                break
            assert run.next()
    assert [Action.RETRY, Action.RETRY, Action.PASS] == [s.action for s in steps]
    assert 3 == run.attempt
    assert 2 == len(events.failures)
    assert 3 == events.successes[0].attempts


def test_a_give_up_says_why_and_notes_the_exception() -> None:
    """A failure retrykit gives up on is a GIVE_UP step with its reason, and the note is on it."""
    run = start(retrykit.Policy(max_attempts=2), operation="gives-up")
    error = ValueError("bad input")
    with run:
        step = run.failed(error)
    assert Step(Action.GIVE_UP, 0.0, StopReason.NON_RETRYABLE) == step
    assert "[non_retryable]" in error.__notes__[0]


def test_a_first_success_builds_nothing() -> None:
    """A first-try success passes at once, with no events."""
    with record() as events, start(operation="fast") as run:
        assert Action.PASS == run.returned(42).action
    assert [] == events.events


@pytest.mark.parametrize(
    ("times", "expected", "calls"),
    [(0, "ok", 1), (2, "ok", 3)],
)
def test_call_runs_a_function_to_the_end(times: int, expected: str, calls: int) -> None:
    """Run.call attempts, sleeps (not really, under no_wait) and returns the result."""
    fn = failing(times)
    with no_wait():
        assert expected == start("default", operation="call").call(fn)
    assert calls == fn.calls


def test_call_raises_the_callers_own_exception() -> None:
    """When retrykit gives up, the caller gets the original exception with the note."""
    fn = failing(10)
    with no_wait(), record() as events, pytest.raises(ConnectionResetError) as caught:
        start(retrykit.Policy(max_attempts=3), operation="raises").call(fn)
    assert 3 == fn.calls
    assert StopReason.MAX_ATTEMPTS == events.gave_up[-1].reason
    assert "max_attempts=3" in caught.value.__notes__[0]


def test_the_run_is_one_layer_for_calls_inside_it() -> None:
    """A decorated function called inside a run makes one attempt per attempt of the run (3, not 9)."""
    inner_fn = failing(10)
    inner = retrykit.retry(retrykit.Policy(max_attempts=3))(inner_fn)
    with no_wait(), pytest.raises(ConnectionResetError):
        start(retrykit.Policy(max_attempts=3), operation="outer").call(inner)
    assert 3 == inner_fn.calls


def test_a_deadline_ends_the_run_while_it_sleeps() -> None:
    """next() is False once the deadline passed while the adapter waited, and last() raises."""
    run = start(retrykit.Policy(deadline=10), operation="deadline")
    with no_wait(), run:
        step = run.failed(ConnectionResetError("x"))
        assert Action.RETRY == step.action
        run.sleep(11)  # the adapter waited longer than asked (on retrykit's clock: no real sleep)
        assert not run.next()
        with pytest.raises(ConnectionResetError):
            run.last()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"operation": ""}, "operation"),
        ({"operation": 3}, "operation"),
        ({"operation": "x", "policy": 3}, "policy"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict[str, Any], argument: str) -> None:
    """A bad operation or policy is a ConfigError naming the argument."""
    with pytest.raises(retrykit.ConfigError) as caught:
        start(**kwargs)
    assert argument == caught.value.argument


def test_an_open_breaker_refuses_the_run() -> None:
    """start() raises CircuitOpen when the policy's breaker is open: no attempt starts."""
    breaker = retrykit.CircuitBreaker("driver-breaker", min_throughput=1, failure_ratio=0.5, open_for=60)
    policy = retrykit.Policy(max_attempts=1, breaker=breaker)
    with pytest.raises(ConnectionResetError):
        start(policy, operation="opens").call(failing(5))
    with pytest.raises(retrykit.CircuitOpen):
        start(policy, operation="refused")


def test_next_before_a_step_is_a_clear_error() -> None:
    """next() or last() before any outcome is a RuntimeError saying what to call first."""
    run: Run = start(operation="early")
    with pytest.raises(RuntimeError, match="failed"):
        run.next()


@pytest.mark.anyio
async def test_acall_retries_a_coroutine_on_every_backend(anyio_backend: str) -> None:
    """Run.acall retries a coroutine function on asyncio and trio, and gives up with the note."""
    calls = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("flaky")
        return anyio_backend

    with no_wait():
        assert anyio_backend == await start(operation="acall").acall(fn)
    assert 3 == len(calls)


@pytest.mark.anyio
async def test_acall_bounds_each_attempt_by_attempt_timeout(anyio_backend: str) -> None:
    """An attempt longer than attempt_timeout is cut and counted as a failure."""
    import anyio

    async def slow() -> None:
        await anyio.sleep(10)

    with no_wait(), record() as events, pytest.raises(TimeoutError):
        await start(retrykit.Policy(max_attempts=2, attempt_timeout=0.01), operation="slow").acall(slow)
    assert 2 == len(events.failures)
    assert isinstance(events.gave_up[-1], GaveUp)
    assert ErrorCategory.NETWORK_ERROR == events.gave_up[-1].classification.category


@pytest.mark.parametrize(
    ("idempotent", "action", "reason"),
    [
        pytest.param(False, Action.GIVE_UP, StopReason.NOT_IDEMPOTENT, id="unsafe-gives-up"),
        pytest.param(True, Action.RETRY, None, id="idempotent-policy-retries"),
    ],
)
def test_a_failure_the_adapter_says_is_unsafe_to_replay_is_not_retried(
    idempotent: bool, action: Action, reason: StopReason | None
) -> None:
    """``failed(exc, replay_unsafe=True)`` gives up as not idempotent, unless the policy is idempotent."""
    run = start(retrykit.Policy(max_attempts=3, idempotent=idempotent), operation="POST x")
    with no_wait(), run:
        step = run.failed(ConnectionResetError("reset after the request was sent"), replay_unsafe=True)
    assert action is step.action
    assert reason == step.reason


def test_replay_unsafe_leaves_pass_throughs_alone() -> None:
    """A failure an inner layer gave up on passes, whatever the adapter says about replaying it."""
    inner_error = ConnectionResetError("inner")
    outer = start(retrykit.Policy(max_attempts=3), operation="outer")
    with outer:
        inner = start(retrykit.Policy(max_attempts=1), operation="inner")
        with inner:
            assert Action.GIVE_UP is inner.failed(inner_error).action
        assert Action.PASS is outer.failed(inner_error, replay_unsafe=True).action
