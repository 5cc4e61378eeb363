"""Unrecognised failures: bounded retries, counted by type, and a rule suggested to paste."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

import retrykit
from retrykit import Classifier, ErrorCategory, Policy, Strategy
from retrykit._analysis import from_counts
from retrykit._stats import fields_of
from retrykit.events import StopReason
from retrykit.testing import no_wait, record

TEMP = ErrorCategory.TEMPORARY_ERROR


class Flaky:
    """Raises the given exceptions one call after the other."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = errors
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        raise self.errors[min(self.calls, len(self.errors)) - 1]


class NobodyKnowsMe(Exception):
    """An exception whose class and message say nothing."""


def test_an_exception_nothing_recognises_is_unrecognised() -> None:
    """No rule or signal: temporary_error under the rule name "unrecognised", with the fix in the reason."""
    verdict = retrykit.classify(NobodyKnowsMe("zzz"))
    assert (TEMP, "unrecognised") == (verdict.category, verdict.rule)
    assert "add a rule" in verdict.reason


def test_a_default_given_is_the_users_word() -> None:
    """Classifier(default=...) classifies the unknown under rule "default", kept by with_rules()."""
    classifier = Classifier(default="temporary_error").with_rules(lambda e: None)
    verdict = classifier.classify(NobodyKnowsMe("zzz"))
    assert (TEMP, "default") == (verdict.category, verdict.rule)
    assert "unrecognised" == Classifier().with_rules(lambda e: None).classify(NobodyKnowsMe()).rule


def test_unrecognised_failures_are_retried_once() -> None:
    """However generous the temporary strategy, an unrecognised failure is retried once, then given up."""
    policy = Policy(strategies={TEMP: Strategy.immediately(5)})
    flaky = Flaky(NobodyKnowsMe("zzz"))
    with no_wait(), record() as rec, pytest.raises(NobodyKnowsMe):
        retrykit.retry(policy)(flaky)()
    assert 2 == flaky.calls
    assert StopReason.UNRECOGNISED == rec.gave_up[0].reason


@pytest.mark.parametrize(
    "classifier",
    [Classifier(default="temporary_error"), Classifier([lambda e: "temporary_error"])],
    ids=["default-given", "rule"],
)
def test_a_rule_or_a_default_lifts_the_bound(classifier: Classifier) -> None:
    """Once the user says what the failure is, the category's whole strategy applies."""
    policy = Policy(strategies={TEMP: Strategy.immediately(3)}, classifier=classifier)
    flaky = Flaky(NobodyKnowsMe("zzz"))
    with no_wait(), record() as rec, pytest.raises(NobodyKnowsMe):
        retrykit.retry(policy)(flaky)()
    assert 4 == flaky.calls
    assert StopReason.CATEGORY_EXHAUSTED == rec.gave_up[0].reason


def test_statistics_count_unrecognised_failures_by_type() -> None:
    """The retry and the give-up are each counted under unrecognised:<module.Class>."""
    flaky = Flaky(NobodyKnowsMe("zzz"))
    with no_wait(), record() as rec, pytest.raises(NobodyKnowsMe):
        retrykit.retry()(flaky)()
    counts: Counter[str] = Counter()
    for event in (*rec.retries, *rec.gave_up):
        counts.update(fields_of(event)[1])
    assert 2 == counts[f"unrecognised:{__name__}.NobodyKnowsMe"]


def _analysis(counts: dict[str, int]) -> Any:
    return from_counts(
        {"op": Counter(counts)}, operation=None, since=0.0, until=60.0, source="memory", overload=({}, {})
    )


def test_analyze_suggests_the_rule_to_paste() -> None:
    """The suggestion names the type and holds a rule that, pasted, classifies it."""
    a = _analysis(
        {
            "failed:temporary_error": 4,
            f"unrecognised:{__name__}.NobodyKnowsMe": 4,
            "retry_failed:temporary_error:1": 2,
        }
    )
    assert {f"{__name__}.NobodyKnowsMe": 4} == a.unrecognised
    (tip,) = [t for t in a.suggestions if "NobodyKnowsMe" in t]
    pasted = tip.partition("e.g. ")[2]
    code, _, expression = pasted.partition("; ")
    namespace: dict[str, Any] = {"retrykit": retrykit, "Policy": Policy}
    exec(code, namespace)
    policy = eval(expression, namespace)
    assert policy.classifier.classify(NobodyKnowsMe()).category is ErrorCategory.PERMANENT_ERROR


def test_analyze_names_too_many_types_together() -> None:
    """Types beyond the counted names are one suggestion, pointing at explain()."""
    a = _analysis({"failed:temporary_error": 2, "unrecognised:<other>": 2})
    assert any("retrykit.explain" in t for t in a.suggestions)
