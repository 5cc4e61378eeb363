"""The engine: one decision, side-effect-free tenacity views, composition, results, no leaks."""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
import tenacity

import retrykit
import retrykit.events
from retrykit import ErrorCategory, Policy, Strategy
from retrykit.events import StopReason
from retrykit.testing import no_wait, record

NET = ErrorCategory.NETWORK_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
RATE = ErrorCategory.API_RATE_LIMIT
FIXED = Policy(strategies={NET: Strategy.backoff(1, 8, max_retries=9, jitter="none")}, max_attempts=20)


class Flaky:
    """Raises (or returns) the given outcomes in order, then returns *result*."""

    def __init__(self, *outcomes: Any, result: Any = "done") -> None:
        self.outcomes = list(outcomes)
        self.result = result
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.calls <= len(self.outcomes):
            outcome = self.outcomes[self.calls - 1]
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        return self.result


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


def test_sync_hooks_in_an_async_loop_are_refused() -> None:
    """Sync tenacity kwargs given to AsyncRetrying fail with a ConfigError saying the fix."""

    async def fn() -> None:
        raise ConnectionResetError

    with pytest.raises(retrykit.ConfigError, match="asynchronous=True"):
        anyio.run(tenacity.AsyncRetrying(**FIXED.tenacity_kwargs()), fn)


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
    flaky = Flaky(*[ConnectionResetError()] * 3)

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
    flaky = Flaky(tenacity.TryAgain(), tenacity.TryAgain())
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

    flaky = Flaky(ConnectionResetError())
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
