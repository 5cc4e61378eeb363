"""No secrets in logs, messages or events: URLs redacted, rule messages and foreign settings never shown."""

from __future__ import annotations

import io
import logging
import pickle
from typing import Any

import pytest
from structlog.testing import capture_logs

import retrykit
import retrykit.events
from retrykit import _cli, _config, _errors, _logging
from retrykit._errors import redact_url
from retrykit.stats import MemoryStore, RedisStore, StatsRecorder, StatsUnavailable, analyze
from retrykit.testing import no_wait, record

SECRET = "hunter2"
DEAD = f"redis://:{SECRET}@127.0.0.1:1/10"


@pytest.fixture(autouse=True)
def _fresh_log_limits() -> None:
    """Each test sees its first rule or sink failure logged."""
    _logging._limiter = _logging._OncePerInterval()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{SECRET}@h:6379/0", "redis://:***@h:6379/0"),
        (f"rediss://alice:{SECRET}@h/1", "rediss://alice:***@h/1"),
        (f"redis://{SECRET}@h", "redis://***@h"),
        (f"redis://h:6379/0?password={SECRET}&db=1", "redis://h:6379/0?password=***&db=1"),
        (f"unix:///tmp/r.sock?password={SECRET}", "unix:///tmp/r.sock?password=***"),
        (f"redis://:p@{SECRET}@h/0", "redis://:***@h/0"),
        (f"cannot reach redis://:{SECRET}@h:1/0 (refused)", "cannot reach redis://:***@h:1/0 (refused)"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
    ids=["password", "user-password", "token", "query", "unix-query", "at-in-password", "in-text", "none"],
)
def test_redact_url(url: str, shown: str) -> None:
    """Every form of credential in a URL is replaced by ***; a URL without one is unchanged."""
    assert shown == redact_url(url)


def test_unreachable_redis_logs_and_raises_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    """The stats store's warning, its StatsUnavailable and analyze()'s fallback never show the password."""
    store = RedisStore(DEAD, prefix="rk-harden", background=False)
    rec = StatsRecorder(MemoryStore(), store)
    with caplog.at_level(logging.DEBUG, logger="retrykit"):
        store.add("op", {"failed:network_error": 1})
        assert store.flush() is False
        with pytest.raises(StatsUnavailable) as info:
            store.read(None, 0, 60)
        analyze(recorder=rec)
    assert "redis://:***@127.0.0.1:1/10" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in str(info.value)
    assert SECRET not in repr(pickle.loads(pickle.dumps(info.value)))


@pytest.mark.parametrize(
    "call",
    [
        lambda: retrykit.configure(stats_redis_url=f"http://:{SECRET}@h/0"),
        lambda: RedisStore(f"http://:{SECRET}@h/0", background=False),
        lambda: retrykit.configure_from_env({"RETRYKIT_STATS_REDIS_URL": f"tcp://:{SECRET}@h"}),
    ],
    ids=["configure", "store", "env"],
)
def test_config_errors_redact_urls(call: Any) -> None:
    """A malformed Redis URL is refused with its password redacted in the message and attributes."""
    with pytest.raises(retrykit.ConfigError) as info:
        call()
    assert ":***@h" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(vars(info.value))


def test_the_command_line_redacts_the_redis_url(capsys: pytest.CaptureFixture[str]) -> None:
    """``retrykit stats --redis URL`` with Redis down: one line on stderr, no password."""
    assert 1 == _cli.main(["stats", "--redis", DEAD], out=io.StringIO())
    err = capsys.readouterr().err
    assert "redis://:***@127.0.0.1:1/10" in err
    assert SECRET not in err


class _FlaskConfig(dict):  # type: ignore[type-arg]
    """Flask's app.config is a dict subclass."""


class _DjangoSettings:
    SECRET_KEY = SECRET
    DATABASES = {"default": {"PASSWORD": SECRET}}
    DEBUG = False


@pytest.mark.parametrize(
    "source",
    [
        _FlaskConfig(SECRET_KEY=SECRET, SQLALCHEMY_DATABASE_URI=f"postgres://u:{SECRET}@db/x"),
        {"SECRET_KEY": SECRET, "DEBUG": True},
        _DjangoSettings(),
    ],
    ids=["flask", "mapping", "django"],
)
def test_settings_without_retrykit_keys_are_a_no_op_that_shows_nothing(
    source: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A framework config without RETRYKIT keys changes nothing, returns {} and echoes no value."""
    before = _config.settings
    with caplog.at_level(logging.DEBUG, logger="retrykit"):
        assert {} == retrykit.configure_from_settings(source)
    assert before is _config.settings
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ({"ENABLED": True, "SECRET_KEY": SECRET}, "SECRET_KEY"),
        (_FlaskConfig(RETRYKIT_ENABLED=True, RETRYKIT_TOKEN=SECRET, SECRET_KEY=SECRET), "RETRYKIT_TOKEN"),
    ],
    ids=["mapping", "flask"],
)
def test_unknown_keys_are_named_without_their_values(source: Any, shown: str) -> None:
    """An unknown key in a retrykit mapping is refused by name; its value is not shown."""
    with pytest.raises(retrykit.ConfigError) as info:
        retrykit.configure_from_settings(source)
    assert shown == info.value.argument
    assert "is not a retrykit setting" in str(info.value)
    assert SECRET not in str(info.value)


def test_a_rule_that_raises_logs_and_emits_its_type_only(caplog: pytest.LogCaptureFixture) -> None:
    """A rule failing with a secret in its message: logs (stdlib and structlog) and events carry the type."""

    def leaky(exc: BaseException) -> bool:
        raise ValueError(f"password={SECRET}")

    policy = retrykit.Policy(
        classifier=retrykit.Classifier([retrykit.Rule("network_error", when=leaky, name="leaky")])
    )
    calls = 0

    def fn() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError
        return "ok"

    with capture_logs() as structured, record() as rec, no_wait():
        retrykit.retry(policy)(fn)()
    failed = [e for e in rec.events if isinstance(e, retrykit.events.RuleFailed)]
    assert failed
    assert {("leaky", "ValueError")} == {(e.rule, e.rule_error) for e in failed}
    assert SECRET not in repr(rec.events)
    assert SECRET not in repr(structured)
    assert any(e.get("rule_error") == "ValueError" for e in structured)
    import structlog

    structlog.reset_defaults()
    calls = 0
    _logging._limiter = _logging._OncePerInterval()
    with caplog.at_level(logging.DEBUG, logger="retrykit"), no_wait():
        retrykit.retry(policy)(fn)()
    assert "rule=leaky" in caplog.text
    assert "rule_error=ValueError" in caplog.text
    assert SECRET not in caplog.text


def test_config_error_redacts_any_url_value() -> None:
    """A ConfigError shows a URL value with its credentials redacted, also after pickling."""
    err = _errors.ConfigError("retrykit_guard", f"redis://:{SECRET}@h/0", "r", "f")
    assert SECRET not in str(pickle.loads(pickle.dumps(err)))
