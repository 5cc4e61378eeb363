"""Policies: presets, per-category counters, deadlines, and behaving as tenacity objects."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import tenacity

import retrykit
from retrykit import (
    ConfigError,
    ErrorCategory,
    Jitter,
    Policy,
    Strategy,
)
from retrykit.events import StopReason
from retrykit.testing import no_wait, record

from .flaky import Flaky

NET = ErrorCategory.NETWORK_ERROR
RATE = ErrorCategory.API_RATE_LIMIT


class RateLimited(Exception):
    """A 429 carrying a Retry-After."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("HTTP 429")
        self.status = 429
        self.retry_after = retry_after


def test_tracking_preset_has_the_seed_numbers() -> None:
    """tracking: network 5s->10s->20s->40s, rate limit 5->10->20 min, data not retried."""
    tracking = retrykit.get_preset("tracking")
    net, rate = tracking.strategy_for(NET), tracking.strategy_for(RATE)
    assert [5, 10, 20, 40] == [net.delay_for(n) for n in range(1, 5)]
    assert 4 == net.max_retries
    assert [300, 600, 1200] == [rate.delay_for(n) for n in range(1, 4)]
    assert 3 == rate.max_retries
    assert not tracking.strategy_for(ErrorCategory.DATA_ERROR).retries
    assert tracking.strategy_for(ErrorCategory.TEMPORARY_ERROR).retries


@pytest.mark.parametrize("name", ["default", "tracking", "screenshot", "document", "http", "database"])
def test_presets_exist(name: str) -> None:
    """Every named preset resolves to a policy that never retries data or permanent errors."""
    policy = retrykit.get_preset(name)
    assert not policy.strategy_for(ErrorCategory.PERMANENT_ERROR).retries
    assert not policy.strategy_for(ErrorCategory.DATA_ERROR).retries


def test_unknown_preset_lists_known_ones() -> None:
    """An unknown preset name is an error listing the known names."""
    with pytest.raises(ConfigError, match="database, default, document, http, screenshot, tracking"):
        retrykit.get_preset("trackng")


def test_register_preset() -> None:
    """Users register their own presets; overwriting needs replace=True."""
    mine = Policy(max_attempts=2)
    retrykit.register_preset("payments", mine)
    assert 2 == retrykit.get_preset("payments").max_attempts
    with pytest.raises(ConfigError, match="replace=True"):
        retrykit.register_preset("payments", mine)
    retrykit.register_preset("payments", Policy(max_attempts=3), replace=True)
    assert 3 == retrykit.get_preset("payments").max_attempts


def test_a_decorated_function_follows_its_preset_to_a_first_try_success_callback() -> None:
    """A first-try success calls the on_success of a preset registered again after the first call."""
    retrykit.register_preset("told-later", Policy(max_attempts=2))
    fetch = retrykit.retry("told-later")(lambda: 1)
    assert 1 == fetch()  # nobody to tell: nothing built
    seen: list[int] = []
    retrykit.register_preset("told-later", Policy(on_success=lambda e: seen.append(e.attempts)), replace=True)
    assert 1 == fetch()
    assert [1] == seen


def test_replace_merges_strategies_and_validates() -> None:
    """replace() changes one category and keeps the rest; unknown options are refused."""
    policy = retrykit.get_preset("http").replace(strategies={"network_error": Strategy.immediately(2)})
    assert 2 == policy.strategy_for(NET).max_retries
    assert policy.strategy_for(RATE) == retrykit.get_preset("http").strategy_for(RATE)
    with pytest.raises(ConfigError, match="did you mean 'max_attempts'"):
        policy.replace(max_atempts=3)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"deadline": -1}, "deadline"),
        ({"deadline": 0}, "deadline"),
        ({"attempt_timeout": float("nan")}, "attempt_timeout"),
        ({"strategies": {"nope": Strategy()}}, "strategies"),
        ({"strategies": {"network_error": 3}}, "strategies['network_error']"),
        ({"strategies": [1]}, "strategies"),
        ({"classifier": "x"}, "classifier"),
        ({"on_retry": 5}, "on_retry"),
    ],
)
def test_bad_policies_fail_at_construction(kwargs: dict[str, Any], argument: str) -> None:
    """Invalid policy options fail when built, naming the argument."""
    with pytest.raises(ConfigError) as info:
        Policy(**kwargs)
    assert argument == info.value.argument


def _run_tenacity(policy: Policy, fn: Any) -> tuple[Any, list[float]]:
    sleeps: list[float] = []
    retrying = tenacity.Retrying(**policy.tenacity_kwargs(sleep=sleeps.append))
    try:
        return retrying(fn), sleeps
    except Exception as exc:
        return exc, sleeps


def _run_decorator(policy: Policy, fn: Any) -> tuple[Any, list[float]]:
    with no_wait(), record() as rec:
        try:
            return retrykit.retry(policy)(fn)(), rec.sleeps
        except Exception as exc:
            return exc, rec.sleeps


SCENARIOS = [
    [ConnectionResetError()] * 2,
    [ConnectionResetError()] * 9,
    [ValueError("bad")],
    [ConnectionResetError(), TimeoutError(), RateLimited(2.0), RateLimited(3.0)],
    [RateLimited(1.0)] * 5,
    [KeyboardInterrupt()],
]


@pytest.mark.parametrize("errors", SCENARIOS, ids=lambda e: "+".join(type(x).__name__ for x in e))
def test_tenacity_retrying_behaves_like_the_decorator(errors: list[BaseException]) -> None:
    """tenacity.Retrying(retry=policy.retry, wait=..., stop=...) makes the same calls and sleeps."""
    policy = Policy(
        strategies={
            NET: Strategy.backoff(1, 8, max_retries=4, jitter="none"),
            RATE: Strategy.delay(10, max_retries=3),
        },
        max_attempts=8,
    )
    via_tenacity = Flaky(*list(errors), result="done")
    via_decorator = Flaky(*list(errors), result="done")
    try:
        t_result, t_sleeps = _run_tenacity(policy, via_tenacity)
    except BaseException as exc:  # KeyboardInterrupt comes straight through
        t_result, t_sleeps = exc, []
    try:
        d_result, d_sleeps = _run_decorator(policy, via_decorator)
    except BaseException as exc:
        d_result, d_sleeps = exc, []
    assert via_tenacity.calls == via_decorator.calls
    assert t_sleeps == d_sleeps
    assert type(t_result) is type(d_result)


def test_policy_objects_compose_with_tenacity_operators() -> None:
    """policy.stop | stop_after_attempt, policy.wait + wait_fixed, policy.retry & ... all work."""
    policy = Policy(strategies={NET: Strategy.backoff(1, 8, max_retries=9, jitter="none")})
    fn = Flaky(*[ConnectionResetError()] * 10, result="done")
    sleeps: list[float] = []
    retrying = tenacity.Retrying(
        retry=policy.retry & tenacity.retry_if_exception_type(ConnectionError),
        wait=policy.wait + tenacity.wait_fixed(0.5),
        stop=policy.stop | tenacity.stop_after_attempt(3),
        sleep=sleeps.append,
        reraise=True,
    )
    with pytest.raises(ConnectionResetError):
        retrying(fn)
    assert 3 == fn.calls
    assert [1.5, 2.5] == sleeps


def test_strategy_takes_tenacity_wait_and_stop() -> None:
    """A strategy built from tenacity objects uses them for delays and limits."""
    strategy = Strategy.custom(
        wait=tenacity.wait_exponential(multiplier=1, max=30) + tenacity.wait_fixed(1),
        stop=tenacity.stop_after_attempt(4) | tenacity.stop_after_delay(600),
    )
    fn = Flaky(*[ConnectionResetError()] * 10, result="done")
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError) as info:
        retrykit.retry(Policy(strategies={NET: strategy}))(fn)()
    assert 4 == fn.calls
    assert [2.0, 3.0, 5.0] == rec.sleeps
    assert StopReason.STRATEGY_STOP == rec.gave_up[0].reason
    assert "strategy_stop" in info.value.__notes__[0]


def test_per_category_counters_are_separate() -> None:
    """Network blips do not use up the rate-limit allowance, and vice versa."""
    policy = Policy(
        strategies={
            NET: Strategy.immediately(max_retries=2),
            RATE: Strategy.delay(1, max_retries=2),
        },
        max_attempts=10,
    )
    errors = [ConnectionResetError(), RateLimited(), ConnectionResetError(), RateLimited()]
    fn = Flaky(*errors, result="done")
    with no_wait():
        assert "done" == retrykit.retry(policy)(fn)()
    assert 5 == fn.calls
    fn = Flaky(*[ConnectionResetError()] * 3, result="done")
    with no_wait(), pytest.raises(ConnectionResetError):
        retrykit.retry(policy)(fn)()
    assert 3 == fn.calls


def test_classification_is_computed_once_per_attempt() -> None:
    """retry, wait and stop share one classification per failed attempt."""
    seen: list[BaseException] = []

    def counting(exc: BaseException) -> None:
        seen.append(exc)

    policy = Policy(classifier=retrykit.Classifier([counting]), strategies={NET: Strategy.immediately(5)})
    fn = Flaky(*[ConnectionResetError()] * 3, result="done")
    with no_wait():
        retrykit.retry(policy)(fn)()
    assert 3 == len(seen)


def test_max_attempts_caps_the_whole_call() -> None:
    """max_attempts counts every execution, whatever the categories allow."""
    policy = Policy(strategies={NET: Strategy.immediately(10)}, max_attempts=3)
    fn = Flaky(*[ConnectionResetError()] * 10, result="done")
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError):
        retrykit.retry(policy)(fn)()
    assert 3 == fn.calls
    assert StopReason.MAX_ATTEMPTS == rec.gave_up[0].reason


def test_deadline_stops_before_a_sleep_would_pass_it() -> None:
    """With a 10 s deadline and waits 4, 8, ... the second wait is never started."""
    policy = Policy(strategies={NET: Strategy.backoff(4, 64, max_retries=10, jitter="none")}, deadline=10)
    fn = Flaky(*[ConnectionResetError()] * 10, result="done")
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError):
        retrykit.retry(policy)(fn)()
    assert [4.0] == rec.sleeps
    assert 2 == fn.calls
    assert StopReason.DEADLINE == rec.gave_up[0].reason
    assert rec.gave_up[0].elapsed <= 10


def test_retry_after_beyond_the_deadline_gives_up_at_once() -> None:
    """A Retry-After longer than the time left gives up now, saying why."""
    policy = Policy(deadline=30)
    fn = Flaky(*[RateLimited(retry_after=3600)], result="done")
    with no_wait(), record() as rec, pytest.raises(RateLimited) as info:
        retrykit.retry(policy)(fn)()
    assert 1 == fn.calls
    assert StopReason.RETRY_AFTER_EXCEEDS_DEADLINE == rec.gave_up[0].reason
    assert "Retry-After" in info.value.__notes__[0]


def test_retry_after_is_honoured() -> None:
    """The server's Retry-After is the wait, not the strategy's base delay."""
    policy = Policy(strategies={RATE: Strategy.delay(300, jitter=Jitter.NONE)})
    fn = Flaky(*[RateLimited(retry_after=2)], result="done")
    with no_wait(), record() as rec:
        retrykit.retry(policy)(fn)()
    assert [2.0] == rec.sleeps


# --------------------------------------------------------------------------- names and async callbacks


def test_policy_parts_name_their_policy() -> None:
    """policy.retry, .wait and .stop show which policy they belong to."""
    named, unnamed = retrykit.get_preset("http"), Policy()
    assert ["<PolicyRetry of http>", "<PolicyWait of http>", "<PolicyStop of http>"] == [
        repr(named.retry),
        repr(named.wait),
        repr(named.stop),
    ]
    assert "<PolicyRetry of policy>" == repr(unnamed.retry)


async def _async_callback(event: Any, extra: int) -> None:
    pass


class _AsyncCallable:
    """A callable object whose __call__ is a coroutine function."""

    async def __call__(self, event: Any, extra: int) -> None:
        pass


@pytest.mark.parametrize("target", [_async_callback, _AsyncCallable()], ids=["function", "callable-object"])
def test_an_async_callback_behind_a_partial_is_seen_as_async(target: Any) -> None:
    """A functools.partial of a coroutine function or of an object with an async __call__ is async."""
    policy = Policy(on_retry=functools.partial(target, extra=1))
    assert ("on_retry",) == policy.async_callbacks
