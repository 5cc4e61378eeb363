"""retrykit's fixtures and helpers under pytest-asyncio (strict and auto mode), besides anyio's plugin."""

from __future__ import annotations

import pytest

import retrykit
from retrykit import Policy, Strategy
from retrykit.testing import Recorder, no_wait, record

from .flaky import AsyncFlaky

pytest_plugins = ["pytester"]

FIXED = Policy(strategies={"network_error": Strategy.backoff(1, 8, max_retries=3, jitter="none")})


@pytest.mark.asyncio
async def test_recorder_fixture_under_pytest_asyncio_strict(retrykit_recorder: Recorder) -> None:
    """In strict mode, the recorder fixture sees a retried coroutine's sleeps without sleeping."""
    flaky = AsyncFlaky.failing(2)
    assert "ok" == await retrykit.retry(FIXED)(flaky)()
    assert [1.0, 2.0] == retrykit_recorder.sleeps


@pytest.mark.asyncio
async def test_context_helpers_under_pytest_asyncio_strict() -> None:
    """no_wait() and record() used inside an asyncio test behave as under anyio's plugin."""
    flaky = AsyncFlaky.failing(3)
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError):
        await retrykit.retry(FIXED.replace(max_attempts=3))(flaky)()
    assert 3 == flaky.calls
    assert [1.0, 2.0] == rec.sleeps


AUTO_MODE_TEST = """
import retrykit
from retrykit import Policy, Strategy

POLICY = Policy(strategies={"network_error": Strategy.backoff(1, 8, max_retries=3, jitter="none")})


async def test_fixture_in_auto_mode(retrykit_recorder):
    calls = []

    @retrykit.retry(POLICY)
    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError
        return "ok"

    assert "ok" == await flaky()
    assert [1.0, 2.0] == retrykit_recorder.sleeps


async def test_no_retry_fixture_in_auto_mode(retrykit_no_retry):
    calls = []

    @retrykit.retry(POLICY)
    async def flaky():
        calls.append(1)
        raise ConnectionResetError

    try:
        await flaky()
    except ConnectionResetError:
        pass
    assert 1 == len(calls)
"""


def test_fixtures_under_pytest_asyncio_auto_mode(pytester: pytest.Pytester) -> None:
    """In auto mode (unmarked async tests), the fixtures work too."""
    pytester.makepyfile(test_auto=AUTO_MODE_TEST)
    result = pytester.runpytest_subprocess("-p", "asyncio", "--asyncio-mode=auto", "-q")
    result.assert_outcomes(passed=2)
