"""Another retry authority around a retrykit layer, seen at run time: one attempt here, a warning."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import backoff
import pytest
import stamina
import tenacity

import retrykit
from retrykit import Policy, Strategy
from retrykit.testing import no_wait

FOUR = Policy(strategies={"network_error": Strategy.immediately(3)})


@pytest.fixture
def inner() -> Any:
    """A retrykit function allowed four attempts, counting its calls."""
    calls: list[int] = []

    @retrykit.retry(FOUR)
    def fetch() -> None:
        calls.append(1)
        raise ConnectionResetError("down")

    fetch.calls = calls  # type: ignore[attr-defined]
    return fetch


@pytest.fixture
def stamina_testing() -> Iterator[None]:
    """stamina without waiting, three attempts."""
    stamina.set_testing(True, attempts=3)
    try:
        yield
    finally:
        stamina.set_testing(False)


def _tenacity(fn: Callable[[], None]) -> Callable[[], None]:
    return tenacity.retry(stop=tenacity.stop_after_attempt(3), sleep=lambda s: None, reraise=True)(fn)


def _backoff(fn: Callable[[], None]) -> Callable[[], None]:
    return backoff.on_exception(backoff.constant, ConnectionResetError, max_tries=3, interval=0)(fn)


def _stamina(fn: Callable[[], None]) -> Callable[[], None]:
    return stamina.retry(on=ConnectionResetError, attempts=3)(fn)


@pytest.mark.usefixtures("stamina_testing")
@pytest.mark.parametrize("outer", [_tenacity, _backoff, _stamina], ids=["tenacity", "backoff", "stamina"])
def test_an_outer_retry_loop_gets_one_attempt_per_try(
    inner: Any, outer: Callable[[Callable[[], None]], Callable[[], None]], caplog: pytest.LogCaptureFixture
) -> None:
    """3 outer tries around a 4-attempt retrykit function make 3 calls (not 12), with one warning."""
    wrapped = outer(inner)
    with no_wait(), pytest.raises(ConnectionResetError):
        wrapped()
    assert 3 == len(inner.calls)
    warnings = [r for r in caplog.records if "two retry authorities" in r.getMessage()]
    assert 1 == len(warnings)


def test_celery_autoretry_for_around_a_retrykit_helper(inner: Any) -> None:
    """A plain Celery task with autoretry_for is the authority: the helper makes one attempt per run."""
    celery = pytest.importorskip("celery")
    app = celery.Celery("authorities", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True

    # shared=False: a shared task would join every app finalized later in the session (test_celery's
    # task_cls=RetrykitTask app refuses its autoretry_for)
    @app.task(
        autoretry_for=(ConnectionResetError,),
        max_retries=2,
        retry_backoff=False,
        default_retry_delay=0,
        shared=False,
    )
    def job() -> None:
        inner()

    with no_wait():
        result = job.apply()
    assert "FAILURE" == result.state
    assert 3 == len(inner.calls)
