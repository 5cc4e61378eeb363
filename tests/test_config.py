"""Settings from keyword arguments, the environment and framework settings, validated."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import retrykit
from retrykit import ConfigError, ErrorCategory
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
    from retrykit.adapters._celery_guard import AttemptLedger

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
