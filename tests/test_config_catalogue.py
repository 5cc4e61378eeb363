"""
A catalogue of bad configurations: each is refused when built, with a ConfigError that names the
argument, shows the value (quoted when it is a string, whole) and gives a fix; nothing is adjusted
silently.
"""

from __future__ import annotations

import functools
import math
import pickle
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import backoff
import pytest
import stamina
import tenacity

import retrykit
import retrykit.events
from retrykit import Classifier, ConfigError, Decision, Policy, Rule, Strategy

NET = retrykit.ErrorCategory.NETWORK_ERROR
DEFAULTS = Policy()


def _plain() -> None:
    return None


class _GeneratorCall:
    def __call__(self) -> Iterator[int]:
        yield 1


def _generator() -> Iterator[int]:
    yield 1


async def _agen() -> Any:
    yield 1


class _Settings:
    """A Django-style settings object."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


# (id, what builds the bad configuration, the argument the error must name)
CASES: list[tuple[str, Callable[[], Any], str]] = [
    # --- strategies
    ("decision-bogus", lambda: Strategy("sometimes"), "decision"),
    ("decision-int", lambda: Strategy(3), "decision"),
    ("max_retries-negative", lambda: Strategy(max_retries=-1), "max_retries"),
    ("max_retries-zero", lambda: Strategy(max_retries=0), "max_retries"),
    ("max_retries-str", lambda: Strategy(max_retries="3"), "max_retries"),
    ("max_retries-float", lambda: Strategy(max_retries=1.5), "max_retries"),
    ("max_retries-bool", lambda: Strategy(max_retries=True), "max_retries"),
    ("max_retries-none-no-stop", lambda: Strategy(max_retries=None), "max_retries"),
    ("base_delay-negative", lambda: Strategy(base_delay=-1), "base_delay"),
    ("base_delay-str", lambda: Strategy(base_delay="1"), "base_delay"),
    ("base_delay-nan", lambda: Strategy(base_delay=math.nan), "base_delay"),
    ("base_delay-inf", lambda: Strategy(base_delay=math.inf), "base_delay"),
    ("base_delay-none", lambda: Strategy(base_delay=None), "base_delay"),
    ("max_delay-below-base", lambda: Strategy(base_delay=5, max_delay=1), "max_delay"),
    ("max_delay-negative", lambda: Strategy(max_delay=-1), "max_delay"),
    ("backoff_factor-below-1", lambda: Strategy(backoff_factor=0.5), "backoff_factor"),
    ("backoff_factor-nan", lambda: Strategy(backoff_factor=math.nan), "backoff_factor"),
    ("backoff_factor-str", lambda: Strategy(backoff_factor="2"), "backoff_factor"),
    ("backoff_factor-bool", lambda: Strategy(backoff_factor=True), "backoff_factor"),
    ("jitter-bogus", lambda: Strategy(jitter="sideways"), "jitter"),
    ("jitter-int", lambda: Strategy(jitter=5), "jitter"),
    ("min_delay-above-max", lambda: Strategy(min_delay=100, max_delay=10), "min_delay"),
    ("min_delay-negative", lambda: Strategy(min_delay=-1), "min_delay"),
    ("wait-not-callable", lambda: Strategy(wait=5), "wait"),
    ("stop-not-callable", lambda: Strategy(stop="x"), "stop"),
    ("no-retry-with-retries", lambda: Strategy(Decision.NO_RETRY, max_retries=3), "max_retries"),
    ("no-retry-with-wait", lambda: Strategy(Decision.NO_RETRY, wait=tenacity.wait_fixed(1)), "wait"),
    ("immediately-with-delay", lambda: Strategy(Decision.RETRY_IMMEDIATELY, base_delay=1), "base_delay"),
    ("queue-empty", lambda: Strategy(queue=""), "queue"),
    ("queue-int", lambda: Strategy(queue=5), "queue"),
    ("honor_retry_after-str", lambda: Strategy(honor_retry_after="no"), "honor_retry_after"),
    ("honor_retry_after-int", lambda: Strategy(honor_retry_after=0), "honor_retry_after"),
    ("delay-max_delay-below", lambda: Strategy.delay(5, max_delay=1), "max_delay"),
    ("delay-negative", lambda: Strategy.delay(-5), "base_delay"),
    ("backoff-max-negative", lambda: Strategy.backoff(1, -1), "max_delay"),
    ("backoff-timedelta-negative", lambda: Strategy.backoff(timedelta(seconds=-1)), "base_delay"),
    ("immediately-negative", lambda: Strategy.immediately(-1), "max_retries"),
    ("custom-nothing", lambda: Strategy.custom(), "wait"),
    ("custom-wait-int", lambda: Strategy.custom(wait=3), "wait"),
    ("strategy-replace-bogus", lambda: Strategy().replace(max_retry=3), "max_retry"),
    # --- policies
    ("strategies-list", lambda: Policy(strategies=[Strategy()]), "strategies"),
    ("strategies-bogus-category", lambda: Policy(strategies={"bogus": Strategy()}), "strategies"),
    (
        "strategies-not-strategy",
        lambda: Policy(strategies={"network_error": 5}),
        "strategies['network_error']",
    ),
    ("classifier-str", lambda: Policy(classifier="x"), "classifier"),
    ("max_attempts-zero", lambda: Policy(max_attempts=0), "max_attempts"),
    ("max_attempts-str", lambda: Policy(max_attempts="3"), "max_attempts"),
    ("max_attempts-float", lambda: Policy(max_attempts=2.5), "max_attempts"),
    ("max_attempts-bool", lambda: Policy(max_attempts=True), "max_attempts"),
    ("deadline-zero", lambda: Policy(deadline=0), "deadline"),
    ("deadline-negative", lambda: Policy(deadline=-1), "deadline"),
    ("deadline-str", lambda: Policy(deadline="5"), "deadline"),
    ("deadline-nan", lambda: Policy(deadline=math.nan), "deadline"),
    ("deadline-inf", lambda: Policy(deadline=math.inf), "deadline"),
    ("attempt_timeout-zero", lambda: Policy(attempt_timeout=0), "attempt_timeout"),
    ("attempt_timeout-negative", lambda: Policy(attempt_timeout=-1), "attempt_timeout"),
    ("on_retry-int", lambda: Policy(on_retry=5), "on_retry"),
    ("on_giveup-str", lambda: Policy(on_giveup="print"), "on_giveup"),
    ("on_success-int", lambda: Policy(on_success=1), "on_success"),
    ("name-int", lambda: Policy(name=5), "name"),
    ("classify_result-bogus", lambda: Policy(classify_result="htp"), "classify_result"),
    ("classify_result-int", lambda: Policy(classify_result=5), "classify_result"),
    ("idempotent-str", lambda: Policy(idempotent="yes"), "idempotent"),
    ("clamp_retry_after-int", lambda: Policy(clamp_retry_after=1), "clamp_retry_after"),
    ("replace-typo", lambda: DEFAULTS.replace(max_atempts=3), "max_atempts"),
    ("replace-bad-value", lambda: DEFAULTS.replace(max_attempts=-2), "max_attempts"),
    ("replace-bogus-category", lambda: DEFAULTS.replace(strategies={"bogus": Strategy()}), "strategies"),
    ("preset-unknown", lambda: retrykit.get_preset("htp"), "policy"),
    ("preset-name-empty", lambda: retrykit.register_preset("", DEFAULTS), "name"),
    ("preset-not-policy", lambda: retrykit.register_preset("mine", Strategy()), "policy"),
    ("preset-exists", lambda: retrykit.register_preset("http", DEFAULTS), "name"),
    # --- rules and classifiers
    ("rule-category-bogus", lambda: Rule("bogus", types=ValueError), "category"),
    ("rule-types-str", lambda: Rule(NET, types="ValueError"), "types"),
    ("rule-types-instance", lambda: Rule(NET, types=ValueError()), "types"),
    ("rule-types-not-exception", lambda: Rule(NET, types=int), "types"),
    ("rule-types-list-of-str", lambda: Rule(NET, types=["ValueError"]), "types"),
    ("rule-status-str", lambda: Rule(NET, status="429"), "status"),
    ("rule-status-float", lambda: Rule(NET, status=429.0), "status"),
    ("rule-status-range", lambda: Rule(NET, status=99), "status"),
    ("rule-status-bool", lambda: Rule(NET, status=True), "status"),
    ("rule-status-list-bad", lambda: Rule(NET, status=[429, "503"]), "status"),
    ("rule-message-int", lambda: Rule(NET, message=123), "message"),
    ("rule-message-bad-regex", lambda: Rule(NET, message="("), "message"),
    ("rule-when-int", lambda: Rule(NET, when=5), "when"),
    ("rule-no-criteria", lambda: Rule(NET), "Rule"),
    ("rule-reason-int", lambda: Rule(NET, types=ValueError, reason=5), "reason"),
    ("rule-name-int", lambda: Rule(NET, types=ValueError, name=5), "name"),
    ("classifier-rules-str", lambda: Classifier("rules"), "rules"),
    ("classifier-rules-int", lambda: Classifier(5), "rules"),
    ("classifier-rule-int", lambda: Classifier([5]), "rules"),
    ("classifier-default-bogus", lambda: Classifier(default="bogus"), "default"),
    ("classifier-builtin-str", lambda: Classifier(builtin="no"), "builtin"),
    ("classifier-builtin-int", lambda: Classifier(builtin=0), "builtin"),
    # --- settings: keywords, environment, Django and Flask
    ("configure-typo", lambda: retrykit.configure(max_atempts=3), "max_atempts"),
    ("configure-deadline-negative", lambda: retrykit.configure(deadline=-1), "deadline"),
    ("configure-deadline-zero", lambda: retrykit.configure(deadline=0), "deadline"),
    ("configure-max_attempts-zero", lambda: retrykit.configure(max_attempts=0), "max_attempts"),
    ("configure-enabled-maybe", lambda: retrykit.configure(enabled="maybe"), "enabled"),
    ("configure-category-bogus", lambda: retrykit.configure(default_category="x"), "default_category"),
    ("configure-network-retries", lambda: retrykit.configure(network_max_retries=-1), "network_max_retries"),
    ("configure-base-delay-str", lambda: retrykit.configure(default_base_delay="abc"), "default_base_delay"),
    (
        "configure-decision-bogus",
        lambda: retrykit.configure(network_decision="sometimes"),
        "network_decision",
    ),
    ("configure-redis-url", lambda: retrykit.configure(stats_redis_url="http://x"), "stats_redis_url"),
    (
        "configure-retention-huge",
        lambda: retrykit.configure(stats_retention_hours=1e308),
        "stats_retention_hours",
    ),
    ("configure-bucket-zero", lambda: retrykit.configure(stats_bucket_seconds=0), "stats_bucket_seconds"),
    ("configure-max-ops-zero", lambda: retrykit.configure(stats_max_operations=0), "stats_max_operations"),
    (
        "configure-contradiction",
        lambda: retrykit.configure(network_base_delay=100, network_max_delay=1),
        "network_max_delay",
    ),
    (
        "env-max-attempts",
        lambda: retrykit.configure_from_env({"RETRYKIT_MAX_ATTEMPTS": "x"}),
        "RETRYKIT_MAX_ATTEMPTS",
    ),
    ("env-enabled", lambda: retrykit.configure_from_env({"RETRYKIT_ENABLED": "maybe"}), "RETRYKIT_ENABLED"),
    (
        "env-decision",
        lambda: retrykit.configure_from_env({"RETRYKIT_NETWORK_DECISION": "x"}),
        "RETRYKIT_NETWORK_DECISION",
    ),
    ("env-deadline", lambda: retrykit.configure_from_env({"RETRYKIT_DEADLINE": "-3"}), "RETRYKIT_DEADLINE"),
    (
        "env-unknown",
        lambda: retrykit.configure_from_env({"RETRYKIT_MAX_ATEMPTS": "3"}),
        "RETRYKIT_MAX_ATEMPTS",
    ),
    ("django-not-a-dict", lambda: retrykit.configure_from_settings(_Settings(RETRYKIT="x")), "RETRYKIT"),
    (
        "django-unknown-key",
        lambda: retrykit.configure_from_settings(_Settings(RETRYKIT={"BOGUS": 1})),
        "RETRYKIT_BOGUS",
    ),
    (
        "django-bad-value",
        lambda: retrykit.configure_from_settings(_Settings(RETRYKIT={"MAX_ATTEMPTS": 0})),
        "RETRYKIT_MAX_ATTEMPTS",
    ),
    (
        "flask-bad-value",
        lambda: retrykit.configure_from_settings({"RETRYKIT_MAX_ATTEMPTS": "x"}),
        "RETRYKIT_MAX_ATTEMPTS",
    ),
    (
        "flask-bad-enabled",
        lambda: retrykit.configure_from_settings({"RETRYKIT_ENABLED": "sometimes"}),
        "RETRYKIT_ENABLED",
    ),
    # --- decorators
    ("retry-non-callable", lambda: retrykit.retry()(5), "fn"),
    ("retry-class", lambda: retrykit.retry()(ValueError), "fn"),
    ("retry-generator", lambda: retrykit.retry()(_generator), "fn"),
    ("retry-async-generator", lambda: retrykit.retry()(_agen), "fn"),
    ("retry-strategy", lambda: retrykit.retry(Strategy()), "policy"),
    ("retry-tenacity-object", lambda: retrykit.retry(tenacity.stop_after_attempt(3)), "policy"),
    ("retry-int", lambda: retrykit.retry(5), "policy"),
    ("retry-unknown-preset", lambda: retrykit.retry("htp"), "policy"),
    ("retry-typo", lambda: retrykit.retry("http", max_atempts=3), "max_atempts"),
    ("retry-bad-override", lambda: retrykit.retry("http", deadline=-1), "deadline"),
    ("retry-operation-int", lambda: retrykit.retry("http", operation=5), "operation"),
    ("retry-wait-int", lambda: retrykit.retry("http", wait=5), "wait"),
    ("retry-stop-str", lambda: retrykit.retry("http", stop="x"), "stop"),
    ("retry-twice", lambda: retrykit.retry()(retrykit.retry()(_plain)), "fn"),
    ("retry-over-tenacity", lambda: retrykit.retry()(tenacity.retry(_plain)), "fn"),
    ("retry-over-stamina", lambda: retrykit.retry()(stamina.retry(on=ValueError)(_plain)), "fn"),
    (
        "retry-over-backoff",
        lambda: retrykit.retry()(backoff.on_exception(backoff.expo, ValueError)(_plain)),
        "fn",
    ),
    (
        "retry-over-partial-of-tenacity",
        lambda: retrykit.retry()(functools.partial(tenacity.retry(_plain))),
        "fn",
    ),
    ("attempts-typo", lambda: retrykit.attempts("http", max_atempts=3), "max_atempts"),
    ("attempts-unknown-preset", lambda: retrykit.attempts("htp"), "policy"),
    ("subscribe-int", lambda: retrykit.events.subscribe(5), "sink"),
    ("scaled-time-zero", lambda: retrykit.testing.scaled_time(0), "factor"),
    ("scaled-time-big", lambda: retrykit.testing.scaled_time(5), "factor"),
    # --- issue 21: huge delays, every constructor's keywords, generators via __call__, URLs, env
    ("strategy-delay-200000-days", lambda: Strategy.delay(timedelta(days=200000)), "base_delay"),
    ("strategy-max-delay-1e308", lambda: Strategy(base_delay=1e308, max_delay=1e308), "base_delay"),
    ("strategy-immediately-base-delay", lambda: Strategy.immediately(base_delay=1), "base_delay"),
    ("strategy-no-retry-keyword", lambda: Strategy.no_retry(max_retries=3), "max_retries"),
    ("strategy-unknown-keyword", lambda: Strategy(retries=3), "retries"),
    ("retry-generator-call", lambda: retrykit.retry()(_GeneratorCall()), "fn"),
    (
        "configure-redis-port",
        lambda: retrykit.configure(stats_redis_url="redis://h:port/0"),
        "stats_redis_url",
    ),
    ("configure-redis-db", lambda: retrykit.configure(stats_redis_url="redis://h:6379/x"), "stats_redis_url"),
]


@pytest.mark.parametrize(("build", "argument"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_configuration_is_refused_when_built(build: Callable[[], Any], argument: str) -> None:
    """The configuration is refused at once with a ConfigError naming the argument and a fix."""
    with pytest.raises(ConfigError) as info:
        build()
    err = info.value
    assert argument == err.argument
    assert err.fix
    assert str(err).startswith(f"{argument}=")
    again = pickle.loads(pickle.dumps(err))
    assert (err.argument, str(err)) == (again.argument, str(again))


def test_the_catalogue_is_large() -> None:
    """The issue asks for at least 120 bad configurations."""
    assert len(CASES) >= 120


@pytest.mark.parametrize(
    ("build", "shown"),
    [
        (lambda: Strategy(max_retries="3"), "max_retries='3'"),
        (lambda: Rule(NET, types="ValueError"), "types='ValueError'"),
        (lambda: Rule(NET, status="429"), "status='429'"),
    ],
    ids=["max_retries", "types", "status"],
)
def test_string_values_are_shown_quoted_and_whole(build: Callable[[], Any], shown: str) -> None:
    """A wrong string value is shown as given, quoted: not one character of it, not unquoted."""
    with pytest.raises(ConfigError) as info:
        build()
    assert str(info.value).startswith(shown)


def test_a_negative_deadline_gets_a_fix_that_works() -> None:
    """configure(deadline=-1) suggests a value configure() itself accepts."""
    with pytest.raises(ConfigError) as info:
        retrykit.configure(deadline=-1)
    suggested = re.search(r"deadline=([0-9.]+)", info.value.fix)
    assert suggested is not None
    retrykit.configure(deadline=float(suggested.group(1)))  # the fix itself is accepted


def _errors_retrykit_raises() -> list[BaseException]:
    from retrykit_celery import AttemptLost

    return [
        ConfigError("a", "b", "rule", "fix"),
        retrykit.CircuitOpen("payments", 1.5),
        AttemptLost("task-id", 2),
    ]


@pytest.mark.parametrize("error", _errors_retrykit_raises(), ids=lambda e: type(e).__name__)
def test_what_retrykit_raises_pickles_with_its_notes(error: BaseException) -> None:
    """Errors retrykit raises itself survive pickling (result backends, process pools) with notes."""
    error.__notes__ = ["retrykit: a note"]  # what add_note does (3.11+)
    again = pickle.loads(pickle.dumps(error))
    assert (type(error), str(error), ["retrykit: a note"]) == (type(again), str(again), again.__notes__)
