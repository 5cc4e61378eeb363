"""Scopes at their edges: the sooner deadline and the outer owner kept; no event loop is no trio."""

from __future__ import annotations

import pytest

from retrykit import _scope


@pytest.mark.parametrize(
    ("outer", "own", "expected"),
    [
        (_scope.Scope(None, 10.0, "celery"), 60.0, (10.0, "celery")),
        (_scope.Scope(None, 100.0, None), 5.0, (5.0, None)),
    ],
    ids=["outer-sooner", "own-sooner"],
)
def test_a_nested_scope_keeps_the_sooner_deadline_and_the_outer_owner(
    outer: _scope.Scope, own: float, expected: tuple[float, str | None]
) -> None:
    """A scope opened inside another ends at the sooner of the two deadlines and keeps the outer owner."""
    token = _scope._SCOPE.set(outer)
    try:
        parent, absolute, owner = _scope.scope(own, 0.0)
    finally:
        _scope._SCOPE.reset(token)
    assert (parent, absolute, owner) == (outer, *expected)


@pytest.mark.parametrize(("deadline", "absolute"), [(None, None), (3.0, 3.0)])
def test_a_scope_with_no_outer_one_has_its_own_deadline(
    deadline: float | None, absolute: float | None
) -> None:
    """Outside any retrying call, a scope's deadline is its own (or none)."""
    assert (None, absolute, None) == _scope.scope(deadline, 0.0)


def test_outside_an_event_loop_trio_is_not_running() -> None:
    """With trio imported but no loop running, the sleeper does not take trio's path."""
    pytest.importorskip("trio")
    assert _scope._on_trio() is False
