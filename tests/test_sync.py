"""The decorator and block form on plain functions: forms, the one-layer rule, safety."""

from __future__ import annotations

import contextvars
import functools
import inspect
import pickle
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import tenacity

import retrykit
from retrykit import ConfigError, ErrorCategory, Policy, Strategy
from retrykit.events import StopReason
from retrykit.testing import no_retry, no_wait, record

from .flaky import Flaky

NET = ErrorCategory.NETWORK_ERROR
THREE = Policy(strategies={NET: Strategy.immediately(max_retries=2)})


@pytest.mark.parametrize(
    "decorate",
    [
        lambda f: retrykit.retry(f),
        lambda f: retrykit.retry()(f),
        lambda f: retrykit.retry(THREE)(f),
        lambda f: retrykit.retry("http")(f),
        lambda f: retrykit.retry("default", max_attempts=3)(f),
    ],
    ids=["bare", "called", "policy", "preset", "overrides"],
)
def test_decorator_forms_retry(decorate: Any) -> None:
    """Every decorator form retries a network blip and returns the result."""
    flaky = Flaky(ConnectionResetError(), ConnectionResetError())

    def fetch(x: int, *, y: int = 0) -> Any:
        return flaky()

    with no_wait():
        assert "ok" == decorate(fetch)(1, y=2)
    assert 3 == flaky.calls


def test_signature_and_metadata_survive() -> None:
    """Name, docstring and signature of the decorated function are kept."""

    def fetch(url: str, *, timeout: float = 1.0) -> bytes:
        """Fetch it."""
        return b""

    wrapped = retrykit.retry("http")(fetch)
    assert ("fetch", "Fetch it.") == (wrapped.__name__, wrapped.__doc__)
    assert inspect.signature(fetch) == inspect.signature(wrapped)
    assert wrapped is not fetch


def test_methods_static_and_class_methods() -> None:
    """Instance, static and class methods are retried (decorator above or below the descriptor)."""

    class Client:
        flaky = Flaky(ConnectionResetError(), ConnectionResetError())

        @retrykit.retry(THREE)
        def method(self) -> Any:
            return self.flaky()

        @retrykit.retry(THREE)
        @staticmethod
        def static() -> Any:
            return Client.flaky()

        @retrykit.retry(THREE)
        @classmethod
        def klass(cls) -> Any:
            return cls.flaky()

    with no_wait():
        assert "ok" == Client().method()
        Client.flaky = Flaky(ConnectionResetError())
        assert "ok" == Client.static()
        Client.flaky = Flaky(ConnectionResetError())
        assert "ok" == Client.klass()


@pytest.mark.parametrize("errors", [(ValueError("bad"),), (TypeError("bug"),), (KeyError("k"),)])
def test_non_retryable_fail_at_once_with_a_note(errors: tuple[BaseException, ...]) -> None:
    """Data and permanent errors are not retried; the original comes out with a note."""
    flaky = Flaky(*errors)
    with pytest.raises(type(errors[0])) as info:
        retrykit.retry(flaky)()
    assert 1 == flaky.calls
    assert info.value is errors[0]
    assert "[non_retryable]" in info.value.__notes__[0]


def test_give_up_note_says_attempts_category_and_reason() -> None:
    """The note on the original exception says how many attempts, the category and why."""
    flaky = Flaky(*(ConnectionResetError() for _ in range(5)))
    with no_wait(), pytest.raises(ConnectionResetError) as info:
        retrykit.retry(THREE)(flaky)()
    (note,) = info.value.__notes__
    assert "after 3 attempts" in note
    assert "network_error" in note
    assert "category_retries_exhausted" in note


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()])
def test_base_exceptions_are_never_retried(exc: BaseException) -> None:
    """BaseExceptions pass through at once, untouched, even with a match-everything rule."""
    everything = Policy(classifier=retrykit.Classifier([lambda e: "network_error"]))
    flaky = Flaky(exc)
    with pytest.raises(type(exc)) as info:
        retrykit.retry(everything)(flaky)()
    assert 1 == flaky.calls
    assert not getattr(info.value, "__notes__", None)


def test_base_exceptions_never_retried_through_raw_tenacity() -> None:
    """policy.retry refuses BaseExceptions in a plain tenacity loop too."""
    everything = Policy(classifier=retrykit.Classifier([lambda e: "network_error"]))
    flaky = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        tenacity.Retrying(**everything.tenacity_kwargs(sleep=lambda s: None))(flaky)
    assert 1 == flaky.calls


def test_celery_control_flow_passes_through() -> None:
    """Celery's Retry/Ignore/Reject are never retried or annotated."""
    celery_exceptions = pytest.importorskip("celery.exceptions")
    for exc in (celery_exceptions.Retry(), celery_exceptions.Ignore(), celery_exceptions.Reject()):
        flaky = Flaky(exc)
        with pytest.raises(type(exc)):
            retrykit.retry(Policy(classifier=retrykit.Classifier([lambda e: "network_error"])))(flaky)()
        assert 1 == flaky.calls
        assert not getattr(exc, "__notes__", None)


def test_nested_layers_do_not_multiply_attempts() -> None:
    """A 3-attempt layer inside a 3-attempt layer calls the inner function 3 times, not 9."""
    inner_calls = 0
    outer_calls = 0

    @retrykit.retry(THREE)
    def inner() -> None:
        nonlocal inner_calls
        inner_calls += 1
        raise ConnectionResetError("down")

    @retrykit.retry(THREE)
    def outer() -> None:
        nonlocal outer_calls
        outer_calls += 1
        inner()

    with no_wait(), record() as rec, pytest.raises(ConnectionResetError) as info:
        outer()
    assert (3, 1) == (inner_calls, outer_calls)
    assert 1 == len(info.value.__notes__)
    assert ["inner"] == [e.operation.rsplit(".", 1)[-1] for e in rec.gave_up]


def test_nesting_through_a_wrapping_exception() -> None:
    """An outer layer also lets through a new exception raised *from* one an inner layer gave up."""
    calls = 0

    @retrykit.retry(THREE)
    def inner() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError

    @retrykit.retry(THREE)
    def outer() -> None:
        try:
            inner()
        except ConnectionError as err:
            raise RuntimeError("wrapped") from err

    with no_wait(), pytest.raises(RuntimeError):
        outer()
    assert 3 == calls


def test_reraised_instance_from_an_earlier_call_is_retried_again() -> None:
    """An exception instance given up on in one call is retried afresh when raised by a new call."""
    shared = ConnectionResetError("cached")
    calls = 0

    @retrykit.retry(THREE)
    def fn() -> None:
        nonlocal calls
        calls += 1
        raise shared

    with no_wait():
        for _ in range(2):
            with pytest.raises(ConnectionResetError):
                fn()
    assert 6 == calls


def test_inner_deadline_never_exceeds_outer() -> None:
    """An inner layer stops before sleeping past the outer layer's deadline."""
    slow = Policy(strategies={NET: Strategy.delay(4, max_retries=10)})

    @retrykit.retry(slow)
    def inner() -> None:
        raise ConnectionResetError

    @retrykit.retry(Policy(deadline=10))
    def outer() -> None:
        inner()

    with no_wait(), record() as rec, pytest.raises(ConnectionResetError):
        outer()
    assert [4.0, 4.0] == rec.sleeps
    assert StopReason.DEADLINE == rec.gave_up[0].reason


def test_remaining_reports_the_enclosing_deadline() -> None:
    """retrykit.remaining() is None outside, and the time left inside a deadline."""
    seen: list[float | None] = []

    @retrykit.retry(Policy(deadline=30))
    def fn() -> None:
        seen.append(retrykit.remaining())

    assert retrykit.remaining() is None
    fn()
    assert seen[0] is not None
    assert 29 < seen[0] <= 30


def test_scope_propagates_to_copied_context_threads() -> None:
    """A thread run in a copy of the context sees the enclosing deadline."""
    seen: list[float | None] = []

    @retrykit.retry(Policy(deadline=30))
    def fn() -> None:
        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(lambda: seen.append(retrykit.remaining()),))
        thread.start()
        thread.join()

    fn()
    assert seen[0] is not None


def test_first_success_builds_no_tenacity_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call that succeeds at once never builds tenacity objects."""

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tenacity state built on the fast path")

    monkeypatch.setattr(tenacity, "RetryCallState", forbidden)
    monkeypatch.setattr(tenacity, "Future", forbidden)
    assert 5 == retrykit.retry(THREE)(lambda: 5)()


def test_callbacks_receive_events_and_their_errors_are_contained() -> None:
    """on_retry, on_giveup and on_success get events; a raising callback breaks nothing."""
    seen: list[str] = []

    def boom(event: Any) -> None:
        raise RuntimeError("callback bug")

    policy = THREE.replace(
        on_retry=lambda e: seen.append(f"retry {e.attempt}"),
        on_success=lambda e: seen.append(f"success {e.attempts}"),
        on_giveup=boom,
    )
    with no_wait():
        assert "ok" == retrykit.retry(policy)(Flaky(ConnectionResetError()))()
        assert "ok" == retrykit.retry(policy)(Flaky())()
        with pytest.raises(ConnectionResetError):
            retrykit.retry(policy)(Flaky(*(ConnectionResetError() for _ in range(3))))()
    assert ["retry 1", "success 2", "success 1", "retry 1", "retry 2"] == seen


def test_async_callback_on_a_plain_function_is_refused() -> None:
    """An async callback cannot run for a plain function: refused at decoration."""

    async def cb(event: Any) -> None:
        pass

    with pytest.raises(ConfigError, match="async callback"):
        retrykit.retry(THREE.replace(on_retry=cb))(lambda: None)


def test_attempt_timeout_on_a_plain_function_warns() -> None:
    """attempt_timeout cannot be enforced for plain functions, and the decorator says so."""
    with pytest.warns(RuntimeWarning, match="not enforced") as warned:
        retrykit.retry(THREE.replace(attempt_timeout=1))(lambda: None)
    assert warned[0].filename == __file__


@pytest.mark.parametrize(
    ("target", "error"),
    [
        (5, ConfigError),
        (int, TypeError),
    ],
)
def test_bad_targets_are_refused(target: Any, error: type[Exception]) -> None:
    """Non-callables and classes are refused at decoration with a clear message."""
    with pytest.raises(error):
        retrykit.retry(THREE)(target)


def _gen() -> Iterator[int]:
    yield 1


async def _agen() -> AsyncIterator[int]:
    yield 1


class _GenCall:
    def __call__(self) -> Iterator[int]:
        yield 1


class _AsyncGenCall:
    async def __call__(self) -> AsyncIterator[int]:
        yield 1


@pytest.mark.parametrize(
    "fn",
    [_gen, _agen, _GenCall(), _AsyncGenCall(), functools.partial(_gen), functools.partial(_AsyncGenCall())],
)
def test_generators_are_refused(fn: Any) -> None:
    """Generators (sync or async; functions, partials, __call__) are refused: a yield cannot be undone."""
    with pytest.raises(ConfigError, match="generator"):
        retrykit.retry(fn)


def test_two_retry_decorators_are_refused() -> None:
    """Stacking retrykit on retrykit or on tenacity is two retry authorities: refused."""
    with pytest.raises(ConfigError, match="two retry authorities"):
        retrykit.retry(retrykit.retry(lambda: None))
    with pytest.raises(ConfigError, match="two retry authorities"):
        retrykit.retry(tenacity.retry(lambda: None))


@pytest.mark.parametrize(
    "policy",
    ["nope", Strategy.backoff(), tenacity.stop_after_attempt(3), 3.5],
    ids=["unknown-preset", "strategy", "tenacity-object", "number"],
)
def test_bad_policy_arguments_are_refused(policy: Any) -> None:
    """A wrong first argument fails at decoration, naming it."""
    with pytest.raises(ConfigError) as info:
        retrykit.retry(policy)(lambda: None)
    assert "policy" == info.value.argument


def test_block_form_retries_a_block() -> None:
    """``for attempt in attempts(policy): with attempt:`` retries until the block succeeds."""
    flaky = Flaky(ConnectionResetError(), ConnectionResetError())
    numbers = []
    with no_wait(), record() as rec:
        for attempt in retrykit.attempts(THREE, operation="block"):
            with attempt:
                numbers.append(attempt.number)
                flaky()
    assert [1, 2, 3] == numbers
    assert [3] == [e.attempts for e in rec.successes]


def test_block_form_gives_up_with_the_original() -> None:
    """The block form lets the original exception out when it gives up."""
    with no_wait(), pytest.raises(ConnectionResetError) as info:
        for attempt in retrykit.attempts(THREE):
            with attempt:
                raise ConnectionResetError("down")
    assert "after 3 attempts" in info.value.__notes__[0]


def test_no_retry_and_disabled_make_one_attempt() -> None:
    """testing.no_retry() and configure(enabled=False) both make exactly one attempt."""
    flaky = Flaky(ConnectionResetError(), ConnectionResetError())
    with no_retry(), pytest.raises(ConnectionResetError) as info:
        retrykit.retry(THREE)(flaky)()
    assert "testing_no_retry" in info.value.__notes__[0]
    retrykit.configure(enabled=False)
    flaky = Flaky(ConnectionResetError())
    with pytest.raises(ConnectionResetError) as info:
        retrykit.retry(THREE)(flaky)()
    assert (1, None) == (flaky.calls, getattr(info.value, "__notes__", None))


def test_given_up_exceptions_still_pickle() -> None:
    """The original exception, annotated and marked, survives pickling with its note."""
    with no_wait(), pytest.raises(ConnectionResetError) as info:
        retrykit.retry(THREE)(Flaky(*(ConnectionResetError("x") for _ in range(3))))()
    clone = pickle.loads(pickle.dumps(info.value))
    assert info.value.__notes__ == clone.__notes__


def test_arguments_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Argument values of the retried call appear in no log line."""

    @retrykit.retry(THREE)
    def login(password: str) -> None:
        raise ConnectionResetError

    with no_wait(), caplog.at_level("DEBUG", logger="retrykit"), pytest.raises(ConnectionError):
        login("hunter2-secret")
    assert caplog.records
    assert "hunter2-secret" not in caplog.text
