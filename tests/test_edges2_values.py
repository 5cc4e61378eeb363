"""Small value readers at their edges: Retry-After forms, headers, result rules, names, jitter, presets."""

from __future__ import annotations

import functools
from typing import Any

import pytest

import retrykit
from retrykit import Decision, ErrorCategory, Jitter, Policy, Strategy, _errors, _events, _results
from retrykit._verdict import header, module_of, parse_retry_after


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"7", 7.0), (b" 2.5 ", 2.5), (["7"], None), (object(), None), ("Wed, 21 Oct 2015 07:28:00", None)],
    ids=["bytes", "bytes-padded", "a-list", "an-object", "a-date-without-zone"],
)
def test_retry_after_takes_bytes_and_refuses_other_objects_and_zoneless_dates(
    value: Any, seconds: Any
) -> None:
    """Retry-After may come as bytes; other objects, and HTTP-dates without a zone, give no hint."""
    assert seconds == parse_retry_after(value, now=0.0)


def test_headers_without_a_get_give_nothing() -> None:
    """A header read from an object with no get() is None."""
    assert header(["Retry-After: 3"], "Retry-After") is None


class _NoModule(type):
    @property
    def __module__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("hostile")


def test_a_class_whose_module_cannot_be_read_has_none() -> None:
    """module_of() of a class whose __module__ raises is the empty string."""
    assert "" == module_of(_NoModule("Odd", (), {}))


class _Response:
    """A response-like result: a status and headers of some kind."""

    def __init__(self, status: Any, headers: Any = None) -> None:
        self.status_code = status
        self.headers = headers


class _HostileStatus:
    @property
    def status_code(self) -> int:
        raise RuntimeError("hostile")


class _HostileHeaders:
    def get(self, name: str) -> Any:
        raise RuntimeError("hostile")


@pytest.mark.parametrize(
    ("result", "category"),
    [
        (_Response(503, {"Retry-After": "1"}), ErrorCategory.TEMPORARY_ERROR),
        (_Response(503), None),
        (_Response("503", {}), None),
        (_HostileStatus(), None),
        (_Response(429, _HostileHeaders()), ErrorCategory.API_RATE_LIMIT),
        (_Response(429, object()), ErrorCategory.API_RATE_LIMIT),
    ],
    ids=[
        "retryable",
        "no-headers",
        "status-not-int",
        "status-raises",
        "headers-raise",
        "headers-without-get",
    ],
)
def test_the_http_result_rule_reads_what_it_can(result: Any, category: ErrorCategory | None) -> None:
    """Only an integer retryable status with headers is a failure; unreadable parts are no hint, no error."""
    found = _results.http_response(result)
    assert category == (None if found is None else found.category)
    if found is not None and not isinstance(result.headers, dict):
        assert found.retry_after is None


def test_a_result_rule_may_answer_a_category_member() -> None:
    """A result rule answering an ErrorCategory member classifies the result with it."""
    found = _results.judge_result(lambda r: ErrorCategory.DATA_ERROR, "x")
    assert found is not None
    assert ErrorCategory.DATA_ERROR == found.category


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


@pytest.mark.parametrize(
    ("value", "jitter"), [(False, Jitter.NONE), (None, Jitter.NONE), (True, Jitter.FULL)]
)
def test_jitter_takes_booleans_and_none(value: Any, jitter: Jitter) -> None:
    """Jitter.parse: True is full jitter (as in Celery), False and None are none."""
    assert jitter is Jitter.parse(value)


@pytest.mark.parametrize("strategy", [Strategy.immediately(max_retries=2), Strategy.no_retry()])
def test_strategies_without_waits_have_zero_delays(strategy: Strategy) -> None:
    """Immediate retries and no retries: a zero nominal delay and a zero range."""
    assert (0.0, (0.0, 0.0)) == (strategy.nominal(1), strategy.delay_range(1))


def test_policy_parts_name_their_policy() -> None:
    """policy.retry, .wait and .stop show which policy they belong to."""
    named, unnamed = retrykit.get_preset("http"), Policy()
    assert ["<PolicyRetry of http>", "<PolicyWait of http>", "<PolicyStop of http>"] == [
        repr(named.retry),
        repr(named.wait),
        repr(named.stop),
    ]
    assert "<PolicyRetry of policy>" == repr(unnamed.retry)


async def _async_callback(event: Any, extra: int) -> None:
    pass


class _AsyncCallable:
    """A callable object whose __call__ is a coroutine function."""

    async def __call__(self, event: Any, extra: int) -> None:
        pass


@pytest.mark.parametrize("target", [_async_callback, _AsyncCallable()], ids=["function", "callable-object"])
def test_an_async_callback_behind_a_partial_is_seen_as_async(target: Any) -> None:
    """A functools.partial of a coroutine function or of an object with an async __call__ is async."""
    policy = Policy(on_retry=functools.partial(target, extra=1))
    assert ("on_retry",) == policy.async_callbacks


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
