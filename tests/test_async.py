"""The decorator and block form on coroutines, on asyncio and trio: the sync suite's twin."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import anyio
import pytest
import sniffio

import retrykit
from retrykit import ErrorCategory, Policy, Strategy
from retrykit.events import StopReason
from retrykit.testing import no_wait, record

from .flaky import AsyncFlaky

pytestmark = pytest.mark.anyio

NET = ErrorCategory.NETWORK_ERROR
THREE = Policy(strategies={NET: Strategy.immediately(max_retries=2)})
EVERYTHING = retrykit.Classifier([lambda e: "network_error"])


async def test_coroutines_are_retried() -> None:
    """A coroutine function is retried and stays a coroutine function."""
    flaky = AsyncFlaky(ConnectionResetError(), TimeoutError())

    @retrykit.retry(THREE)
    async def fetch(x: int) -> Any:
        return await flaky()

    assert inspect.iscoroutinefunction(fetch)
    with no_wait():
        assert "ok" == await fetch(1)
    assert 3 == flaky.calls


async def test_sleeps_go_through_the_running_backend(anyio_backend: str) -> None:
    """The retry really sleeps (through anyio) on asyncio and trio alike."""
    seen = []

    @retrykit.retry(Policy(strategies={NET: Strategy.delay(0.001, max_retries=1)}))
    async def fetch() -> str:
        seen.append(sniffio.current_async_library())
        if len(seen) == 1:
            raise ConnectionResetError
        return "ok"

    assert "ok" == await fetch()
    assert [anyio_backend, anyio_backend] == seen


async def test_async_callbacks_are_awaited() -> None:
    """async on_retry/on_success callbacks are awaited; sync ones work too."""
    seen: list[str] = []

    async def on_retry(event: Any) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(f"retry {event.attempt}")

    policy = THREE.replace(on_retry=on_retry, on_success=lambda e: seen.append(f"ok {e.attempts}"))
    with no_wait():
        assert "ok" == await retrykit.retry(policy)(AsyncFlaky(ConnectionResetError()))()
    assert ["retry 1", "ok 2"] == seen


async def test_cancellation_is_never_retried() -> None:
    """A timeout around a retrying coroutine fires on time, even with a match-all classifier."""
    calls = 0

    @retrykit.retry(Policy(classifier=EVERYTHING))
    async def hang() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep(3600)

    with anyio.move_on_after(0.05) as scope:
        await hang()
    assert scope.cancelled_caught
    assert 1 == calls


async def test_fail_after_interrupts_the_retry_sleep() -> None:
    """Cancellation during retrykit's own (long) sleep ends the call at once."""
    flaky = AsyncFlaky(*(ConnectionResetError() for _ in range(5)))
    slow = Policy(strategies={NET: Strategy.delay(3600, max_retries=3)})
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.05):
            await retrykit.retry(slow)(flaky)()
    assert 1 == flaky.calls


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_wait_for_times_out_on_time() -> None:
    """asyncio.wait_for around a retrying coroutine with a match-all rule times out."""
    calls = 0

    @retrykit.retry(Policy(classifier=EVERYTHING))
    async def hang() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(3600)

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(hang(), 0.05)
    assert 1 == calls


async def test_attempt_timeout_is_enforced() -> None:
    """Each attempt is cut at attempt_timeout; the timeouts are retried as network errors."""
    calls = 0

    @retrykit.retry(THREE.replace(attempt_timeout=0.01))
    async def hang() -> None:
        nonlocal calls
        calls += 1
        await anyio.sleep(3600)

    with no_wait(), pytest.raises(TimeoutError) as info:
        await hang()
    assert 3 == calls
    assert "network_error" in info.value.__notes__[0]


async def test_nested_coroutines_do_not_multiply_attempts() -> None:
    """3-attempt inside 3-attempt: the inner coroutine runs 3 times, not 9."""
    inner_calls = 0

    @retrykit.retry(THREE)
    async def inner() -> None:
        nonlocal inner_calls
        inner_calls += 1
        raise ConnectionResetError

    @retrykit.retry(THREE)
    async def outer() -> None:
        await inner()

    with no_wait(), pytest.raises(ConnectionResetError):
        await outer()
    assert 3 == inner_calls


async def test_nested_deadline_in_async_code() -> None:
    """An inner coroutine's waits stop at the outer deadline."""
    slow = Policy(strategies={NET: Strategy.delay(4, max_retries=10)})

    @retrykit.retry(slow)
    async def inner() -> None:
        raise ConnectionResetError

    @retrykit.retry(Policy(deadline=10))
    async def outer() -> None:
        await inner()

    with no_wait(), record() as rec, pytest.raises(ConnectionResetError):
        await outer()
    assert [4.0, 4.0] == rec.sleeps
    assert StopReason.DEADLINE == rec.gave_up[0].reason


async def test_scope_reaches_tasks_and_threads(anyio_backend: str) -> None:
    """The deadline is visible in task-group children and worker threads."""
    seen: list[float | None] = []

    async def child() -> None:
        seen.append(retrykit.remaining())

    @retrykit.retry(Policy(deadline=30))
    async def fn() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
        seen.append(await anyio.to_thread.run_sync(retrykit.remaining))
        if anyio_backend == "asyncio":
            seen.append(await asyncio.create_task(_remaining()))
            seen.append(await asyncio.to_thread(retrykit.remaining))
        else:
            import trio

            async with trio.open_nursery() as nursery:
                nursery.start_soon(child)

    await fn()
    assert len(seen) == (4 if anyio_backend == "asyncio" else 3)
    assert all(value is not None and 29 < value <= 30 for value in seen)


async def _remaining() -> float | None:
    return retrykit.remaining()


async def test_async_block_form() -> None:
    """``async for attempt in attempts(...)`` retries a block with async sleeps."""
    flaky = AsyncFlaky(ConnectionResetError(), ConnectionResetError())
    with no_wait(), record() as rec:
        async for attempt in retrykit.attempts(THREE):
            with attempt:
                await flaky()
    assert 3 == flaky.calls
    assert [0.0, 0.0] == rec.sleeps


async def test_no_wait_is_context_local() -> None:
    """no_wait() in one task does not skip the sleeps of a task running beside it."""
    slept: dict[str, float] = {}
    policy = Policy(strategies={NET: Strategy.delay(0.02, max_retries=1)})

    async def run(name: str, skip: bool) -> None:
        flaky = AsyncFlaky(ConnectionResetError())
        started = anyio.current_time()
        if skip:
            with no_wait():
                await retrykit.retry(policy)(flaky)()
        else:
            await retrykit.retry(policy)(flaky)()
        slept[name] = anyio.current_time() - started

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "skipping", True)
        tg.start_soon(run, "waiting", False)
    assert slept["waiting"] >= 0.02
    assert slept["skipping"] < slept["waiting"]


async def test_a_coroutine_follows_its_preset_to_a_first_try_success_callback() -> None:
    """A first-try success calls the on_success of a preset registered again after the first await."""
    retrykit.register_preset("told-later-async", retrykit.Policy(max_attempts=2))

    @retrykit.retry("told-later-async")
    async def fetch() -> int:
        return 1

    assert 1 == await fetch()  # nobody to tell: nothing built
    seen: list[int] = []
    retrykit.register_preset(
        "told-later-async", retrykit.Policy(on_success=lambda e: seen.append(e.attempts)), replace=True
    )
    assert 1 == await fetch()
    assert [1] == seen
