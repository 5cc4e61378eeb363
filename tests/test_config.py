"""Settings from keyword arguments, the environment and framework settings, validated."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import retrykit
from retrykit import ConfigError, Decision, ErrorCategory, _config
from retrykit.overload import RedisOverloadStore
from retrykit.testing import no_wait


def test_configure_shapes_the_default_preset() -> None:
    """default_max_retries and per-category settings change what ``@retry`` does."""
    retrykit.configure(network_max_retries=1, default_base_delay=0.25)
    default = retrykit.get_preset("default")
    net = default.strategy_for(ErrorCategory.NETWORK_ERROR)
    assert (1, 0.25) == (net.max_retries, net.base_delay)
    calls = 0

    @retrykit.retry
    def fn() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError

    with no_wait(), pytest.raises(ConnectionResetError):
        fn()
    assert 2 == calls


def test_decorated_functions_follow_later_configuration() -> None:
    """A function decorated before configure() uses the settings in force when it runs."""
    calls = 0

    @retrykit.retry("default")
    def fn() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError

    retrykit.configure(network_max_retries=2)
    with no_wait(), pytest.raises(ConnectionResetError):
        fn()
    assert 3 == calls


def test_explicit_policies_ignore_preset_settings() -> None:
    """Explicit Policy objects are what they say; settings shape only the default preset."""
    policy = retrykit.Policy()
    retrykit.configure(network_max_retries=9)
    assert 4 == policy.strategy_for(ErrorCategory.NETWORK_ERROR).max_retries


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"enabeld": True}, "enabeld"),
        ({"enabled": "maybe"}, "enabled"),
        ({"default_max_retries": "three"}, "default_max_retries"),
        ({"network_base_delay": -1}, "network_base_delay"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"default_category": "flaky"}, "default_category"),
        ({"data_max_retries": 2}, "data_max_retries"),
    ],
)
def test_bad_settings_name_the_key(options: dict[str, Any], key: str) -> None:
    """A bad key or value is refused naming the key, and nothing changes."""
    before = retrykit.get_preset("default")
    with pytest.raises(ConfigError) as info:
        retrykit.configure(**options)
    assert key in str(info.value)
    assert before == retrykit.get_preset("default")


def test_unknown_key_suggests_the_closest() -> None:
    """A misspelt key gets a did-you-mean."""
    with pytest.raises(ConfigError, match="did you mean 'enabled'"):
        retrykit.configure(enabeld=True)


def test_environment_variables() -> None:
    """RETRYKIT_* variables are applied, and a bad one names the variable."""
    applied = retrykit.configure_from_env(
        {
            "RETRYKIT_ENABLED": "true",
            "RETRYKIT_DEFAULT_MAX_RETRIES": "5",
            "RETRYKIT_API_RATE_LIMIT_BASE_DELAY": "30",
            "PATH": "/bin",
        }
    )
    assert "PATH" not in applied
    assert 5 == retrykit.get_preset("default").strategy_for(ErrorCategory.TEMPORARY_ERROR).max_retries
    assert 30 == retrykit.get_preset("default").strategy_for(ErrorCategory.API_RATE_LIMIT).base_delay
    with pytest.raises(ConfigError, match="RETRYKIT_DEFAULT_MAX_RETRIES"):
        retrykit.configure_from_env({"RETRYKIT_DEFAULT_MAX_RETRIES": "many"})


@pytest.mark.parametrize(
    ("variable", "value", "fix"),
    [
        ("RETRYKIT_MAX_ATTEMPTS", "abc", "RETRYKIT_MAX_ATTEMPTS=3"),
        ("RETRYKIT_MAX_ATTEMPTS", "0", "RETRYKIT_MAX_ATTEMPTS>=1"),
        ("RETRYKIT_DEADLINE", "soon", "RETRYKIT_DEADLINE=1.5"),
        ("RETRYKIT_DEFAULT_BASE_DELAY", "x", "RETRYKIT_DEFAULT_BASE_DELAY=1.5"),
        ("RETRYKIT_STATS_RETENTION_HOURS", "-1", "RETRYKIT_STATS_RETENTION_HOURS=24"),
        ("RETRYKIT_STATS_RETENTION_HOURS", "a day", "RETRYKIT_STATS_RETENTION_HOURS=24"),
    ],
)
def test_a_bad_variable_s_fix_is_spelt_as_the_variable(variable: str, value: str, fix: str) -> None:
    """The fix for a bad environment variable names it with its prefix, as the user sets it."""
    with pytest.raises(ConfigError) as info:
        retrykit.configure_from_env({variable: value})
    assert (variable, fix) == (
        info.value.argument,
        info.value.fix.removeprefix("use e.g. ").removeprefix("pass "),
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://:pw@127.0.0.1:notaport/0", "port"),
        ("redis://127.0.0.1:70000/0", "port"),
        ("redis://127.0.0.1:6379/zero", "db"),
        ("redis://127.0.0.1:6379/0?db=one", "db"),
        ("redis://:6379/0", "no host"),
        ("http://127.0.0.1:6379/0", "scheme"),
        ("unix://", "socket path"),
        ("127.0.0.1:6379", "Redis URL"),
    ],
)
@pytest.mark.parametrize("where", ["configure", "overload store", "celery attempt ledger"])
def test_redis_urls_are_checked_whole(url: str, says: str, where: str) -> None:
    """A Redis URL setting with a bad scheme, host, port or db is a ConfigError, password hidden."""
    from retrykit_celery._ledger import AttemptLedger

    with pytest.raises(ConfigError, match=says) as info:
        if where == "configure":
            retrykit.configure(stats_redis_url=url)
        elif where == "overload store":
            RedisOverloadStore(url)
        else:
            AttemptLedger(url)
    assert "pw" not in str(info.value)


def test_bad_environment_fails_at_first_use_naming_the_variable() -> None:
    """``import retrykit`` works with a bad variable; the first decoration raises naming it."""
    code = (
        "import retrykit\n"
        "try:\n    retrykit.retry(lambda: None)\n"
        "except retrykit.ConfigError as err:\n    print(err.argument)\n"
    )
    env = {"RETRYKIT_ENABLED": "perhaps", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "RETRYKIT_ENABLED" == out.stdout.strip()


def test_environment_is_read_at_import() -> None:
    """RETRYKIT_ENABLED=false in the environment switches retrying off at import."""
    code = "import retrykit, retrykit._config as c; print(c.settings.enabled)"
    env = {"RETRYKIT_ENABLED": "false", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "False" == out.stdout.strip()


class _DjangoSettings:
    RETRYKIT = {"ENABLED": False, "NETWORK_MAX_RETRIES": 2}
    DEBUG = True


@pytest.mark.parametrize(
    "source",
    [
        _DjangoSettings(),
        {"RETRYKIT_ENABLED": False, "RETRYKIT_NETWORK_MAX_RETRIES": 2, "SECRET_KEY": "x"},
        {"ENABLED": False, "NETWORK_MAX_RETRIES": 2},
    ],
    ids=["django", "flask", "mapping"],
)
def test_framework_settings(source: Any) -> None:
    """Django's settings.RETRYKIT, Flask's app.config RETRYKIT_* keys, or a plain mapping."""
    retrykit.configure_from_settings(source)
    from retrykit import _config

    assert _config.settings.enabled is False
    assert 2 == retrykit.get_preset("default").strategy_for(ErrorCategory.NETWORK_ERROR).max_retries


def test_settings_source_must_be_a_mapping() -> None:
    """Something that is not settings is refused, naming the argument."""
    with pytest.raises(ConfigError, match="source"):
        retrykit.configure_from_settings(42)


# --------------------------------------------------------------------------- settings at their edges


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


# --------------------------------------------------------------------------- the default preset


@pytest.mark.parametrize(
    ("settings", "category", "expected"),
    [
        ({"data_decision": "retry_with_backoff"}, ErrorCategory.DATA_ERROR, ("max_retries", 3)),
        ({"network_decision": "retry_immediately"}, ErrorCategory.NETWORK_ERROR, ("base_delay", 0.0)),
        ({"network_max_delay": 0.05}, ErrorCategory.NETWORK_ERROR, ("base_delay", 0.05)),
    ],
)
def test_the_default_preset_fills_what_a_setting_implies(
    settings: dict[str, Any], category: ErrorCategory, expected: tuple[str, float]
) -> None:
    """A retried data category gets 3 retries; immediate means no base delay; a low cap lowers it."""
    retrykit.configure(**settings)
    strategy = retrykit.get_preset("default").strategies[category]
    assert expected[1] == getattr(strategy, expected[0])
    assert strategy.decision is not Decision.NO_RETRY
