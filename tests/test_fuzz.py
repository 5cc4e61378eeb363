"""Fuzzing: whatever the exception, rule or custom wait does, the caller gets its own exception."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import retrykit
from retrykit import Classification, ErrorCategory, Policy, Strategy
from retrykit.testing import no_wait

CATEGORIES = list(ErrorCategory)


def _hostile_class(traits: frozenset[str]) -> type[Exception]:
    """An exception class with the given hostile traits (what SDKs and buggy code really do)."""
    namespace: dict[str, Any] = {}
    if "getattr_none" in traits:
        namespace["__getattr__"] = lambda self, name: None
    if "getattr_raises" in traits:

        def getattr_raises(self: Any, name: str) -> Any:
            raise RuntimeError(f"no {name}")

        namespace["__getattr__"] = getattr_raises
    if "setattr_raises" in traits:

        def setattr_raises(self: Any, name: str, value: Any) -> None:
            raise AttributeError("read-only")

        namespace["__setattr__"] = setattr_raises
    if "str_raises" in traits:

        def str_raises(self: Any) -> str:
            raise ValueError("no text")

        namespace["__str__"] = str_raises
    if "status" in traits:
        namespace["status_code"] = property(lambda self: "503")
    if "response" in traits:
        namespace["response"] = property(lambda self: {"headers": {"Retry-After": "1e300"}})
    if "retry_after" in traits:
        namespace["retry_after"] = float("inf")
    return type("Hostile", (ConnectionError,), namespace)


TRAITS = st.frozensets(
    st.sampled_from(
        [
            "getattr_none",
            "getattr_raises",
            "setattr_raises",
            "str_raises",
            "status",
            "response",
            "retry_after",
        ]
    )
)
RULE_RESULTS = st.one_of(
    st.none(),
    st.sampled_from(CATEGORIES),
    st.sampled_from([c.value for c in CATEGORIES] + ["network", "", "NETWORK_ERROR", "x" * 200]),
    st.integers(),
    st.builds(lambda c: Classification(c, "r"), st.sampled_from(["network_error", 42, None])),
    st.just("raise"),
)
WAITS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["soon", None, [], "raise"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traits=TRAITS, rule_result=RULE_RESULTS, wait=WAITS, notes=st.sampled_from([None, (), "n", ["x"]]))
def test_the_caller_always_gets_its_own_exception(
    traits: frozenset[str], rule_result: Any, wait: Any, notes: Any
) -> None:
    """A hostile exception, a broken rule and a broken custom wait never replace the original."""
    cls = _hostile_class(traits)
    error = cls("boom")
    if notes is not None:
        object.__getattribute__(error, "__dict__")["__notes__"] = notes

    def rule(exc: BaseException) -> Any:
        if rule_result == "raise":
            raise KeyError("rule bug")
        return rule_result

    def custom_wait(state: Any) -> Any:
        if wait == "raise":
            raise ZeroDivisionError
        return wait

    strategy = Strategy.custom(wait=custom_wait, max_retries=2, max_delay=10)
    policy = Policy(
        classifier=retrykit.Classifier([rule]),
        strategies=dict.fromkeys(CATEGORIES, strategy),
        max_attempts=3,
    )
    calls = 0

    @retrykit.retry(policy)
    def fail() -> None:
        nonlocal calls
        calls += 1
        raise error

    with no_wait(), pytest.raises(BaseException) as caught:
        fail()
    assert caught.value is error
    assert 1 <= calls <= 3


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.integers()))
def test_any_retry_after_is_bounded(value: Any) -> None:
    """No Retry-After value, however absurd, raises or waits past the category's max_delay."""

    class Throttled(Exception):
        status = 429
        retry_after = value

    rate = Strategy.delay(1, max_retries=2, max_delay=30)
    with no_wait(), retrykit.testing.record() as rec, contextlib.suppress(Throttled):
        retrykit.retry(Policy(strategies={"api_rate_limit": rate}))(_raiser(Throttled()))()
    assert all(0 <= s <= 30 and math.isfinite(s) for s in rec.sleeps)


def _raiser(exc: BaseException) -> Any:
    def fn() -> None:
        raise exc

    return fn


@settings(max_examples=200, deadline=None)
@given(
    category=st.sampled_from([*CATEGORIES, "temporary_error", "nonsense", 7]),
    hint=st.one_of(
        st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=8)
    ),
)
def test_any_result_rule_answer_keeps_the_call_alive(category: Any, hint: Any) -> None:
    """A result rule returning any Classification never raises into the call or sleeps forever."""
    policy = Policy(
        strategies={c: Strategy.delay(1, max_retries=1, max_delay=5) for c in CATEGORIES},
        classify_result=lambda result: Classification(category, "r", hint),
    )
    with no_wait(), retrykit.testing.record() as rec:
        assert "value" == retrykit.retry(policy)(lambda: "value")()
    assert all(0 <= s <= 5 for s in rec.sleeps)
