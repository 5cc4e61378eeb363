"""The typed keywords and literal names type checkers see match what retrykit accepts at run time."""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum

import pytest

from retrykit import Decision, ErrorCategory, Jitter, Policy, Strategy
from retrykit._categories import CategoryName
from retrykit._config import ConfigureOptions, _known_keys
from retrykit._policy import PolicyOptions
from retrykit._strategy import (
    BackoffOptions,
    CustomOptions,
    DecisionName,
    DelayOptions,
    JitterName,
    StrategyOptions,
)
from retrykit.adapters import RetryOptions


def _keys(options: typing.Any) -> set[str]:
    return set(options.__required_keys__ | options.__optional_keys__)


def _init_fields(cls: typing.Any) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


_POSITIONAL = {"decision", "max_retries", "base_delay", "max_delay", "wait", "stop"}


@pytest.mark.parametrize(
    ("options", "accepted"),
    [
        (ConfigureOptions, set(_known_keys())),
        (PolicyOptions, _init_fields(Policy)),
        (RetryOptions, _init_fields(Policy) | {"retry", "wait", "stop"}),
        (StrategyOptions, _init_fields(Strategy)),
        (BackoffOptions, _init_fields(Strategy) - _POSITIONAL),
        (DelayOptions, _init_fields(Strategy) - _POSITIONAL | {"max_delay"}),
        (CustomOptions, _init_fields(Strategy) - _POSITIONAL | {"max_delay", "base_delay"}),
    ],
    ids=["configure", "Policy", "retry_with", "Strategy.replace", "backoff", "delay", "custom"],
)
def test_typed_keywords_are_the_accepted_ones(options: typing.Any, accepted: set[str]) -> None:
    """Each TypedDict of keywords names exactly the options the function accepts at run time."""
    assert _keys(options) == accepted


@pytest.mark.parametrize(
    ("name", "enum"),
    [(CategoryName, ErrorCategory), (DecisionName, Decision), (JitterName, Jitter)],
    ids=["category", "decision", "jitter"],
)
def test_literal_names_are_the_enum_values(name: typing.Any, enum: type[Enum]) -> None:
    """A literal string type lists exactly the values of its enum."""
    assert set(typing.get_args(name)) == {member.value for member in enum}


def test_celery_task_options_are_celery_and_retrykit_options() -> None:
    """TaskOptions names RetrykitTask's own options and Celery's, never Celery's retry options."""
    import celery

    from retrykit_celery import RetrykitTask, TaskOptions
    from retrykit_celery._checks import CELERY_RETRY_OPTIONS

    keys = _keys(TaskOptions)
    own = {name for name in vars(RetrykitTask) if name.startswith("retrykit_")} - {"retrykit_policy"}
    decorator_only = {"bind", "base", "shared", "lazy", "pydantic", "pydantic_strict"}
    decorator_only |= {"pydantic_context", "pydantic_dump_kwargs", "queue", "routing_key", "exchange"}
    decorator_only |= {"compression"}
    assert own <= keys
    assert not keys & set(CELERY_RETRY_OPTIONS)
    assert {k for k in keys - own - decorator_only if not hasattr(celery.Task, k)} == set()
