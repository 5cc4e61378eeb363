"""The decision at its edges: verdict texts, one-layer marks, replay safety, raising stops, caps."""

from __future__ import annotations

from typing import Any

import pytest

import retrykit
from retrykit import Classification, Classifier, ErrorCategory, Policy, Strategy, _scope
from retrykit._decision import MARK, PASS, RETRY, Verdict, gave_up_inside
from retrykit.testing import no_wait

NETWORK = {ErrorCategory.NETWORK_ERROR: Strategy.delay(5.0, max_retries=3, jitter=False)}


@pytest.mark.parametrize(
    ("action", "text"), [(PASS, "<Verdict pass delay=0"), (RETRY, "<Verdict retry delay=0")]
)
def test_a_verdict_shows_its_action_and_delay(action: int, text: str) -> None:
    """A verdict's repr names its action, delay, reason and category."""
    assert repr(Verdict(action)).startswith(text)


class _HostileDict(Exception):
    @property  # type: ignore[misc]
    def __dict__(self) -> Any:  # type: ignore[override]
        raise RuntimeError("hostile")


def _chain(depth: int, marked: Any) -> BaseException:
    """*depth* exceptions raised from one another; the deepest carries *marked* as its mark."""
    deepest = ValueError("deepest")
    deepest.__dict__[MARK] = marked
    exc: BaseException = deepest
    for _ in range(depth - 1):
        outer = ValueError("wrapper")
        outer.__cause__ = exc
        exc = outer
    return exc


OUTER: _scope.Scope = (None, None, "outer")
INNER: _scope.Scope = (OUTER, None, None)


@pytest.mark.parametrize(
    ("depth", "marked", "inside"),
    [(1, INNER, True), (5, OUTER, True), (40, OUTER, False), (1, (None, 1.0, "other"), False)],
    ids=["nested-scope", "five-links-down", "beyond-32-links", "another-scope"],
)
def test_a_give_up_inside_is_found_through_nested_scopes_and_32_links(
    depth: int, marked: Any, inside: bool
) -> None:
    """A mark of a scope nested in this one counts; the cause chain is followed 32 links deep, no further."""
    assert inside is gave_up_inside(_chain(depth, marked), OUTER)


def test_an_exception_with_a_hostile_dict_was_not_given_up_inside() -> None:
    """An exception whose __dict__ raises carries no mark."""
    assert gave_up_inside(_HostileDict(), OUTER) is False


def _unsafe(exc: BaseException) -> Classification:
    return Classification(ErrorCategory.NETWORK_ERROR, "sent, then reset", None, "unsafe", replay_unsafe=True)


@pytest.mark.parametrize(("idempotent", "calls"), [(False, 1), (True, 2)])
def test_a_replay_unsafe_failure_is_retried_only_when_idempotent(idempotent: bool, calls: int) -> None:
    """A failure after the request may have been applied is retried only for an idempotent call."""
    seen = [0]

    def fn() -> str:
        seen[0] += 1
        if seen[0] == 1:
            raise ConnectionResetError
        return "ok"

    policy = Policy(strategies=NETWORK, classifier=Classifier([_unsafe]), idempotent=idempotent)
    with no_wait():
        if idempotent:
            assert "ok" == retrykit.retry(policy)(fn)()
        else:
            with pytest.raises(ConnectionResetError) as caught:
                retrykit.retry(policy)(fn)()
            assert "not_idempotent" in caught.value.__notes__[0]
    assert calls == seen[0]


def test_a_stop_condition_that_raises_stops() -> None:
    """A tenacity stop condition that raises is taken as 'stop': never retry blindly."""
    seen = [0]

    def fn() -> None:
        seen[0] += 1
        raise ConnectionResetError

    def broken(state: Any) -> bool:
        raise ZeroDivisionError

    wrapped = retrykit.retry(Policy(strategies=NETWORK), stop=broken)(fn)
    with no_wait(), pytest.raises(ConnectionResetError):
        wrapped()
    assert (1, "stop_condition") == (seen[0], wrapped.statistics["stop_reason"])  # type: ignore[attr-defined]
