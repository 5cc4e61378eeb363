"""Classification stays bounded: nested and huge exception groups, slow-free and recursion-free."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory

ExceptionGroup: Any = getattr(builtins, "ExceptionGroup", None)
needs_groups = pytest.mark.skipif(ExceptionGroup is None, reason="exception groups need Python 3.11+")


def _nested(leaf: BaseException, depth: int) -> BaseException:
    group: BaseException = leaf
    for _ in range(depth):
        group = ExceptionGroup("g", [group])
    return group


@needs_groups
@pytest.mark.parametrize("depth", [1, 10, 496, 990])
def test_deeply_nested_groups_find_their_permanent_member(depth: int) -> None:
    """A permanent error at the bottom of a deep nest is found (no RecursionError, not retried)."""
    assert ErrorCategory.PERMANENT_ERROR == retrykit.classify(_nested(TypeError("bug"), depth)).category


@needs_groups
def test_a_huge_group_is_classified_within_its_bound() -> None:
    """90,300 members: at most 1,000 are looked at; the most severe seen so far wins."""
    from retrykit._classify import GROUP_MEMBERS

    def group(before: int) -> BaseException:
        members = [ConnectionResetError()] * before + [ValueError("bad")] + [OSError()] * 89_799
        return ExceptionGroup("g", members)

    assert 1000 == GROUP_MEMBERS
    assert ErrorCategory.DATA_ERROR == retrykit.classify(group(500)).category
    # the last member looked at
    assert ErrorCategory.DATA_ERROR == retrykit.classify(group(GROUP_MEMBERS - 1)).category
    # one member further, the data error is never looked at: the bound holds, not a time limit
    assert ErrorCategory.NETWORK_ERROR == retrykit.classify(group(GROUP_MEMBERS)).category


@needs_groups
def test_a_deeply_nested_group_is_retried_no_more_than_its_member_allows() -> None:
    """The retried call sees the member's category: a nested permanent error fails at once."""
    calls = 0

    @retrykit.retry
    def fail() -> None:
        nonlocal calls
        calls += 1
        raise _nested(TypeError("bug"), 496)

    with pytest.raises(ExceptionGroup):
        fail()
    assert 1 == calls


def test_a_slow_rule_is_reported_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule that takes long is named in one warning, however often it runs."""
    from retrykit import _classify

    monkeypatch.setattr(_classify, "SLOW_RULE", 0.0)
    monkeypatch.setattr(_classify, "_slow_rules", set())

    def sluggish(exc: BaseException) -> None:
        return None

    classifier = retrykit.Classifier([sluggish])
    for _ in range(5):
        classifier.classify(ConnectionResetError())
    lines = [r for r in caplog.records if "sluggish" in r.getMessage()]
    assert 1 == len(lines)
