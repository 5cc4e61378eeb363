"""Logging (structlog or stdlib), sinks, the recorder and the pytest fixtures."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

import retrykit
import retrykit.events
from retrykit import ErrorCategory, Policy, Strategy, _events
from retrykit.events import GaveUp, RetryScheduled, Succeeded
from retrykit.testing import Recorder, no_wait, record

from .flaky import Flaky

THREE = Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.immediately(max_retries=2)})
SECRET = "s3cr3t-9f1c"


LEAK = f"reset by redis://:{SECRET}@cache:6379/0 (password={SECRET})"
"""An error message with the secret in it, as a careless library might raise."""


def test_structlog_gets_one_event_per_retry_giveup_and_late_success() -> None:
    """With structlog configured, each retry, give-up and late success is one structlog event."""
    with capture_logs() as logs, no_wait():
        assert structlog.is_configured()
        retrykit.retry(THREE, operation="op")(Flaky(ConnectionResetError(LEAK)))(SECRET)
        with pytest.raises(ConnectionResetError) as raised:
            retrykit.retry(THREE, operation="op")(Flaky(*[ConnectionResetError(LEAK) for _ in range(5)]))(
                secret=SECRET
            )
    assert SECRET in str(raised.value)  # the secret was there to leak: in an argument and the error
    names = [entry["event"] for entry in logs]
    assert [
        "retrykit.retry_scheduled",
        "retrykit.succeeded",
        "retrykit.retry_scheduled",
        "retrykit.retry_scheduled",
        "retrykit.gave_up",
    ] == names
    first = logs[0]
    assert {
        "operation": "op",
        "attempt": 1,
        "category": "network_error",
        "decision": "retry_immediately",
        "delay": 0.0,
    } == {k: first[k] for k in ("operation", "attempt", "category", "decision", "delay")}
    assert "reason" in first
    assert SECRET not in repr(logs)


def test_stdlib_fallback_when_structlog_is_not_configured(caplog: pytest.LogCaptureFixture) -> None:
    """Without structlog configuration, events go to the stdlib 'retrykit' logger."""
    structlog.reset_defaults()
    assert not structlog.is_configured()
    with caplog.at_level("INFO", logger="retrykit"), no_wait():
        retrykit.retry(THREE, operation="op")(Flaky(ConnectionResetError(LEAK)))(secret=SECRET)
    messages = [r.getMessage() for r in caplog.records if r.name == "retrykit"]
    assert SECRET not in caplog.text
    assert SECRET not in repr([getattr(r, "retrykit", None) for r in caplog.records])
    assert 2 == len(messages)
    assert messages[0].startswith("retrykit.retry_scheduled operation=op attempt=1")
    assert "network_error" in messages[0]
    assert {"event": "succeeded", "operation": "op", "attempts": 2} == {
        k: v for k, v in caplog.records[-1].retrykit.items() if k != "elapsed"
    }  # type: ignore[attr-defined]


def test_a_failing_sink_never_breaks_the_call(caplog: pytest.LogCaptureFixture) -> None:
    """A sink that raises is logged (its name and error type, not its message) and skipped."""

    def broken(event: Any) -> None:
        raise RuntimeError("sink bug")

    unsubscribe = retrykit.events.subscribe(broken)
    try:
        with no_wait():
            assert "ok" == retrykit.retry(THREE)(Flaky.failing(1))()
    finally:
        unsubscribe()
    assert "test_a_failing_sink_never_breaks_the_call.<locals>.broken raised RuntimeError" in caplog.text
    assert "sink bug" not in caplog.text


def test_subscribe_and_unsubscribe() -> None:
    """A subscribed sink gets typed events until it unsubscribes."""
    got: list[Any] = []
    unsubscribe = retrykit.events.subscribe(got.append)
    with no_wait():
        retrykit.retry(THREE)(Flaky.failing(1))()
    unsubscribe()
    with no_wait():
        retrykit.retry(THREE)(Flaky.failing(1))()
    assert [retrykit.events.AttemptFailed, RetryScheduled, Succeeded] == [type(e) for e in got]


@pytest.mark.parametrize("failures", [1, 9], ids=["late-success", "give-up"])
def test_events_carry_the_attributes_of_their_block(failures: int) -> None:
    """Events built inside ``attributes()`` carry its values, merged over an enclosing block's."""
    call = retrykit.retry(THREE, operation="op")(Flaky.failing(failures))
    with record() as inside, no_wait(), retrykit.events.attributes({"tenant": "a", "n": 1}):
        with (
            retrykit.events.attributes({"n": 2}),
            pytest.raises(ConnectionResetError) if failures > 2 else nullcontext(),
        ):
            call()
    with record() as outside, no_wait(), pytest.raises(ConnectionResetError):
        retrykit.retry(THREE, operation="op")(Flaky.failing(9))()
    assert [{"tenant": "a", "n": 2}] * len(inside.events) == [dict(e.attributes) for e in inside.events]
    assert [{}] * len(outside.events) == [dict(e.attributes) for e in outside.events]


@pytest.mark.parametrize("values", [["n", 1], {1: "one"}, None], ids=["list", "int-key", "none"])
def test_attributes_must_be_a_mapping_with_str_keys(values: Any) -> None:
    """Anything but a mapping with str keys is a ConfigError naming the argument and the fix."""
    with (
        pytest.raises(retrykit.ConfigError, match=r"values.*mapping with str keys"),
        retrykit.events.attributes(values),
    ):
        pass


def test_log_lines_carry_the_attributes(caplog: pytest.LogCaptureFixture) -> None:
    """The log line of a retry and of the late success has the attributes of its block as fields."""
    structlog.reset_defaults()
    attached = retrykit.events.attributes({"http.request.resend_count": 3})
    with caplog.at_level("INFO", logger="retrykit"), no_wait(), attached:
        retrykit.retry(THREE, operation="op")(Flaky.failing(1))()
    lines = [r for r in caplog.records if r.name == "retrykit"]
    assert [3, 3] == [r.retrykit.get("http.request.resend_count") for r in lines]  # type: ignore[attr-defined]
    assert all("http.request.resend_count=3" in r.getMessage() for r in lines)


def test_recorder_sees_only_its_own_context() -> None:
    """record() collects the events of its context only, with derived views."""
    with record() as outer, no_wait():
        retrykit.retry(THREE)(Flaky.failing(1))()
        with record() as inner, pytest.raises(ConnectionResetError):
            retrykit.retry(THREE)(Flaky.failing(9))()
    assert [0.0] * 2 == inner.sleeps
    assert 3 == inner.attempts()
    assert [ErrorCategory.NETWORK_ERROR] * 3 == [c.category for c in inner.classifications]
    assert 1 == len(inner.gave_up)
    assert isinstance(inner.gave_up[0], GaveUp)
    assert len(outer.events) > len(inner.events)


def test_pytest_fixtures(retrykit_recorder: Recorder) -> None:
    """The plugin's retrykit_recorder fixture records and skips sleeps."""
    slow = Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(3600, max_retries=1)})
    assert "ok" == retrykit.retry(slow)(Flaky.failing(1))()
    assert [3600.0] == retrykit_recorder.sleeps


@pytest.mark.usefixtures("retrykit_no_retry")
def test_no_retry_fixture() -> None:
    """The plugin's retrykit_no_retry fixture makes every call one attempt."""
    fn = Flaky.failing(1)
    with pytest.raises(ConnectionResetError):
        retrykit.retry(THREE)(fn)()


# --------------------------------------------------------------------------- sinks at their edges


class _Nameless:
    """A callable object with no name of its own and a module that is not a string."""

    def __init__(self) -> None:
        self.__module__ = None  # type: ignore[assignment]

    def __call__(self, event: Any) -> None:
        pass


def test_a_sink_without_string_names_is_named_by_its_class() -> None:
    """sink_name() falls back to the type's names when the sink's own are not strings."""
    assert f"{__name__}._Nameless" == sink_name_of(_Nameless())


def sink_name_of(sink: Any) -> str:
    return _events.sink_name(sink)


def test_a_sink_failure_hook_is_registered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering the same sink-failure hook twice keeps one."""
    monkeypatch.setattr(_events, "_failure_hooks", ())

    def hook(sink: Any, err: BaseException, event: Any) -> None:
        pass

    _events.on_sink_failure(hook)
    _events.on_sink_failure(hook)
    assert (hook,) == _events._failure_hooks


def test_listening_without_a_kind_asks_for_any_sink() -> None:
    """listening() with no kind is true while any sink is subscribed (the log and statistics ones are)."""
    assert _events.listening() is True
