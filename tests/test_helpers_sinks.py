"""Sinks registered twice (app factories), the level of retry logs, JSON logs that leave logging alone."""

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
import retrykit.logs
import retrykit.sinks
from retrykit import ConfigError, ErrorCategory, Policy, Strategy
from retrykit.testing import no_wait

TWO = Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(0.5, max_retries=2)})


def _run(failures: int = 1) -> None:
    state = {"n": 0}

    @retrykit.retry(TWO, operation="svc.fetch")
    def fetch() -> str:
        state["n"] += 1
        if state["n"] <= failures:
            raise ConnectionResetError
        return "ok"

    with no_wait(), contextlib.suppress(ConnectionResetError):
        fetch()


LABELS = {"operation": "svc.fetch", "category": "network_error"}


@pytest.fixture(params=["own registry", "default registry"])
def registry(request: pytest.FixtureRequest) -> Any:
    """A fresh CollectorRegistry, or prometheus_client's default one (passed as None)."""
    client = pytest.importorskip("prometheus_client")
    return client.CollectorRegistry() if request.param == "own registry" else None


def _failures(registry: Any) -> float:
    import prometheus_client

    value = (registry or prometheus_client.REGISTRY).get_sample_value(
        "retrykit_attempt_failures_total", LABELS
    )
    return value or 0.0


def test_prometheus_registered_twice_counts_once(registry: Any) -> None:
    """A second prometheus() on the same registry neither raises DuplicateTimeseries nor counts twice."""
    first = retrykit.sinks.prometheus(registry)
    second = retrykit.sinks.prometheus(registry)
    start = _failures(registry)
    try:
        _run()
        assert 1 == _failures(registry) - start
        first()
        first()  # each caller's unsubscribe counts once
        _run()
        assert 2 == _failures(registry) - start  # the second caller still holds the sink
    finally:
        second()
    _run()
    assert 2 == _failures(registry) - start
    again = retrykit.sinks.prometheus(registry)  # after everyone left: the same metrics again
    try:
        _run()
    finally:
        again()
    assert 3 == _failures(registry) - start


def test_prometheus_names_taken_by_something_else() -> None:
    """Metric names already registered by another library are a ConfigError naming the namespace."""
    client = pytest.importorskip("prometheus_client")
    registry = client.CollectorRegistry()
    client.Counter("attempt_failures", "not ours", namespace="taken", registry=registry)
    with pytest.raises(ConfigError, match="namespace"):
        retrykit.sinks.prometheus(registry, namespace="taken")


def test_opentelemetry_registered_twice_counts_once() -> None:
    """A second opentelemetry() on the same meter provider reuses the instruments and counts once."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    unsubscribes = [retrykit.sinks.opentelemetry(provider) for _ in range(2)]
    try:
        _run()
    finally:
        for unsubscribe in unsubscribes:
            unsubscribe()
    counts = {
        m.name: sum(p.value for p in m.data.data_points)
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "retrykit.attempt_failures"
    }
    assert {"retrykit.attempt_failures": 1} == counts


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
