"""The engine: one decision, side-effect-free tenacity views, composition, results, no leaks."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import tenacity

import retrykit
import retrykit.events
from retrykit import (
    CircuitBreaker,
    CircuitOpen,
    Classification,
    Classifier,
    ErrorCategory,
    Policy,
    RetryBudget,
    Strategy,
    _scope,
)
from retrykit._decision import MARK, PASS, RETRY, Verdict, gave_up_inside
from retrykit._loop import annotate
from retrykit._overload_memory import MemoryOverloadStore
from retrykit.events import StopReason
from retrykit.testing import no_wait, record

from .flaky import Flaky

NET = ErrorCategory.NETWORK_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
RATE = ErrorCategory.API_RATE_LIMIT
FIXED = Policy(strategies={NET: Strategy.backoff(1, 8, max_retries=9, jitter="none")}, max_attempts=20)


def _kinds(rec: Any) -> list[str]:
    return [type(e).__name__ for e in rec.events]


# --------------------------------------------------------------------------- views


def test_views_are_side_effect_free() -> None:
    """Calling a policy's retry, wait and stop many times emits nothing and counts nothing."""
    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.set_exception((ConnectionResetError, ConnectionResetError(), None))
    with record() as rec:
        answers = {(FIXED.retry(state), FIXED.wait(state), FIXED.stop(state)) for _ in range(5)}
    assert {(True, 1.0, False)} == answers
    assert [] == rec.events
    assert {} == state.retrykit.counts  # type: ignore[attr-defined]


def test_views_compose_in_a_bare_tenacity_loop() -> None:
    """retry & type, wait + fixed, stop | after_attempt do what tenacity users expect."""
    flaky = Flaky(*[ConnectionResetError()] * 10)
    sleeps: list[float] = []
    retrying = tenacity.Retrying(
        retry=FIXED.retry & tenacity.retry_if_exception_type(ConnectionError),
        wait=FIXED.wait + tenacity.wait_fixed(0.5),
        stop=FIXED.stop | tenacity.stop_after_attempt(3),
        sleep=sleeps.append,
        reraise=True,
    )
    with pytest.raises(ConnectionResetError):
        retrying(flaky)
    assert 3 == flaky.calls
    assert [1.5, 2.5] == sleeps


def test_narrowing_retry_refuses_what_it_excludes() -> None:
    """policy.retry & retry_if_exception_type(ValueError) stops at a network error at once."""
    flaky = Flaky(ConnectionResetError())
    kwargs = FIXED.tenacity_kwargs(retry=FIXED.retry & tenacity.retry_if_exception_type(ValueError))
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError) as info:
        tenacity.Retrying(**kwargs)(flaky)
    assert 1 == flaky.calls
    assert ["AttemptFailed", "GaveUp"] == _kinds(rec)
    assert StopReason.RETRY_CONDITION == rec.gave_up[0].reason
    assert "[retry_condition]" in info.value.__notes__[0]


def test_composed_stop_gives_one_giveup_and_a_note() -> None:
    """stop=policy.stop | stop_after_attempt(2): two calls, one GaveUp, one note."""
    flaky = Flaky(*[ConnectionResetError()] * 5)
    kwargs = FIXED.tenacity_kwargs(stop=FIXED.stop | tenacity.stop_after_attempt(2))
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError) as info:
        tenacity.Retrying(**kwargs)(flaky)
    assert 2 == flaky.calls
    assert ["AttemptFailed", "RetryScheduled", "AttemptFailed", "GaveUp"] == _kinds(rec)
    assert 1 == len(info.value.__notes__)
    assert "[stop_condition]" in info.value.__notes__[0]


def test_composed_retry_if_result_retries_results_in_tenacity() -> None:
    """policy.retry | retry_if_result(pred) retries the results pred flags, then returns."""
    flaky = Flaky(None, None, result="ok")
    kwargs = FIXED.tenacity_kwargs(retry=FIXED.retry | tenacity.retry_if_result(lambda r: r is None))
    with no_wait(), record() as rec:
        assert "ok" == tenacity.Retrying(**kwargs)(flaky)
    assert 3 == flaky.calls
    assert 2 == len(rec.sleeps)
    assert [TEMP, TEMP] == [c.category for c in rec.classifications]


def test_tenacity_kwargs_honour_no_wait_deadline_and_remaining() -> None:
    """Retrying(**policy.tenacity_kwargs()) skips sleeps under no_wait and exposes remaining()."""
    seen: list[float | None] = []

    def fn() -> None:
        seen.append(retrykit.remaining())
        raise ConnectionResetError

    policy = FIXED.replace(deadline=30)
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError) as info:
        tenacity.Retrying(**policy.tenacity_kwargs())(fn)
    assert [1.0, 2.0, 4.0, 8.0, 8.0] == rec.sleeps  # a 6th wait (8 s) would pass the 30 s deadline
    assert StopReason.DEADLINE == rec.gave_up[0].reason
    assert seen[0] is not None
    assert 29 < seen[0] <= 30
    assert "[deadline]" in info.value.__notes__[0]


@pytest.mark.anyio
async def test_async_tenacity_kwargs_behave_like_the_decorator() -> None:
    """AsyncRetrying(**policy.tenacity_kwargs(asynchronous=True)): same sleeps, events, note."""
    calls = 0
    awaited: list[str] = []

    async def on_retry(event: Any) -> None:
        awaited.append(type(event).__name__)

    async def fn() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError

    policy = FIXED.replace(max_attempts=3, on_retry=on_retry)
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError) as info:
        await tenacity.AsyncRetrying(**policy.tenacity_kwargs(asynchronous=True))(fn)
    assert 3 == calls
    assert [1.0, 2.0] == rec.sleeps
    assert ["RetryScheduled", "RetryScheduled"] == awaited
    assert "[max_attempts]" in info.value.__notes__[0]


@pytest.mark.anyio
async def test_one_tenacity_kwargs_call_serves_retrying_and_async_retrying() -> None:
    """The same policy.tenacity_kwargs() dict runs Retrying and AsyncRetrying (asyncio and trio) alike."""
    awaited: list[str] = []

    async def on_retry(event: Any) -> None:
        awaited.append(type(event).__name__)

    kwargs = FIXED.replace(max_attempts=3, on_retry=on_retry).tenacity_kwargs()
    sync_fn = Flaky(ConnectionResetError(), ConnectionResetError(), result="sync")
    async_fn = Flaky(ConnectionResetError(), ConnectionResetError(), result="async")

    async def afn() -> Any:
        await anyio.lowlevel.checkpoint()  # a real coroutine on the running loop
        return async_fn()

    with no_wait(), record() as rec:
        assert "async" == await tenacity.AsyncRetrying(**kwargs)(afn)
        assert "sync" == tenacity.Retrying(**kwargs)(sync_fn)  # the same dict, after the async loop
        assert "async" == await tenacity.AsyncRetrying(**kwargs)(afn)  # and again
    assert (4, 3) == (async_fn.calls, sync_fn.calls)  # 3, then 1 (its failures were used up)
    assert [1.0, 2.0, 1.0, 2.0] == rec.sleeps
    assert ["RetryScheduled", "RetryScheduled"] == awaited  # awaited in AsyncRetrying; closed in Retrying
    async_fn = Flaky(*[ConnectionResetError()] * 5)
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError) as info:
        await tenacity.AsyncRetrying(**kwargs)(afn)
    assert "[max_attempts]" in info.value.__notes__[0]
    assert [1.0, 2.0] == rec.sleeps


@pytest.mark.anyio
async def test_tenacity_async_retry_decorator_takes_the_plain_kwargs() -> None:
    """@tenacity.retry(**policy.tenacity_kwargs()) on an async def: AsyncRetrying, sleeping on the loop."""
    calls = 0

    @tenacity.retry(**FIXED.replace(max_attempts=3).tenacity_kwargs())
    async def fn() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionResetError
        return "ok"

    with no_wait(), record() as rec:
        assert "ok" == await fn()
        assert "ok" == await fn()  # each call copies the AsyncRetrying: its hooks are swapped again
    assert [1.0, 2.0] == rec.sleeps


@pytest.mark.anyio
async def test_async_retrying_sleeps_on_the_running_loop() -> None:
    """AsyncRetrying(**policy.tenacity_kwargs()) waits without blocking: another task runs meanwhile."""
    policy = Policy(strategies={NET: Strategy.delay(0.05, max_retries=1, jitter="none")})
    flaky = Flaky(ConnectionResetError(), result="ok")
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(3):
            ticks.append(anyio.current_time())
            await anyio.sleep(0.005)

    async def afn() -> Any:
        return flaky()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        assert "ok" == await tenacity.AsyncRetrying(**policy.tenacity_kwargs())(afn)
    assert 2 == flaky.calls
    assert 3 == len(ticks)  # all ran during the 50 ms wait: it did not block the loop


def test_asynchronous_argument_is_still_accepted() -> None:
    """tenacity_kwargs(asynchronous=True), needed before, is accepted and still serves Retrying."""
    flaky = Flaky(ConnectionResetError(), result="ok")
    with no_wait():
        assert "ok" == tenacity.Retrying(**FIXED.tenacity_kwargs(asynchronous=True))(flaky)
    assert 2 == flaky.calls


# --------------------------------------------------------------------------- the decorator's tenacity objects


@pytest.mark.parametrize(
    ("kwargs", "outcomes", "calls", "sleeps", "reason"),
    [
        ({"stop": tenacity.stop_after_attempt(2)}, [ConnectionResetError()] * 5, 2, [1.0], "stop_condition"),
        ({"wait": tenacity.wait_fixed(3)}, [ConnectionResetError()] * 2, 3, [3.0, 3.0], None),
        ({"wait": tenacity.wait_fixed(500)}, [ConnectionResetError()], 2, [8.0], None),  # max_delay 8
        (
            {"retry": tenacity.retry_if_exception_type(TimeoutError)},
            [ConnectionResetError()],
            1,
            [],
            "retry_condition",
        ),
        ({"retry": tenacity.retry_if_exception_type(ValueError)}, [ValueError("x")], 2, [0.5], None),
        ({"retry": tenacity.retry_if_result(lambda r: r is None)}, [None, None], 3, [0.5, 1.0], None),
    ],
    ids=["stop", "wait", "wait-capped", "retry-narrows", "retry-widens", "retry-result"],
)
def test_decorator_combines_tenacity_objects(
    kwargs: dict[str, Any], outcomes: list[Any], calls: int, sleeps: list[float], reason: str | None
) -> None:
    """stop= adds a stop, wait= replaces the delay (capped), retry= decides whether."""
    policy = FIXED.replace(strategies={TEMP: Strategy.backoff(0.5, 8, max_retries=5, jitter="none")})
    flaky = Flaky(*outcomes)
    notes: list[str] = []
    with no_wait(), record() as rec:
        try:
            retrykit.retry(policy, **kwargs)(flaky)()
        except Exception as exc:
            notes = exc.__notes__
    assert ([f"[{reason}]"] if reason else []) == [n[n.index("[") :] for n in notes]
    assert calls == flaky.calls
    assert sleeps == rec.sleeps
    assert [reason] == [e.reason.value for e in rec.gave_up] if reason else [] == rec.gave_up


def test_retry_with_and_statistics() -> None:
    """retry_with makes a per-call variant; statistics show the last call."""
    flaky = Flaky(*[ConnectionResetError()] * 3, result="done")

    @retrykit.retry(FIXED)
    def fetch() -> Any:
        return flaky()

    variant = fetch.retry_with(max_attempts=2)
    with no_wait(), pytest.raises(ConnectionResetError):
        variant()
    assert 2 == flaky.calls
    expected = {"attempt_number": 2, "idle_for": 1.0, "outcome": "raised", "stop_reason": "max_attempts"}
    assert expected == dict(variant.statistics)
    with no_wait():
        assert "done" == fetch()
    assert 2 == fetch.statistics["attempt_number"]
    assert "returned" == fetch.statistics["outcome"]
    assert 1.0 == fetch.statistics["idle_for"]
    assert "done" == fetch()
    assert 1 == fetch.statistics["attempt_number"]


def test_try_again_requests_a_retry() -> None:
    """tenacity.TryAgain raised by the body is retried as a temporary error."""
    flaky = Flaky(tenacity.TryAgain(), tenacity.TryAgain(), result="done")
    with no_wait(), record() as rec:
        assert "done" == retrykit.retry(FIXED)(flaky)()
    assert 3 == flaky.calls
    assert ["try_again", "try_again"] == [c.rule for c in rec.classifications]


# --------------------------------------------------------------------------- custom strategies


def test_custom_objects_see_the_category_retry_number() -> None:
    """After three temporary blips, the network category's custom wait and stop start at 1."""
    custom = Strategy.custom(wait=tenacity.wait_exponential(1), stop=tenacity.stop_after_attempt(3))
    policy = Policy(strategies={NET: custom, TEMP: Strategy.immediately(5)}, max_attempts=20)
    blips = [BlockingIOError("blip")] * 3  # recognised: operation would block
    flaky = Flaky(*blips, *[ConnectionResetError()] * 5)
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError):
        retrykit.retry(policy)(flaky)()
    assert 6 == flaky.calls  # 3 blips, then 3 network attempts: stop_after_attempt(3)
    assert [0.0, 0.0, 0.0, 1.0, 2.0] == rec.sleeps
    assert StopReason.STRATEGY_STOP == rec.gave_up[0].reason


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, "soon", None], ids=repr)
def test_bad_custom_wait_never_replaces_the_exception(value: Any) -> None:
    """A custom wait returning garbage falls back within max_delay; the caller's error survives."""
    custom = Strategy.custom(wait=lambda state: value, max_retries=2, max_delay=5)
    flaky = Flaky(*[ConnectionResetError()] * 5)
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError):
        retrykit.retry(Policy(strategies={NET: custom}))(flaky)()
    assert 3 == flaky.calls
    assert all(0 <= s <= 5 for s in rec.sleeps)


def test_a_raising_custom_wait_never_replaces_the_exception() -> None:
    """A custom wait that raises is ignored (the strategy's own delay is used)."""

    def broken(state: Any) -> float:
        raise ZeroDivisionError

    flaky = Flaky(ConnectionResetError(), result="done")
    with no_wait():
        assert (
            "done"
            == retrykit.retry(Policy(strategies={NET: Strategy.custom(wait=broken, max_retries=2)}))(flaky)()
        )


class Throttled(Exception):
    """A rate-limit error carrying the server's Retry-After, as SDK errors do."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("HTTP 429")
        self.status = 429
        self.retry_after = retry_after


@pytest.mark.parametrize(
    ("retry_after", "clamp", "sleeps", "reason"),
    [
        (2.0, False, [2.0], None),
        (86400.0, False, [], StopReason.RETRY_AFTER_TOO_LONG),
        (1e300, False, [], StopReason.RETRY_AFTER_TOO_LONG),
        (86400.0, True, [30.0], None),
    ],
    ids=["honoured", "too-long", "absurd", "clamped"],
)
def test_retry_after_is_bounded(
    retry_after: float, clamp: bool, sleeps: list[float], reason: StopReason | None
) -> None:
    """A Retry-After beyond the category's max_delay gives up at once, or is clamped if asked."""
    rate = Strategy.delay(1, max_retries=3, max_delay=30, jitter="none")
    policy = Policy(strategies={RATE: rate}, clamp_retry_after=clamp)
    flaky = Flaky(Throttled(retry_after))
    with no_wait(), record() as rec, contextlib.suppress(Throttled):
        retrykit.retry(policy)(flaky)()
    assert sleeps == rec.sleeps
    assert ([reason] if reason else []) == [e.reason for e in rec.gave_up]


def test_custom_wait_obeys_max_delay_and_retry_after() -> None:
    """A custom wait is capped by max_delay, and a Retry-After takes its place."""
    custom = Strategy.custom(wait=tenacity.wait_fixed(500), max_retries=3, max_delay=10, jitter="none")
    flaky = Flaky(ConnectionResetError(), Throttled(4.0))
    policy = Policy(strategies={NET: custom, RATE: custom})
    with no_wait(), record() as rec:
        retrykit.retry(policy)(flaky)()
    assert [10.0, 4.0] == rec.sleeps


# --------------------------------------------------------------------------- results


class Response:
    """The shape of an HTTP response that did not raise (httpx/requests style)."""

    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


def test_results_share_categories_and_give_back_the_last_result() -> None:
    """classify_result retries flagged results; giving up returns the last one, saying so."""
    policy = Policy(
        strategies={TEMP: Strategy.immediately(2)},
        classify_result=lambda r: "temporary_error" if r == "busy" else None,
    )
    flaky = Flaky("busy", "busy", "busy", "busy")
    with no_wait(), record() as rec:
        assert "busy" == retrykit.retry(policy)(flaky)()
    assert 3 == flaky.calls
    assert [StopReason.CATEGORY_EXHAUSTED] == [e.reason for e in rec.gave_up]
    assert rec.gave_up[0].returned
    assert rec.gave_up[0].error is None


def test_http_preset_retries_retryable_responses() -> None:
    """The http preset retries a 503 with its Retry-After and returns the later 200."""
    flaky = Flaky(Response(503, {"Retry-After": "2"}), Response(429), result=Response(200))
    with no_wait(), record() as rec:
        assert 200 == retrykit.retry("http")(flaky)().status_code
    assert 3 == flaky.calls
    assert [TEMP, RATE] == [c.category for c in rec.classifications]
    assert 2.0 <= rec.sleeps[0] <= 2.2


@pytest.mark.parametrize("status", [200, 201, 301, 400, 404, 409, 501, 505])
def test_http_preset_returns_other_responses_at_once(status: int) -> None:
    """Responses that a retry cannot fix (or that are fine) are returned after one call."""
    flaky = Flaky(Response(status))
    assert status == retrykit.retry("http")(flaky)().status_code
    assert 1 == flaky.calls


@pytest.mark.parametrize("bad", [lambda r: 42, lambda r: "nonsense", lambda r: 1 / 0])
def test_a_broken_result_rule_keeps_the_result(bad: Callable[[Any], Any]) -> None:
    """A result rule that raises or returns nonsense is reported, and the result is returned."""
    assert "x" == retrykit.retry(Policy(classify_result=bad))(lambda: "x")()


# --------------------------------------------------------------------------- exceptions do not leak


def test_a_reused_instance_gets_full_attempts_and_one_note() -> None:
    """Two calls raising the same instance each make their attempts; one note, updated in place."""
    shared = ConnectionResetError("cached")
    policy = Policy(strategies={NET: Strategy.immediately(2)})

    @retrykit.retry(policy)
    def fetch() -> None:
        calls.append(1)
        raise shared

    for _ in range(3):
        calls: list[int] = []
        with no_wait(), pytest.raises(ConnectionResetError):
            fetch()
        assert 3 == len(calls)
    assert 1 == len(shared.__notes__)


@pytest.mark.anyio
async def test_concurrent_calls_sharing_an_error_do_not_cut_each_other_short() -> None:
    """A call giving up on a shared instance does not make a concurrent call give up early."""
    shared = ConnectionResetError("shared")
    gave_up = anyio.Event()
    calls = {"quick": 0, "slow": 0}

    @retrykit.retry(Policy(strategies={NET: Strategy.immediately(1)}))
    async def quick() -> None:
        calls["quick"] += 1
        raise shared

    @retrykit.retry(Policy(strategies={NET: Strategy.immediately(2)}))
    async def slow() -> None:
        calls["slow"] += 1
        await gave_up.wait()  # the other call gives up on the instance during this attempt
        raise shared

    async def run_quick() -> None:
        with pytest.raises(ConnectionResetError):
            await quick()
        gave_up.set()

    async def run_slow() -> None:
        with pytest.raises(ConnectionResetError):
            await slow()

    with no_wait(), anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(run_slow)
            group.start_soon(run_quick)
    assert {"quick": 2, "slow": 3} == calls


class Payload:
    """Something big held by a failing frame."""


@pytest.fixture
def no_gc() -> Iterator[None]:
    """The cycle collector is off: only reference counting frees objects."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize("ends", ["returns", "raises"])
def test_failed_attempts_are_freed_without_the_cycle_collector(ends: str) -> None:
    """After a retried call, nothing of its failed attempts (frames, locals) is alive."""
    refs: list[weakref.ref[Payload]] = []

    @retrykit.retry(Policy(strategies={NET: Strategy.immediately(3)}))
    def fetch() -> str:
        payload = Payload()
        refs.append(weakref.ref(payload))
        if len(refs) < 3 or ends == "raises":
            raise ConnectionResetError
        return "ok"

    with no_wait():
        try:
            fetch()
        except ConnectionResetError as exc:
            exc.__traceback__ = None
            del exc
    assert [None] * len(refs) == [r() for r in refs]


@pytest.mark.anyio
@pytest.mark.usefixtures("no_gc")
async def test_failed_coroutine_attempts_are_freed_without_the_cycle_collector() -> None:
    """The same for coroutines, on asyncio and trio."""
    refs: list[weakref.ref[Payload]] = []

    @retrykit.retry(Policy(strategies={NET: Strategy.immediately(3)}))
    async def fetch() -> str:
        payload = Payload()
        refs.append(weakref.ref(payload))
        await anyio.lowlevel.checkpoint()
        if len(refs) < 3:
            raise ConnectionResetError
        return "ok"

    with no_wait():
        assert "ok" == await fetch()
    assert [None, None, None] == [r() for r in refs]


@pytest.mark.usefixtures("no_gc")
def test_a_retried_call_creates_no_reference_cycles() -> None:
    """A call that retries twice and succeeds leaves nothing for the cycle collector."""
    calls = 0

    @retrykit.retry(Policy(strategies={NET: Strategy.immediately(3)}))
    def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls % 3:
            raise ConnectionResetError("fresh")
        return "done"

    with no_wait():
        fetch()  # warm up caches
    gc.collect()
    with no_wait():
        assert "done" == fetch()
    assert 0 == gc.collect()


# --------------------------------------------------------------------------- deadlines


def test_callback_time_counts_against_the_deadline() -> None:
    """An on_retry that uses up the deadline stops the call before another attempt starts."""
    import time

    flaky = Flaky(*[ConnectionResetError()] * 5)
    policy = Policy(
        strategies={NET: Strategy.delay(0.01, max_retries=5)},
        deadline=0.05,
        on_retry=lambda event: time.sleep(0.06),
    )
    with record() as rec, pytest.raises(ConnectionResetError) as info:
        retrykit.retry(policy)(flaky)()
    assert 1 == flaky.calls
    assert [StopReason.DEADLINE] == [e.reason for e in rec.gave_up]
    assert "[deadline]" in info.value.__notes__[0]


@pytest.mark.anyio
async def test_a_coroutine_attempt_is_cut_at_the_deadline() -> None:
    """Without attempt_timeout, an attempt still ends when the deadline does."""
    calls = 0

    @retrykit.retry(Policy(deadline=0.05))
    async def hang() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep(3600)

    with anyio.fail_after(5), pytest.raises(TimeoutError):
        await hang()
    assert 1 == calls


@pytest.mark.anyio
async def test_async_block_form_honours_attempt_timeout() -> None:
    """async for ... with attempt: each attempt is cut at attempt_timeout, then retried."""
    calls = 0
    policy = Policy(strategies={NET: Strategy.immediately(2)}, attempt_timeout=0.02)
    with anyio.fail_after(5), no_wait(), pytest.raises(TimeoutError):
        async for attempt in retrykit.attempts(policy):
            with attempt:
                calls += 1
                await anyio.sleep(3600)
    assert 3 == calls


def test_sync_block_form_warns_that_attempt_timeout_is_not_enforced() -> None:
    """A sync block cannot be interrupted: attempt_timeout is refused with a warning."""
    with pytest.warns(RuntimeWarning, match="not enforced"):
        iter(retrykit.attempts(Policy(attempt_timeout=1)))


# --------------------------------------------------------------------------- cancellation


def test_converted_cancellation_is_not_retried() -> None:
    """A body that turns CancelledError into another error while cancelled is not retried."""
    import asyncio

    calls = 0

    @retrykit.retry(Policy(classifier=retrykit.Classifier([lambda e: "network_error"])))
    async def stubborn() -> None:
        nonlocal calls
        calls += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    async def main() -> None:
        with pytest.raises((asyncio.TimeoutError, RuntimeError)):
            await asyncio.wait_for(stubborn(), 0.05)

    asyncio.run(asyncio.wait_for(main(), 5))
    assert 1 == calls


# --------------------------------------------------------------------------- sinks take what they ask for


def test_a_sink_takes_only_the_events_it_asks_for() -> None:
    """subscribe(kinds=...) delivers only those event types; the rest are not built for it."""
    taken: list[Any] = []
    unsubscribe = retrykit.events.subscribe(
        taken.append, kinds=(retrykit.events.GaveUp, retrykit.events.Succeeded)
    )
    try:
        with no_wait():
            retrykit.retry(FIXED)(Flaky(ConnectionResetError()))()
            with pytest.raises(ValueError):
                retrykit.retry(FIXED)(Flaky(ValueError("bad")))()
    finally:
        unsubscribe()
    assert ["Succeeded", "GaveUp"] == [type(e).__name__ for e in taken]


@pytest.mark.parametrize("kinds", [(), (int,)], ids=["none", "not-an-event"])
def test_subscribe_refuses_unknown_kinds(kinds: tuple[type, ...]) -> None:
    """kinds must name retrykit event types."""
    with pytest.raises(retrykit.ConfigError, match="kinds"):
        retrykit.events.subscribe(print, kinds=kinds)


@pytest.fixture
def oversleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under no_wait, every skipped sleep counts one second longer than asked (a late wake-up)."""
    from retrykit import _scope

    real_skip = _scope._skip

    def late(mode: Any, delay: float) -> float:
        result = real_skip(mode, delay)
        mode.clock.offset += 1.0
        return result

    monkeypatch.setattr(_scope, "_skip", late)


@pytest.mark.usefixtures("oversleeping")
def test_no_attempt_starts_after_the_deadline() -> None:
    """A sleep that wakes past the deadline ends the call with the last failure, noted."""
    flaky = Flaky(*[ConnectionResetError()] * 5)
    policy = Policy(strategies={NET: Strategy.delay(4, max_retries=5)}, deadline=4.5)
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError) as info:
        retrykit.retry(policy)(flaky)()
    assert 1 == flaky.calls
    assert [StopReason.DEADLINE] == [e.reason for e in rec.gave_up]
    assert rec.gave_up[0].rescheduled
    assert "[deadline]" in info.value.__notes__[0]


@pytest.mark.anyio
@pytest.mark.usefixtures("oversleeping")
async def test_no_coroutine_attempt_starts_after_the_deadline() -> None:
    """The same for coroutines."""
    calls = 0

    @retrykit.retry(Policy(strategies={NET: Strategy.delay(4, max_retries=5)}, deadline=4.5))
    async def fetch() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError

    with no_wait(), record() as rec, pytest.raises(ConnectionResetError):
        await fetch()
    assert 1 == calls
    assert [StopReason.DEADLINE] == [e.reason for e in rec.gave_up]


# --------------------------------------------------------------------------- names


def connect(password: str) -> None:
    """A function whose arguments must never show in names."""
    raise ConnectionResetError


class Client:
    """A callable object (its repr would carry an address)."""

    def __call__(self) -> None:
        raise ConnectionResetError


@pytest.mark.parametrize(
    ("target", "name"),
    [(functools.partial(connect, password="hunter2"), "connect"), (Client(), "Client")],
    ids=["partial", "callable-object"],
)
def test_names_never_come_from_repr(target: Any, name: str) -> None:
    """Operations and rules are named by their function or class: no arguments, no addresses."""
    rule = retrykit.Classifier([target]).rules[0]
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError) as info:
        retrykit.retry(Policy(strategies={NET: Strategy.immediately(1)}))(target)()
    assert {name} == {e.operation for e in rec.events} | {rule.name}
    assert "hunter2" not in info.value.__notes__[0]
    assert "0x" not in info.value.__notes__[0]


# --------------------------------------------------------------------------- the decision at its edges


NETWORK = {ErrorCategory.NETWORK_ERROR: Strategy.delay(5.0, max_retries=3, jitter=False)}


@pytest.mark.parametrize(
    ("action", "text"), [(PASS, "<Verdict pass delay=0"), (RETRY, "<Verdict retry delay=0")]
)
def test_a_verdict_shows_its_action_and_delay(action: int, text: str) -> None:
    """A verdict's repr names its action, delay, reason and category."""
    assert repr(Verdict(action)).startswith(text)


class _HostileDict(Exception):
    @property  # type: ignore[misc]
    def __dict__(self) -> Any:  # type: ignore[override]
        raise RuntimeError("hostile")


def _chain(depth: int, marked: Any) -> BaseException:
    """*depth* exceptions raised from one another; the deepest carries *marked* as its mark."""
    deepest = ValueError("deepest")
    deepest.__dict__[MARK] = marked
    exc: BaseException = deepest
    for _ in range(depth - 1):
        outer = ValueError("wrapper")
        outer.__cause__ = exc
        exc = outer
    return exc


OUTER = _scope.Scope(None, None, "outer")


INNER = _scope.Scope(OUTER, None, None)


@pytest.mark.parametrize(
    ("depth", "marked", "inside"),
    [(1, INNER, True), (5, OUTER, True), (40, OUTER, False), (1, (None, 1.0, "other"), False)],
    ids=["nested-scope", "five-links-down", "beyond-32-links", "another-scope"],
)
def test_a_give_up_inside_is_found_through_nested_scopes_and_32_links(
    depth: int, marked: Any, inside: bool
) -> None:
    """A mark of a scope nested in this one counts; the cause chain is followed 32 links deep, no further."""
    assert inside is gave_up_inside(_chain(depth, marked), OUTER)


def test_an_exception_with_a_hostile_dict_was_not_given_up_inside() -> None:
    """An exception whose __dict__ raises carries no mark."""
    assert gave_up_inside(_HostileDict(), OUTER) is False


def _unsafe(exc: BaseException) -> Classification:
    return Classification(ErrorCategory.NETWORK_ERROR, "sent, then reset", None, "unsafe", replay_unsafe=True)


@pytest.mark.parametrize(("idempotent", "calls"), [(False, 1), (True, 2)])
def test_a_replay_unsafe_failure_is_retried_only_when_idempotent(idempotent: bool, calls: int) -> None:
    """A failure after the request may have been applied is retried only for an idempotent call."""
    seen = [0]

    def fn() -> str:
        seen[0] += 1
        if seen[0] == 1:
            raise ConnectionResetError
        return "ok"

    policy = Policy(strategies=NETWORK, classifier=Classifier([_unsafe]), idempotent=idempotent)
    with no_wait():
        if idempotent:
            assert "ok" == retrykit.retry(policy)(fn)()
        else:
            with pytest.raises(ConnectionResetError) as caught:
                retrykit.retry(policy)(fn)()
            assert "not_idempotent" in caught.value.__notes__[0]
    assert calls == seen[0]


def test_a_stop_condition_that_raises_stops() -> None:
    """A tenacity stop condition that raises is taken as 'stop': never retry blindly."""
    seen = [0]

    def fn() -> None:
        seen[0] += 1
        raise ConnectionResetError

    def broken(state: Any) -> bool:
        raise ZeroDivisionError

    wrapped = retrykit.retry(Policy(strategies=NETWORK), stop=broken)(fn)
    with no_wait(), pytest.raises(ConnectionResetError):
        wrapped()
    assert (1, "stop_condition") == (seen[0], wrapped.statistics["stop_reason"])  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- the loop at its edges


NETWORK_TWICE = {ErrorCategory.NETWORK_ERROR: Strategy.immediately(max_retries=2)}


def test_a_first_try_success_judged_by_a_retry_condition_counts_for_an_adaptive_budget() -> None:
    """A first-try success judged by a retry condition (no fast path) is an accept for an adaptive budget."""
    budget = RetryBudget.adaptive("edges", store=MemoryOverloadStore())
    condition = tenacity.retry_if_exception_type(ConnectionResetError)
    ok = retrykit.retry(Policy(strategies=NETWORK_TWICE, budget=budget), retry=condition)(Flaky())
    assert "ok" == ok()
    assert (1, 1) == (budget.state()["requests"], budget.state()["accepts"])


def test_a_retry_condition_that_raises_means_no_retry() -> None:
    """A user's retry condition that raises is taken as 'do not retry': one attempt, the caller's error."""

    def broken(state: Any) -> bool:
        raise ZeroDivisionError

    fn = Flaky.failing(5)
    with pytest.raises(ConnectionResetError), no_wait():
        retrykit.retry(Policy(strategies=NETWORK_TWICE), retry=broken)(fn)()
    assert 1 == fn.calls


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


TWICE = {
    ErrorCategory.NETWORK_ERROR: Strategy.immediately(max_retries=2),
    ErrorCategory.TEMPORARY_ERROR: Strategy.immediately(max_retries=2),
}


def _busy(result: Any) -> ErrorCategory | None:
    """A result rule: the string "busy" is a temporary failure."""
    return ErrorCategory.TEMPORARY_ERROR if result == "busy" else None


def _open(breaker: CircuitBreaker) -> None:
    """Open *breaker* as a burst of failures elsewhere would (one failure of the call's own does not)."""
    breaker.record(0, 10)
    assert breaker.state()["state"] == "open"


def test_a_retry_condition_that_says_no_takes_a_flagged_result_as_good() -> None:
    """A result the result rule flags is returned at once when the retry condition declines it."""
    fn = Flaky("busy", "ok")
    policy = Policy(strategies=TWICE, classify_result=_busy)
    wrapped = retrykit.retry(policy, retry=tenacity.retry_if_exception_type(OSError))(fn)
    assert ("busy", 1) == (wrapped(), fn.calls)


@pytest.mark.parametrize(
    ("error", "reason"),
    [(TypeError("bug"), "non_retryable"), (ConnectionResetError("reset"), "retry_condition")],
)
def test_a_declining_retry_condition_keeps_a_give_up_reason_of_its_own(error: Exception, reason: str) -> None:
    """An error the policy would not retry anyway stops for that reason, not for the declining condition."""
    fn = Flaky(result=error)
    wrapped = retrykit.retry(Policy(strategies=TWICE), retry=tenacity.retry_if_result(lambda r: False))(fn)
    with pytest.raises(type(error)):
        wrapped()
    assert (1, reason) == (fn.calls, wrapped.statistics["stop_reason"])  # type: ignore[attr-defined]


def test_a_breaker_opening_while_a_result_retry_waits_returns_that_result() -> None:
    """The breaker opens while a result's retry waits: the call ends with that result, not an error."""
    breaker = CircuitBreaker("edges2-result", store=MemoryOverloadStore(), min_throughput=5, open_for=60)
    fn = Flaky("busy", "ok")
    policy = Policy(
        strategies=TWICE, classify_result=_busy, breaker=breaker, on_retry=lambda e: _open(breaker)
    )
    with no_wait():
        assert ("busy", 1) == (retrykit.retry(policy)(fn)(), fn.calls)


@pytest.mark.parametrize(
    ("first", "raised"), [("busy", CircuitOpen), (ConnectionResetError(), ConnectionResetError)]
)
def test_tenacity_refuses_the_next_attempt_once_the_breaker_opened(first: Any, raised: type) -> None:
    """In tenacity's loop, an opened breaker ends the call: the last error, or CircuitOpen after a result."""
    breaker = CircuitBreaker("edges2-tenacity", store=MemoryOverloadStore(), min_throughput=5, open_for=60)
    policy = Policy(
        strategies=TWICE, classify_result=_busy, breaker=breaker, on_retry=lambda e: _open(breaker)
    )
    fn = Flaky(first, "ok")
    with no_wait(), pytest.raises(raised):
        tenacity.Retrying(**policy.tenacity_kwargs())(fn)
    assert 1 == fn.calls


@pytest.mark.parametrize("guarded", [True, False])
def test_tenacity_retries_through_a_closed_breaker_and_succeeds(guarded: bool) -> None:
    """With protection that stays closed (or none), tenacity's loop retries and returns the success."""
    store = MemoryOverloadStore()
    extra: dict[str, Any] = (
        {
            "breaker": CircuitBreaker("edges2-closed", store=store),
            "budget": RetryBudget("edges2", store=store),
        }
        if guarded
        else {}
    )
    fn = Flaky(ConnectionResetError(), "ok")
    with no_wait(), record() as events:
        assert "ok" == tenacity.Retrying(**Policy(strategies=TWICE, **extra).tenacity_kwargs())(fn)
    assert (2, 1) == (fn.calls, len(events.successes))


def test_tenacity_first_try_success_without_protection_says_nothing() -> None:
    """A first-try success in tenacity's loop, with no budget or breaker, emits no event."""
    with record() as events:
        assert "ok" == tenacity.Retrying(**Policy(strategies=TWICE).tenacity_kwargs())(Flaky("ok"))
    assert [] == events.events


def _again_kwargs(asynchronous: bool) -> dict[str, Any]:
    return Policy(strategies=TWICE).tenacity_kwargs(
        retry=tenacity.retry_if_result(lambda r: r == "again"),
        stop=tenacity.stop_after_attempt(2),
        asynchronous=asynchronous,
    )


def _ended_as_given_up(events: Any) -> list[tuple[str, bool]]:
    return [(e.reason.value, e.returned) for e in events.gave_up]


def test_a_result_only_tenacity_retries_ends_with_that_result() -> None:
    """tenacity retrying an unflagged result until its stop returns the last result, as given up."""
    fn = Flaky(result="again")
    with no_wait(), record() as events:
        assert "again" == tenacity.Retrying(**_again_kwargs(False))(fn)
    assert (2, [("stop_condition", True)]) == (fn.calls, _ended_as_given_up(events))


@pytest.mark.anyio
async def test_a_result_only_async_tenacity_retries_ends_with_that_result() -> None:
    """AsyncRetrying retrying an unflagged result until its stop returns the last result, as given up."""
    fn = Flaky(result="again")

    async def call() -> Any:
        return fn()

    with no_wait(), record() as events:
        assert "again" == await tenacity.AsyncRetrying(**_again_kwargs(True))(call)
    assert (2, [("stop_condition", True)]) == (fn.calls, _ended_as_given_up(events))


@pytest.mark.anyio
async def test_an_async_retry_condition_is_awaited() -> None:
    """AsyncRetrying with a coroutine retry condition: its answer is awaited and obeyed."""
    seen: list[int] = []

    async def condition(state: tenacity.RetryCallState) -> bool:
        seen.append(state.attempt_number)
        return bool(state.outcome and state.outcome.failed)

    fn = Flaky(ConnectionResetError(), "ok")
    kwargs = Policy(strategies=TWICE).tenacity_kwargs(retry=condition, asynchronous=True)

    async def call() -> Any:
        return fn()

    with no_wait():
        assert "ok" == await tenacity.AsyncRetrying(**kwargs)(call)
    assert [1, 2] == seen


class _Awaitable:
    """An awaitable a plain callback returns; it says whether it was closed."""

    def __await__(self) -> Any:
        yield None

    def __init__(self, closable: bool) -> None:
        self.closed = False
        if closable:
            self.close = self._close

    def _close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("closable", [True, False])
def test_a_sync_call_closes_awaitables_its_callbacks_return(closable: bool) -> None:
    """A plain on_retry returning an awaitable: a plain function's call closes it (if it can) and goes on."""
    returned: list[_Awaitable] = []

    def on_retry(event: Any) -> _Awaitable:
        returned.append(_Awaitable(closable))
        return returned[-1]

    fn = Flaky(ConnectionResetError(), "ok")
    with no_wait():
        assert "ok" == retrykit.retry(Policy(strategies=TWICE, on_retry=on_retry))(fn)()
    assert [closable] == [awaitable.closed for awaitable in returned]


class _DictRaises(Exception):
    @property  # type: ignore[misc]
    def __dict__(self) -> Any:  # type: ignore[override]
        raise RuntimeError("hostile")


class _DictNotADict(Exception):
    @property  # type: ignore[misc]
    def __dict__(self) -> Any:  # type: ignore[override]
        return ["not", "a", "dict"]


@pytest.mark.parametrize("kind", [_DictRaises, _DictNotADict])
def test_an_exception_with_a_hostile_dict_is_left_unannotated(kind: type[Exception]) -> None:
    """annotate() skips an exception whose __dict__ raises or is not a dict: no note, no error."""
    exc = kind("x")
    annotate(exc, "retrykit: note", None)
    assert getattr(exc, "__notes__", None) is None


@pytest.mark.parametrize("inner_attempts", [2, 3])
def test_a_result_an_inner_layer_gave_up_on_is_not_retried_again(inner_attempts: int) -> None:
    """A 503 response given up by an inner layer is returned by the outer one as it is (3, not 9)."""
    httpx = pytest.importorskip("httpx")
    calls = []

    @retrykit.retry("http", max_attempts=inner_attempts)
    def inner() -> Any:
        calls.append(1)
        return httpx.Response(503)

    @retrykit.retry("http", max_attempts=3)
    def outer() -> Any:
        return inner()

    with no_wait():
        response = outer()
    assert 503 == response.status_code
    assert inner_attempts == len(calls)
