"""
Errors and the values they show: exceptions retrykit raises pickle whole (notes included),
ConfigError shows values quoted and whole (a long one cut), URLs redacted, callables named.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import retrykit
from retrykit import _cli, _errors
from retrykit._errors import ConfigError
from retrykit.stats import StatsUnavailable


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("max_retries", "3", "must be a whole number", "pass max_retries=3"),
        ConfigError("deadline", object(), "must be seconds", "pass deadline=1.5"),
        StatsUnavailable("cannot read statistics from Redis at redis://h:1/0"),
        _cli.CommandError("cannot import 'x'"),
    ],
    ids=["config-error", "config-error-unpicklable-value", "stats-unavailable", "command-error"],
)
def test_exceptions_pickle_with_their_notes(error: Exception) -> None:
    """Pickling keeps the type, message, attributes and __notes__."""
    error.add_note("retrykit: first note")
    error.add_note("second note")
    copy = pickle.loads(pickle.dumps(error))
    assert type(error) is type(copy)
    assert str(error) == str(copy)
    assert ["retrykit: first note", "second note"] == copy.__notes__
    assert {k: v for k, v in vars(error).items() if k != "__notes__"} == {
        k: v for k, v in vars(copy).items() if k != "__notes__"
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("3", "max_retries='3'"),
        (3.5, "max_retries=3.5"),
        ("", "max_retries=''"),
        ("x" * 300, "max_retries='" + "x" * 300 + "'"),
        ([1] * 100, "max_retries=[" + ", ".join(["1"] * 100) + "]"),
    ],
    ids=["string", "number", "empty", "long-string", "long-list"],
)
def test_config_error_shows_values_quoted_and_whole(value: Any, shown: str) -> None:
    """Strings are quoted (a string '3' is not the number 3) and nothing that matters is cut."""
    err = ConfigError("max_retries", value, "must be a whole number", "pass max_retries=3")
    assert str(err).startswith(shown + " is invalid")


def test_a_rewrapped_config_error_keeps_its_shown_value() -> None:
    """Renaming an error (RETRYKIT_* variables, per-category keys) does not quote the value twice."""
    with pytest.raises(ConfigError) as info:
        retrykit.configure_from_env({"RETRYKIT_DEFAULT_MAX_RETRIES": "many"})
    assert str(info.value).startswith("RETRYKIT_DEFAULT_MAX_RETRIES='many' is invalid")
    again = ConfigError("other", info.value.value, info.value.rule, info.value.fix)
    assert "other='many'" == str(again).partition(" ")[0]


def test_a_hostile_repr_does_not_hide_the_error() -> None:
    """A value whose repr raises is shown by its type."""

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert str(ConfigError("x", Hostile(), "r", "f")).startswith("x=<Hostile object> is invalid")


# --------------------------------------------------------------------------- values shown in errors


@pytest.mark.parametrize(("value", "shown"), [(12345, "***"), ("redis://:pw@h/0", "redis://:***@h/0")])
def test_redact_url_takes_any_value(value: Any, shown: str) -> None:
    """redact_url() turns a non-string into its text first; credentials in URLs are hidden."""
    assert (shown if isinstance(value, str) else str(value)) == _errors.redact_url(value)


def test_a_long_value_in_a_config_error_is_shortened() -> None:
    """A value whose repr passes 500 characters is cut, saying how long it was."""
    value = list(range(250))
    shown = _errors.show_value(value)
    assert shown.endswith(f"... ({len(repr(value))} characters)")
    assert len(shown) < 520


class _Wrapper:
    """A partial-like wrapper: a callable holding the one it wraps as .func."""

    def __init__(self, func: Any) -> None:
        self.func = func

    def __call__(self) -> None:
        pass


def _inner() -> None:
    pass


@pytest.mark.parametrize(("layers", "name"), [(3, "_inner"), (10, "_Wrapper")])
def test_a_callable_name_unwraps_at_most_eight_layers(layers: int, name: str) -> None:
    """callable_name() unwraps .func up to eight times, then names what it reached."""
    fn: Any = _inner
    for _ in range(layers):
        fn = _Wrapper(fn)
    assert name == _errors.callable_name(fn)
