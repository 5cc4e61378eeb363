"""Settings at their edges: booleans and retention as given, a bad environment at import, Django's signal."""

from __future__ import annotations

from typing import Any

import pytest

import retrykit
from retrykit import ConfigError, _config


@pytest.mark.parametrize(
    ("value", "enabled"),
    [("off", False), (" No ", False), ("0", False), (0, False), (1, True), ("yes", True)],
)
def test_enabled_takes_words_and_zero_or_one(value: Any, enabled: bool) -> None:
    """enabled= reads on/off, yes/no, true/false, 1/0 as text or as the numbers 0 and 1."""
    retrykit.configure(enabled=value)
    assert enabled is _config.settings.enabled


@pytest.mark.parametrize("value", [2, "maybe", 0.0])
def test_enabled_refuses_anything_else(value: Any) -> None:
    """Any other value of enabled= is a ConfigError naming the key."""
    with pytest.raises(ConfigError, match="enabled"):
        retrykit.configure(enabled=value)


@pytest.mark.parametrize(("value", "hours"), [(48, 48.0), ("0.5", 0.5), (87840, 87840.0)])
def test_a_retention_within_ten_years_is_taken(value: Any, hours: float) -> None:
    """stats_retention_hours takes any positive number of hours up to ten years."""
    retrykit.configure(stats_retention_hours=value)
    assert hours == _config.settings.stats_retention_hours


def test_a_bad_variable_at_import_is_raised_at_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad RETRYKIT_* variable does not break the import: check() raises it later, naming the variable."""
    monkeypatch.setenv("RETRYKIT_ENABLED", "maybe")
    _config.load_env_at_import()
    with pytest.raises(ConfigError, match="RETRYKIT_ENABLED"):
        _config.check()


def test_a_category_setting_changes_only_that_category() -> None:
    """<category>_<field> settings land in that category's overrides, field by field."""
    retrykit.configure(api_rate_limit_max_retries=7, network_decision="retry_immediately")
    overrides = _config.settings.category_overrides
    assert 7 == overrides[retrykit.ErrorCategory.API_RATE_LIMIT]["max_retries"]
    assert retrykit.Decision.RETRY_IMMEDIATELY == overrides[retrykit.ErrorCategory.NETWORK_ERROR]["decision"]


@pytest.mark.parametrize(("setting", "value"), [("DEBUG", True), ("RETRYKIT", None)])
def test_django_signals_other_than_a_new_retrykit_dict_leave_no_override(setting: str, value: Any) -> None:
    """Another setting changes nothing; RETRYKIT set to None puts back the settings from before Django's."""
    retrykit.configure(max_attempts=2)
    base = _config.snapshot().settings
    retrykit.configure(max_attempts=9)
    _config._django_base = base
    _config._django_setting_changed(setting=setting, value=value)
    assert (9 if setting == "DEBUG" else 2) == _config.settings.max_attempts


def test_a_nested_retrykit_mapping_is_read_as_retrykits_own() -> None:
    """A mapping holding a RETRYKIT mapping is read through it (every key in it is retrykit's)."""
    applied = retrykit.configure_from_settings({"RETRYKIT": {"MAX_ATTEMPTS": 4}, "OTHER": 1})
    assert ({"MAX_ATTEMPTS": 4}, 4) == (applied, _config.settings.max_attempts)


class _NoDir:
    """An object whose dir() fails: not a settings object."""

    def __dir__(self) -> list[str]:
        raise RuntimeError("hostile")


def test_an_object_whose_attributes_cannot_be_listed_is_not_settings() -> None:
    """configure_from_settings of an object that dir() fails on is refused as not a mapping."""
    with pytest.raises(ConfigError, match="must be a mapping"):
        retrykit.configure_from_settings(_NoDir())
