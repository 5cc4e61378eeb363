"""The classifier at its edges: rule objects, rules put first, odd groups and strings, hints deeper down."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from retrykit import Classification, Classifier, ErrorCategory, Rule, _events
from retrykit._classify import _VISIT, _Step
from retrykit.testing import record

ExceptionGroup: Any = getattr(builtins, "ExceptionGroup", None)
needs_groups = pytest.mark.skipif(ExceptionGroup is None, reason="exception groups need Python 3.11+")


class _ObjectRule:
    """A rule object (name and match) that answers *answer* for every exception."""

    def __init__(self, answer: Any) -> None:
        self.name = "object-rule"
        self.answer = answer

    def match(self, exc: BaseException) -> Any:
        return self.answer


@pytest.fixture
def failures() -> Any:
    """The RuleFailed events emitted during the test."""
    with record() as recorder:
        yield recorder


def test_a_rule_object_is_used_as_it_is() -> None:
    """An object with name and match() is a rule: its classification decides."""
    verdict = Classification(ErrorCategory.DATA_ERROR, "mine")
    assert verdict is Classifier([_ObjectRule(verdict)]).classify(OSError())


@pytest.mark.parametrize("answer", ["data_error", 3, ErrorCategory.DATA_ERROR])
def test_a_rule_object_answering_other_than_a_classification_has_failed(answer: Any, failures: Any) -> None:
    """A rule object answering other than a Classification or None has failed: the built-ins decide."""
    found = Classifier([_ObjectRule(answer)]).classify(ConnectionResetError())
    assert ErrorCategory.NETWORK_ERROR == found.category
    said = [(e.rule, e.rule_error) for e in failures.events if isinstance(e, _events.RuleFailed)]
    assert [("object-rule", "TypeError")] == said


def test_rules_added_with_with_rules_come_first() -> None:
    """with_rules() puts its rules before the classifier's own, keeping its default and built-ins."""
    base = Classifier([Rule("data_error", types=KeyError)], default="permanent_error")
    both = base.with_rules(Rule("system_error", types=KeyError))
    assert (ErrorCategory.SYSTEM_ERROR, ErrorCategory.DATA_ERROR) == (
        both.classify(KeyError()).category,
        base.classify(KeyError()).category,
    )
    assert (ErrorCategory.PERMANENT_ERROR, True) == (both.default, both.builtin)


def test_explain_names_the_user_rule_that_decided() -> None:
    """explain() shows a user rule's verdict as a 'user rule' step on its link."""
    text = str(Classifier([Rule("data_error", types=KeyError, name="keys")]).explain(KeyError("k")))
    assert "user rule: " in text
    assert "[rule keys]" in text


def test_a_link_with_no_signal_reads_so() -> None:
    """A step that only records a visited link reads 'no signal'."""
    assert "no signal" == str(_Step(0, "KeyError", _VISIT, None))


class _Unprintable(ConnectionError):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_explain_survives_an_exception_whose_str_fails() -> None:
    """An exception whose str() raises is described by its class, with a placeholder for its text."""
    explanation = Classifier().explain(_Unprintable())
    assert "<str() failed>" in explanation.exception
    assert ErrorCategory.NETWORK_ERROR == explanation.classification.category


class _Hinted(Exception):
    retry_after = 2.5


def test_a_wait_hint_deeper_in_the_chain_is_kept() -> None:
    """A retryable verdict without a wait hint takes the first hint found further down the chain."""
    err = ConnectionResetError("reset")
    err.__cause__ = _Hinted("slow down")
    found = Classifier().classify(err)
    assert (ErrorCategory.NETWORK_ERROR, 2.5) == (found.category, found.retry_after)


def _odd_group(members: Any) -> BaseException:
    """A group whose members are not all exceptions (or, with None, cannot be listed)."""

    class OddGroup(ExceptionGroup):
        @property
        def exceptions(self) -> Any:  # type: ignore[override]
            if members is None:
                raise RuntimeError("hostile")
            return members

    return OddGroup("odd", [ValueError()])


@needs_groups
@pytest.mark.parametrize(
    ("members", "category"),
    [
        ([1, "x", KeyError()], ErrorCategory.DATA_ERROR),
        (None, ErrorCategory.TEMPORARY_ERROR),
    ],
    ids=["non-exception-members", "members-raise"],
)
def test_odd_groups_are_read_for_what_they_hold(members: Any, category: ErrorCategory) -> None:
    """Members that are not exceptions are skipped; a group whose members cannot be read counts as empty."""
    assert category == Classifier().classify(_odd_group(members)).category


@needs_groups
def test_two_groups_in_one_chain_share_one_member_bound() -> None:
    """A group caused by another group: both are looked into, the most severe member anywhere wins."""
    err = ExceptionGroup("outer", [ConnectionResetError()])
    err.__cause__ = ExceptionGroup("inner", [TypeError("bug")])
    found = Classifier().classify(err)
    assert ErrorCategory.PERMANENT_ERROR == found.category
