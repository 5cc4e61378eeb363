"""
Type-checked, never executed: the public API keeps signatures through the decorator.

``mypy --strict --warn-unused-ignores tests/typing/api.py`` and ``pyright tests/typing/api.py``
(strict, ``[tool.pyright]`` in pyproject.toml) must pass. A line that is a mistake the type
checkers must reject carries ``# type: ignore[...]`` for mypy and ``# pyright: ignore[...]`` for
pyright; each checker fails on an ignore it does not need, so each mistake is caught by both.
"""

from __future__ import annotations

from datetime import timedelta

import tenacity

import retrykit
import retrykit_celery as rkc
from retrykit import (
    CircuitBreaker,
    Classifier,
    Decision,
    ErrorCategory,
    Jitter,
    Policy,
    RetryBudget,
    Rule,
    Strategy,
)
from retrykit.events import GaveUp, RetryScheduled, Succeeded


@retrykit.retry
def bare(x: int, *, name: str = "") -> str:
    return name * x


@retrykit.retry("http", max_attempts=3)
def preset(x: int) -> int:
    return x


@retrykit.retry(Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.backoff(0.5, 5)}))
async def coroutine(url: str) -> bytes:
    return url.encode()


class Client:
    @retrykit.retry("http")
    def method(self, key: str) -> int:
        return len(key)


async def use() -> None:
    a: str = bare(2, name="x")
    b: int = preset(1)
    c: bytes = await coroutine("u")
    d: int = Client().method("k")
    bare("two")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    preset(1, 2)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    e: str = await coroutine("u")  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    del a, b, c, d, e
    f: int = preset.retry_with(max_attempts=2)(1)
    g: bytes = await coroutine.retry_with(deadline=5)("u")
    h: object = preset.statistics["attempt_number"]
    preset.retry_with(max_attempts=2)("x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Client().method(3)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    i: int = Client().method.retry_with(max_attempts=1)("k")
    del f, g, h, i
    retrykit.retry("http", max_atempts=3)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
    Policy().replace(max_atempts=3)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    Policy(on_giveup=lambda event: event.reasn)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownLambdaType, reportUnknownMemberType]
    Policy(strategies={"network_eror": Strategy()})  # type: ignore[dict-item]  # pyright: ignore[reportCallIssue, reportArgumentType]
    built: dict[ErrorCategory, Strategy] = {ErrorCategory.NETWORK_ERROR: Strategy()}
    Policy(strategies=built)
    preset.retry_with(max_atempts=2)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    Policy(strategies={"api_rate_limit": Strategy(), ErrorCategory.DATA_ERROR: Strategy.no_retry()})
    Policy(on_giveup=lambda event: print(event.reason.value), deadline=30, classify_result="http")
    Policy().replace(strategies={"network_error": Strategy.immediately(2)}, max_attempts=3)
    for attempt in retrykit.attempts("http"):
        with attempt:
            n: int = attempt.number
            del n


def on_retry(event: RetryScheduled) -> None:
    print(event.delay, event.decision.value, event.classification.category.value)


def on_giveup(event: GaveUp) -> None:
    print(event.reason.value, event.attempts)


async def on_success(event: Succeeded) -> None:
    print(event.attempts, event.elapsed)


def callbacks() -> None:
    """Callbacks get their event's type; one written for another event is an error."""
    Policy(on_retry=on_retry, on_giveup=on_giveup, on_success=on_success)
    retrykit.retry("http", on_retry=lambda event: print(event.delay))
    retrykit.attempts("http", on_giveup=lambda event: print(event.reason))
    Policy(on_giveup=on_retry)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
    Policy().replace(on_success=on_giveup)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Policy(on_retry=lambda event: event.attempts)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownLambdaType, reportUnknownMemberType]


def keywords() -> None:
    """Every keyword is a typed parameter: a misspelt one or a wrong type is an error."""
    retrykit.attempts("http", max_attempts=3, deadline=timedelta(seconds=30))
    retrykit.attempts("http", max_atempts=3)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    retrykit.retry("http", deadline="30")  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    Policy(max_attempts="3")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    Policy(classify_result="json")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]
    Policy(budget="payments", breaker=CircuitBreaker("payments"), classify_result="http", idempotent=True)
    Policy().replace(idempotent="yes")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def configure() -> None:
    """configure() takes the settings by name and type."""
    retrykit.configure(network_max_retries=5, default_base_delay=0.5, default_category="permanent_error")
    retrykit.configure(enabled=False, deadline=timedelta(minutes=1), max_attempts=4, stats_redis_url=None)
    retrykit.configure(
        log_level="INFO", data_decision="no_retry", rate_limit_decision=Decision.RETRY_WITH_DELAY
    )
    retrykit.configure(default_category=ErrorCategory.NETWORK_ERROR, stats_retention_hours=48)
    retrykit.configure(network_max_retrie=5)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    retrykit.configure(max_attempts="3")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    retrykit.configure(default_category="network")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    retrykit.configure(log_level="LOUD")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    retrykit.configure(network_decision="sometimes")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def strategies() -> None:
    """Strategy's constructors and replace() take its options by name and type."""
    Strategy.backoff(0.5, 10, jitter="equal", min_delay=0.1, honor_retry_after=False)
    Strategy.delay(timedelta(seconds=2), max_delay=10, backoff_factor=2, jitter=Jitter.NONE)
    Strategy.immediately(2, jitter=False)
    Strategy.custom(wait=tenacity.wait_fixed(1), base_delay=1, queue="slow")
    Strategy().replace(decision="no_retry", max_retries=0)
    Strategy.backoff(0.5, 10, jiter="full")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    Strategy.delay(1, jitter="wobbly")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Strategy().replace(max_retry=2)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    Strategy().replace(decision="retry_later")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def categories() -> None:
    """Where a category is expected, the enum and its values are accepted, and a typo is an error."""
    costs: dict[ErrorCategory, int] = {ErrorCategory.NETWORK_ERROR: 2}
    RetryBudget("payments", costs={"network_error": 2, ErrorCategory.SYSTEM_ERROR: 3})
    RetryBudget.quota("payments", 100, costs={"network_error": 2, "system_error": 3})
    RetryBudget("payments", costs=costs)
    RetryBudget("payments", costs={"network_eror": 2})  # type: ignore[dict-item]  # pyright: ignore[reportArgumentType]
    CircuitBreaker("payments", counted=["network_error", ErrorCategory.SYSTEM_ERROR])
    CircuitBreaker("payments", counted=["network"])  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]
    Classifier([Rule("api_rate_limit", status=429)], default="permanent_error")
    Rule("rate_limit", status=429)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    Classifier(default="temporary")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def celery_tasks() -> None:
    """The Celery binding's keywords are Celery's task options and retrykit's own."""
    rkc.task("tracking", bind=True, queue="tracking", acks_late=True, time_limit=30)
    rkc.task_options("http", retrykit_lease=10.0, retrykit_guard=False, name="fetch")
    rkc.task("http", autoretry_for=(OSError,))  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    rkc.task_options("http", bnd=True)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    rkc.task("http", max_retries="3")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
