"""
The log sink: its bounded limiter, context providers, repeated rule failures and quiet events;
failing sinks and rules logged once a minute and counted; the level of retry logs; JSON logs that
leave the application's logging alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

import retrykit
import retrykit.events
import retrykit.logs
import retrykit.sinks
import retrykit.stats
from retrykit import ConfigError, ErrorCategory, Policy, Strategy, _cli, _events, _logging, _stats
from retrykit._classify import Classification
from retrykit.stats import analyze, sink_failures
from retrykit.testing import no_wait

from .flaky import Flaky


@pytest.fixture(autouse=True)
def _structlog_unconfigured() -> Iterator[None]:
    """Each test starts and ends with structlog unconfigured: retrykit logs through the stdlib then."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


FAILED = _events.AttemptFailed("op", 1, "OSError", Classification(ErrorCategory.NETWORK_ERROR, "reset"), 0.0)
RULE = _events.RuleFailed("my_rule", "OSError", "KeyError")


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("keys", "kept"), [(["a", "b", "c"], ["b", "c"]), (["a", "b"], ["a", "b"])])
def test_the_limiter_forgets_its_oldest_half_when_full(keys: list[str], kept: list[str]) -> None:
    """Past its size the limiter drops its oldest keys, so it stays bounded whatever fails."""
    limiter = _logging._OncePerInterval(clock=_Clock(), size=2)
    for key in keys:
        assert 0 == limiter.check(key)
    assert kept == list(limiter._last)


def test_an_attempt_failure_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The log sink writes nothing for AttemptFailed: the retry or give-up that follows says it."""
    with caplog.at_level(logging.DEBUG, logger="retrykit"):
        _logging.log_event(FAILED)
    assert [] == caplog.records


def test_a_repeated_rule_failure_says_how_many_were_not_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule failing again after the interval is logged with the count of failures kept quiet since."""
    clock = _Clock()
    monkeypatch.setattr(_logging, "_limiter", _logging._OncePerInterval(clock=clock))
    with caplog.at_level(logging.ERROR, logger="retrykit"):
        for moment in (0.0, 1.0, 2.0, _logging.REPORT_INTERVAL + 1):
            clock.now = moment
            _logging.log_event(RULE)
    said = [record.retrykit.get("not_logged_since") for record in caplog.records]  # type: ignore[attr-defined]
    assert [None, 2] == said


@pytest.mark.parametrize(
    ("providers", "fields"),
    [
        ((), {}),
        ((lambda: {"task_id": "t1"},), {"task_id": "t1"}),
        ((lambda: 1 / 0, lambda: None, lambda: {"tenant": "x"}), {"tenant": "x"}),
    ],
    ids=["none", "one", "a-failing-one-and-an-empty-one"],
)
def test_log_lines_carry_what_the_context_providers_give(
    providers: tuple[Any, ...],
    fields: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each line gets the providers' fields; a provider that raises or gives nothing adds nothing."""
    monkeypatch.setattr(_logging, "_context", ())
    for provider in providers * 2:  # registered twice: kept once
        _logging.register_context(provider)
    assert len(providers) == len(_logging._context)
    with caplog.at_level(logging.INFO, logger="retrykit"):
        _logging.log_event(_events.Succeeded("op", 2, 0.5))
    extra = caplog.records[0].retrykit  # type: ignore[attr-defined]
    own = ("event", "operation", "attempts", "elapsed")
    assert fields == {k: v for k, v in extra.items() if k not in own}


# --------------------------------------------------------------------------- failing sinks and rules


NET = retrykit.ErrorCategory.NETWORK_ERROR


THREE = retrykit.Policy(strategies={NET: retrykit.Strategy.immediately(max_retries=2)})


class Clock:
    """A settable monotonic clock for the log limiter."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A fresh log limiter on a clock the test moves."""
    ticks = Clock()
    _logging._limiter = _logging._OncePerInterval(clock=ticks)
    return ticks


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize("error", [RuntimeError, KeyError, ZeroDivisionError])
def test_a_failing_sink_is_logged_once_a_minute_and_counted(
    clock: Clock, caplog: pytest.LogCaptureFixture, error: type[Exception]
) -> None:
    """1,000 calls through a raising sink: one line (name, error type), 3,000 failures counted."""

    def broken(event: Any) -> None:
        raise error("secret detail")

    before = sum(sink_failures().values())
    unsubscribe = retrykit.events.subscribe(broken)
    try:
        with caplog.at_level(logging.DEBUG, logger="retrykit"), no_wait():
            for _ in range(1000):
                retrykit.retry(THREE)(Flaky.failing(1))()
            clock.now += 61
            retrykit.retry(THREE)(Flaky.failing(1))()
    finally:
        unsubscribe()
    lines = _lines(caplog, "broken raised")
    name = f"{__name__}.test_a_failing_sink_is_logged_once_a_minute_and_counted.<locals>.broken"
    assert [
        f"retrykit: sink {name} raised {error.__name__} on AttemptFailed; skipped (logged once a minute "
        "per sink and error type, counted in retrykit.stats.sink_failures())",
        f"retrykit: sink {name} raised {error.__name__} on AttemptFailed; skipped (logged once a minute "
        "per sink and error type, counted in retrykit.stats.sink_failures(); 2999 more since the last line)",
    ] == lines
    assert all(r.exc_info is None for r in caplog.records)
    assert "secret detail" not in caplog.text
    assert 3003 == sink_failures()[f"{name}:{error.__name__}"]
    assert 3003 == sum(sink_failures().values()) - before
    assert {f"{name}:{error.__name__}": 3003} == analyze().sink_failures


def test_two_sinks_and_two_error_types_are_reported_apart(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each (sink, error type) pair gets its own line."""
    kinds = iter([ValueError, KeyError] * 100)

    def first(event: Any) -> None:
        raise next(kinds)()

    def second(event: Any) -> None:
        raise RuntimeError

    unsubscribe = [retrykit.events.subscribe(first), retrykit.events.subscribe(second)]
    try:
        with caplog.at_level(logging.DEBUG, logger="retrykit"), no_wait():
            for _ in range(20):
                retrykit.retry(THREE)(Flaky.failing(1))()
    finally:
        for off in unsubscribe:
            off()
    assert 3 == len(_lines(caplog, " raised "))


def test_sink_failures_show_in_the_stats_command(clock: Clock) -> None:
    """``retrykit stats`` prints the sink failures of the analysed statistics."""

    def broken(event: Any) -> None:
        raise RuntimeError

    unsubscribe = retrykit.events.subscribe(broken)
    try:
        with no_wait():
            retrykit.retry(THREE)(Flaky.failing(1))()
    finally:
        unsubscribe()
    out = io.StringIO()
    _cli.render_analysis(analyze(), out)
    assert f"sink failures     {__name__}.test_sink_failures_show_in_the_stats_command.<locals>.broken" in (
        out.getvalue()
    )
    assert "RuntimeError 3" in out.getvalue()


def test_overflow_shows_in_the_stats_command() -> None:
    """Counts of names beyond the cap show as an overflow line."""
    rec = _stats.StatsRecorder(_stats.MemoryStore(max_operations=2))
    for i in range(5):
        rec.local.add(f"op{i}", {"failed:network_error": 1})
    out = io.StringIO()
    _cli.render_analysis(analyze(recorder=rec), out)
    assert "name overflow     3 counts of operation names beyond the cap" in out.getvalue()


@pytest.mark.parametrize("structured", [False, True], ids=["stdlib", "structlog"])
def test_a_buggy_rule_over_a_big_exception_group_logs_one_line(
    clock: Clock, caplog: pytest.LogCaptureFixture, structured: bool
) -> None:
    """A rule raising on each of 1,000 group members: one log line, every failure counted."""

    def buggy(exc: BaseException) -> bool:
        raise AttributeError("secret detail")

    policy = retrykit.Policy(
        classifier=retrykit.Classifier([retrykit.Rule("network_error", when=buggy, name="buggy")]),
        max_attempts=1,
    )
    group = ExceptionGroup("many", [ConnectionResetError(i) for i in range(1000)])

    def fn() -> None:
        raise group

    structlog.reset_defaults()
    logs: list[dict[str, Any]] = []
    capture = structlog.testing.capture_logs() if structured else contextlib.nullcontext(logs)
    with capture as logs, caplog.at_level(logging.DEBUG, logger="retrykit"):
        assert structured == structlog.is_configured()
        with pytest.raises(ExceptionGroup):
            retrykit.retry(policy)(fn)()
    rule_lines = [e for e in logs if e["event"] == "retrykit.rule_failed"] + [
        r for r in caplog.records if "rule_failed" in r.getMessage()
    ]
    assert 1 == len(rule_lines)
    assert "secret detail" not in caplog.text + repr(logs)
    assert analyze().rule_failures["buggy"] >= 1000


# --------------------------------------------------------------------------- the level of retry logs


TWO = Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(0.5, max_retries=2)})


def _run(failures: int = 1) -> None:
    fetch = retrykit.retry(TWO, operation="svc.fetch")(Flaky.failing(failures))
    with no_wait(), contextlib.suppress(ConnectionResetError):
        fetch()


@pytest.mark.parametrize(
    ("apply", "level"),
    [
        (lambda: None, logging.WARNING),
        (lambda: retrykit.configure(log_level="INFO"), logging.INFO),
        (lambda: retrykit.configure(log_level="debug"), logging.DEBUG),
        (lambda: retrykit.configure(log_level=logging.ERROR), logging.ERROR),
        (lambda: retrykit.configure_from_env({"RETRYKIT_LOG_LEVEL": "info"}), logging.INFO),
        (lambda: retrykit.configure_from_settings({"RETRYKIT_LOG_LEVEL": "ERROR"}), logging.ERROR),
    ],
    ids=["default", "info", "debug", "error-number", "environment", "flask"],
)
def test_retry_log_level_is_a_setting(
    caplog: pytest.LogCaptureFixture, apply: Callable[[], None], level: int
) -> None:
    """Each retry logs at the configured level (WARNING by default)."""
    apply()
    with caplog.at_level(logging.DEBUG, logger="retrykit"):
        _run()
    (retry,) = [r for r in caplog.records if r.getMessage().startswith("retrykit.retry_scheduled")]
    assert level == retry.levelno


@pytest.mark.parametrize("value", ["LOUD", 25, True, None, "warn "])
def test_bad_log_level_is_a_config_error(value: object) -> None:
    """A value that is not a logging level is refused, naming log_level, and changes nothing."""
    with pytest.raises(ConfigError, match="log_level"):
        retrykit.configure(log_level=value)
    assert logging.WARNING == retrykit._config.settings.log_level


# --------------------------------------------------------------------------- JSON logs


@pytest.fixture
def app_logging() -> Iterator[logging.Handler]:
    """The application's own logging: a root handler with its own formatter, at WARNING."""
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("APP %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    yield handler
    root.handlers, root.level = saved
    structlog.reset_defaults()


def _state(app: logging.Handler) -> tuple[Any, ...]:
    root, ours = logging.getLogger(), logging.getLogger("retrykit")
    return (
        list(root.handlers),
        root.level,
        app.formatter,
        structlog.is_configured(),
        ours.level,
        ours.propagate,
    )


@pytest.mark.parametrize("attach", ["configure_json", "json_handler"])
def test_json_logging_leaves_the_application_logging_alone(app_logging: logging.Handler, attach: str) -> None:
    """JSON logs are opt-in: root handlers, levels and structlog's configuration stay the app's."""
    before = _state(app_logging)
    stream = io.StringIO()
    logger = logging.getLogger("retrykit")
    if attach == "configure_json":
        handler = retrykit.logs.configure_json(stream=stream)
    else:
        handler = retrykit.logs.json_handler(stream)
        logger.addHandler(handler)
    try:
        assert before == _state(app_logging)
        with retrykit.logs.trace("req-9"):
            _run()
            logging.getLogger("app").warning("app line")
    finally:
        logger.removeHandler(handler)
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert ("retrykit.retry_scheduled", "req-9", "warning") == (
        line["event"],
        line["trace_id"],
        line["level"],
    )
    assert {"timestamp", "operation", "attempt", "category", "delay"} <= set(line)
    app_out = app_logging.stream.getvalue()  # type: ignore[attr-defined]
    assert "APP app line" in app_out
    assert "APP retrykit.retry_scheduled" in app_out  # still propagated, in the app's format


def test_json_formatter_on_the_applications_handler(app_logging: logging.Handler) -> None:
    """json_formatter() renders the application's own lines as JSON with the trace id too."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(retrykit.logs.json_formatter())
    app = logging.getLogger("app")
    app.addHandler(handler)
    try:
        with retrykit.logs.trace("req-1"):
            app.warning("hello %s", "world")
    finally:
        app.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert ("hello world", "req-1", "app") == (line["event"], line["trace_id"], line["logger"])


def test_configure_json_twice_keeps_one_handler(app_logging: logging.Handler) -> None:
    """configure_json() replaces the handler it attached before rather than adding another."""
    logger = logging.getLogger("retrykit")
    retrykit.logs.configure_json(stream=io.StringIO())
    handler = retrykit.logs.configure_json(stream=io.StringIO())
    try:
        assert [handler] == [h for h in logger.handlers if h.get_name() == retrykit.logs.HANDLER_NAME]
    finally:
        logger.removeHandler(handler)
