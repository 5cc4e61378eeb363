"""The loop at its edges: retry conditions and result rules, breakers opening between attempts, tenacity."""

from __future__ import annotations

from typing import Any

import pytest
import tenacity

import retrykit
from retrykit import CircuitBreaker, CircuitOpen, ErrorCategory, Policy, RetryBudget, Strategy
from retrykit._budget import MemoryOverloadStore
from retrykit._loop import annotate
from retrykit.testing import no_wait, record

TWICE = {
    ErrorCategory.NETWORK_ERROR: Strategy.immediately(max_retries=2),
    ErrorCategory.TEMPORARY_ERROR: Strategy.immediately(max_retries=2),
}


def _busy(result: Any) -> ErrorCategory | None:
    """A result rule: the string "busy" is a temporary failure."""
    return ErrorCategory.TEMPORARY_ERROR if result == "busy" else None


class _Answers:
    """A function returning (or raising) its answers in turn, counting calls."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.__name__ = "answers"

    def __call__(self) -> Any:
        self.calls += 1
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _open(breaker: CircuitBreaker) -> None:
    """Open *breaker* as a burst of failures elsewhere would (one failure of the call's own does not)."""
    breaker.record(0, 10)
    assert breaker.state()["state"] == "open"


# ---------------------------------------------------------------------------- retry conditions


def test_a_retry_condition_that_says_no_takes_a_flagged_result_as_good() -> None:
    """A result the result rule flags is returned at once when the retry condition declines it."""
    fn = _Answers("busy", "ok")
    policy = Policy(strategies=TWICE, classify_result=_busy)
    wrapped = retrykit.retry(policy, retry=tenacity.retry_if_exception_type(OSError))(fn)
    assert ("busy", 1) == (wrapped(), fn.calls)


@pytest.mark.parametrize(
    ("error", "reason"),
    [(TypeError("bug"), "non_retryable"), (ConnectionResetError("reset"), "retry_condition")],
)
def test_a_declining_retry_condition_keeps_a_give_up_reason_of_its_own(error: Exception, reason: str) -> None:
    """An error the policy would not retry anyway stops for that reason, not for the declining condition."""
    fn = _Answers(error)
    wrapped = retrykit.retry(Policy(strategies=TWICE), retry=tenacity.retry_if_result(lambda r: False))(fn)
    with pytest.raises(type(error)):
        wrapped()
    assert (1, reason) == (fn.calls, wrapped.statistics["stop_reason"])  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- breakers between attempts


def test_a_breaker_opening_while_a_result_retry_waits_returns_that_result() -> None:
    """The breaker opens while a result's retry waits: the call ends with that result, not an error."""
    breaker = CircuitBreaker("edges2-result", store=MemoryOverloadStore(), min_throughput=5, open_for=60)
    fn = _Answers("busy", "ok")
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
    fn = _Answers(first, "ok")
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
    fn = _Answers(ConnectionResetError(), "ok")
    with no_wait(), record() as events:
        assert "ok" == tenacity.Retrying(**Policy(strategies=TWICE, **extra).tenacity_kwargs())(fn)
    assert (2, 1) == (fn.calls, len(events.successes))


def test_tenacity_first_try_success_without_protection_says_nothing() -> None:
    """A first-try success in tenacity's loop, with no budget or breaker, emits no event."""
    with record() as events:
        assert "ok" == tenacity.Retrying(**Policy(strategies=TWICE).tenacity_kwargs())(_Answers("ok"))
    assert [] == events.events


# ---------------------------------------------------------------------------- results tenacity retries


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
    fn = _Answers("again")
    with no_wait(), record() as events:
        assert "again" == tenacity.Retrying(**_again_kwargs(False))(fn)
    assert (2, [("stop_condition", True)]) == (fn.calls, _ended_as_given_up(events))


@pytest.mark.anyio
async def test_a_result_only_async_tenacity_retries_ends_with_that_result() -> None:
    """AsyncRetrying retrying an unflagged result until its stop returns the last result, as given up."""
    fn = _Answers("again")

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

    fn = _Answers(ConnectionResetError(), "ok")
    kwargs = Policy(strategies=TWICE).tenacity_kwargs(retry=condition, asynchronous=True)

    async def call() -> Any:
        return fn()

    with no_wait():
        assert "ok" == await tenacity.AsyncRetrying(**kwargs)(call)
    assert [1, 2] == seen


# ---------------------------------------------------------------------------- callbacks and notes


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

    fn = _Answers(ConnectionResetError(), "ok")
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
