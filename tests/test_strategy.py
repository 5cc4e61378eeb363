"""Strategies: delay math, jitter bounds that survive the cap, and validation."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrykit import ConfigError, Decision, Jitter, Strategy
from retrykit._strategy import LONGEST_DELAY


def test_backoff_without_jitter_is_exact() -> None:
    """base * factor ** (n-1), capped at max_delay."""
    strategy = Strategy.backoff(5, 40, max_retries=6, jitter="none")
    assert [5, 10, 20, 40, 40, 40] == [strategy.delay_for(n) for n in range(1, 7)]


def test_delay_is_fixed_unless_a_factor_is_given() -> None:
    """RETRY_WITH_DELAY waits base_delay each time by default; a factor makes it grow."""
    assert [2, 2, 2] == [Strategy.delay(2).delay_for(n) for n in (1, 2, 3)]
    grows = Strategy.delay(300, backoff_factor=2, max_delay=1800)
    assert [300, 600, 1200] == [grows.delay_for(n) for n in (1, 2, 3)]


def test_immediately_never_waits() -> None:
    """RETRY_IMMEDIATELY's delay is 0 (or the min_delay floor)."""
    assert 0 == Strategy.immediately().delay_for(3)
    assert 0.5 == Strategy.immediately(min_delay=0.5).delay_for(1)


def test_huge_retry_numbers_do_not_overflow() -> None:
    """A retry number in the thousands gives max_delay, not an OverflowError."""
    assert 60 == Strategy.backoff(1, 60, max_retries=10_000, jitter="none").delay_for(5000)


@pytest.mark.parametrize("kind", list(Jitter))
@given(retry=st.integers(1, 60), u=st.floats(0, 1, exclude_max=True), prev=st.none() | st.floats(0.1, 100))
def test_delay_stays_in_its_documented_range(kind: Jitter, retry: int, u: float, prev: float | None) -> None:
    """Every jitter kind's delay lies within delay_range(), between min_delay and max_delay."""
    strategy = Strategy.backoff(0.5, 30, max_retries=100, jitter=kind, min_delay=0.1)
    delay = strategy.delay_for(retry, previous=prev, rng=lambda: u)
    low, high = strategy.delay_range(retry)
    assert 0.1 <= delay <= 30
    if kind is not Jitter.DECORRELATED:
        assert low <= delay <= high


@pytest.mark.parametrize("kind", [Jitter.FULL, Jitter.EQUAL, Jitter.DECORRELATED])
def test_jitter_does_not_collapse_at_the_cap(kind: Jitter) -> None:
    """Far past the cap, jittered delays stay spread out: at most 1 % equal the cap."""
    import random

    rng = random.Random(7).random
    strategy = Strategy.backoff(1, 10, max_retries=100, jitter=kind)
    delays = []
    previous = None
    for _ in range(2000):
        previous = strategy.delay_for(50, previous=previous, rng=rng)
        delays.append(previous)
    at_cap = sum(1 for d in delays if d == 10) / len(delays)
    assert at_cap <= 0.01
    assert max(delays) - min(delays) > 3


def test_retry_after_replaces_the_computed_delay() -> None:
    """A Retry-After is honoured as a floor, with up to 10 % spread when the strategy jitters."""
    plain = Strategy.delay(300, jitter="none")
    jittered = Strategy.backoff(1, 10, jitter="full")
    assert 7 == plain.delay_for(1, retry_after=7)
    assert 7 <= jittered.delay_for(1, retry_after=7, rng=lambda: 0.99) <= 7.7
    assert (
        2.5
        == Strategy.backoff(1, 10, jitter="none", honor_retry_after=False).delay_for(2, retry_after=100) + 0.5
    )


def test_delays_accept_timedeltas() -> None:
    """Durations may be timedeltas."""
    assert 300 == Strategy.delay(timedelta(minutes=5)).base_delay


def test_jitter_true_means_full() -> None:
    """``jitter=True`` (Celery's spelling) is full jitter."""
    assert Jitter.FULL == Strategy.backoff(jitter=True).jitter


def test_defaults_per_decision() -> None:
    """Backoff doubles with full jitter; delay is fixed without jitter."""
    assert (2.0, Jitter.FULL) == (Strategy.backoff().backoff_factor, Strategy.backoff().jitter)
    assert (1.0, Jitter.NONE) == (Strategy.delay(1).backoff_factor, Strategy.delay(1).jitter)


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: Strategy.backoff(-1), "base_delay"),
        (lambda: Strategy.backoff(math.nan), "base_delay"),
        (lambda: Strategy.backoff(1, math.inf), "max_delay"),
        (lambda: Strategy.backoff(5, 1), "max_delay"),
        (lambda: Strategy.backoff(1, 10, min_delay=20), "min_delay"),
        (lambda: Strategy.backoff(jitter="wobbly"), "jitter"),
        (lambda: Strategy.backoff(backoff_factor=0.5), "backoff_factor"),
        (lambda: Strategy.backoff(max_retries=0), "max_retries"),
        (lambda: Strategy.backoff(max_retries=2.5), "max_retries"),
        (lambda: Strategy.backoff(max_retries=True), "max_retries"),
        (lambda: Strategy(Decision.NO_RETRY, max_retries=3), "max_retries"),
        (lambda: Strategy(Decision.RETRY_IMMEDIATELY, base_delay=1), "base_delay"),
        (lambda: Strategy("sometimes"), "decision"),
        (lambda: Strategy.backoff(base_delay="1"), "base_delay"),
        (lambda: Strategy.custom(), "wait"),
        (lambda: Strategy.custom(wait=5), "wait"),
        (lambda: Strategy(Decision.RETRY_WITH_BACKOFF, max_retries=None), "max_retries"),
    ],
)
def test_bad_strategies_fail_at_construction(build: Any, argument: str) -> None:
    """Invalid numbers and contradictions fail when built, naming argument, rule and fix."""
    with pytest.raises(ConfigError) as info:
        build()
    assert argument == info.value.argument
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: Strategy(base_delay=1e308, max_delay=1e308), "base_delay"),
        (lambda: Strategy.delay(timedelta(days=200000)), "base_delay"),
        (lambda: Strategy.backoff(1, 1e12), "max_delay"),
        (lambda: Strategy.immediately(min_delay=timedelta(days=400)), "min_delay"),
        (lambda: Strategy.custom(stop=lambda s: True, max_delay=1e10), "max_delay"),
    ],
)
def test_delays_longer_than_a_year_are_refused(build: Any, argument: str) -> None:
    """A delay no timestamp can hold (1e308 s, 200000 days) is refused when the strategy is built."""
    with pytest.raises(ConfigError, match="longer than a year") as info:
        build()
    assert argument == info.value.argument


@pytest.mark.parametrize("retry", [1, 40, 10_000])
def test_the_longest_delay_is_a_representable_date(retry: int) -> None:
    """Every delay a strategy may wait, added to now, is a datetime and a timestamp (a Celery eta)."""
    strategy = Strategy.backoff(1, LONGEST_DELAY, max_retries=10_000, min_delay=LONGEST_DELAY)
    delay = strategy.delay_for(retry, retry_after=strategy.max_delay)
    eta = datetime.now(UTC) + timedelta(seconds=delay)
    assert datetime.fromtimestamp(eta.timestamp() + delay, UTC) > eta


@pytest.mark.parametrize(
    ("build", "argument", "says"),
    [
        (lambda: Strategy.immediately(base_delay=1), "base_delay", "sets base_delay itself"),
        (lambda: Strategy.immediately(decision="retry_with_delay"), "decision", "sets decision itself"),
        (lambda: Strategy.immediately(jiter="full"), "jiter", "did you mean 'jitter'"),
        (lambda: Strategy.delay(1, decision="no_retry"), "decision", "sets decision itself"),
        (lambda: Strategy.delay(1, wait=lambda s: 1.0), "wait", "not an option of Strategy.delay"),
        (lambda: Strategy.backoff(1, max_dleay=5), "max_dleay", "did you mean 'max_delay'"),
        (lambda: Strategy.backoff(decision="retry_immediately"), "decision", "sets decision itself"),
        (lambda: Strategy.no_retry(max_retries=3), "max_retries", "sets max_retries itself"),
        (lambda: Strategy.no_retry(jitter="full"), "jitter", "not an option of Strategy.no_retry"),
        (
            lambda: Strategy.custom(wait=lambda s: 1.0, decision="no_retry"),
            "decision",
            "sets decision itself",
        ),
        (
            lambda: Strategy.custom(wait=lambda s: 1.0, retries=3),
            "retries",
            "not an option of Strategy.custom",
        ),
        (lambda: Strategy(base_dealy=2), "base_dealy", "did you mean 'base_delay'"),
        (lambda: Strategy("retry_with_delay", decision="no_retry"), "decision", "given twice"),
    ],
)
def test_every_bad_keyword_of_every_constructor_is_a_config_error(
    build: Any, argument: str, says: str
) -> None:
    """A keyword a constructor does not take is a ConfigError naming it, never Python's TypeError."""
    with pytest.raises(ConfigError, match=says) as info:
        build()
    assert argument == info.value.argument


def test_config_error_pickles_and_is_both_type_and_value_error() -> None:
    """ConfigError survives pickling and is caught by ``except ValueError`` and ``TypeError``."""
    err = ConfigError("base_delay", -1, "must be 0 or more", "pass a duration 0 or more")
    clone = pickle.loads(pickle.dumps(err))
    assert (str(err), clone.argument) == (str(clone), "base_delay")
    assert isinstance(err, ValueError)
    assert isinstance(err, TypeError)


# --------------------------------------------------------------------------- at the edges


@pytest.mark.parametrize(
    ("value", "jitter"), [(False, Jitter.NONE), (None, Jitter.NONE), (True, Jitter.FULL)]
)
def test_jitter_takes_booleans_and_none(value: Any, jitter: Jitter) -> None:
    """Jitter.parse: True is full jitter (as in Celery), False and None are none."""
    assert jitter is Jitter.parse(value)


@pytest.mark.parametrize("strategy", [Strategy.immediately(max_retries=2), Strategy.no_retry()])
def test_strategies_without_waits_have_zero_delays(strategy: Strategy) -> None:
    """Immediate retries and no retries: a zero nominal delay and a zero range."""
    assert (0.0, (0.0, 0.0)) == (strategy.nominal(1), strategy.delay_range(1))
