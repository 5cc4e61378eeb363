"""Prometheus and OpenTelemetry sinks, JSON logs with trace ids, Celery Beat monitoring tasks."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

import retrykit
import retrykit.events
import retrykit.logs
import retrykit.sinks
import retrykit.stats
from retrykit import ConfigError, ErrorCategory, Policy, Strategy
from retrykit.testing import no_wait

from .flaky import Flaky

THREE = Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(0.5, max_retries=2)})


def _run(failures: int, secret: str = "tok-123") -> None:
    fetch = retrykit.retry(THREE, operation="svc.fetch")(Flaky.failing(failures))
    with no_wait():
        with contextlib.suppress(ConnectionResetError):
            fetch(secret)


def test_prometheus_sink_counts_with_low_cardinality_labels() -> None:
    """Counters and the delay histogram carry operation/category/reason labels, never arguments."""
    client = pytest.importorskip("prometheus_client")
    registry = client.CollectorRegistry()
    unsubscribe = retrykit.sinks.prometheus(registry)
    try:
        _run(1)
        _run(5)
    finally:
        unsubscribe()
    value = registry.get_sample_value
    labels = {"operation": "svc.fetch", "category": "network_error"}
    assert 4 == value("retrykit_attempt_failures_total", labels)
    assert 3 == value("retrykit_retries_total", labels)
    assert 1.5 == value("retrykit_retry_delay_seconds_sum", labels)
    assert 1 == value("retrykit_giveups_total", {**labels, "reason": "category_retries_exhausted"})
    assert 1 == value("retrykit_late_successes_total", {"operation": "svc.fetch"})
    assert "tok-123" not in client.generate_latest(registry).decode()


def test_opentelemetry_sink_counts_and_adds_span_events() -> None:
    """Counters go to the meter; retries and give-ups become span events with the events' attributes."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    reader = InMemoryMetricReader()
    unsubscribe = retrykit.sinks.opentelemetry(MeterProvider(metric_readers=[reader]))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with provider.get_tracer("test").start_as_current_span("request"):
            with retrykit.events.attributes({"http.request.resend_count": 1}):
                _run(5)
    finally:
        unsubscribe()
    sums = {
        m.name: sum(p.value for p in m.data.data_points)
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if hasattr(m.data.data_points[0], "value")
    }
    assert {"retrykit.attempt_failures": 3, "retrykit.retries": 2, "retrykit.giveups": 1} == {
        k: v for k, v in sums.items() if k != "retrykit.late_successes"
    }
    (span,) = exporter.get_finished_spans()
    assert ["retrykit.retry_scheduled", "retrykit.retry_scheduled", "retrykit.gave_up"] == [
        e.name for e in span.events
    ]
    assert "tok-123" not in repr([dict(e.attributes) for e in span.events])
    assert [1, 1, 1] == [e.attributes["http.request.resend_count"] for e in span.events]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _overload(clock: Clock, subscribe: Any) -> retrykit.CircuitBreaker:
    """
    With the sink *subscribe* registered twice: a quota budget refuses a retry (pay.fetch), a
    breaker opens and refuses a call (inv.fetch).
    """
    unsubscribes = [subscribe(), subscribe()]
    try:
        return _overload_calls(clock)
    finally:
        for unsubscribe in unsubscribes:
            unsubscribe()


def _overload_calls(clock: Clock) -> retrykit.CircuitBreaker:
    from retrykit import CircuitBreaker, RetryBudget

    once = {ErrorCategory.NETWORK_ERROR: Strategy.immediately(max_retries=3)}
    breaker = CircuitBreaker("inventory", min_throughput=2, open_for=30, clock=clock)
    for operation, policy in (
        (
            "pay.fetch",
            Policy(strategies=once, budget=RetryBudget.quota("payments", capacity=10, clock=clock)),
        ),
        ("inv.fetch", Policy(strategies=once, breaker=breaker)),
        ("inv.fetch", Policy(strategies=once, breaker=breaker)),
    ):

        @retrykit.retry(policy, operation=operation)
        def fetch() -> None:
            raise ConnectionResetError

        with no_wait(), contextlib.suppress(ConnectionResetError, retrykit.CircuitOpen):
            fetch()
    return breaker


def test_prometheus_gauges_read_budgets_and_breakers_at_scrape_time() -> None:
    """
    Budget and breaker gauges per key, read at each scrape (a change made without any event
    shows); give-ups carry the overload stop reasons; registering twice counts once.
    """
    client = pytest.importorskip("prometheus_client")
    registry = client.CollectorRegistry()
    clock = Clock()
    breaker = _overload(clock, lambda: retrykit.sinks.prometheus(registry))
    value = registry.get_sample_value
    budget = {"key": "payments", "shape": "quota", "store": "memory"}
    circuit = {"key": "inventory", "store": "memory"}
    assert (0.0, 1.0, 1.0) == (
        value("retrykit_budget_available", budget),
        value("retrykit_budget_retries_spent_total", budget),
        value("retrykit_budget_exhausted_total", budget),
    )
    assert (1.0, 30.0, 1.0) == (
        value("retrykit_breaker_state", circuit),
        value("retrykit_breaker_open_remaining_seconds", circuit),
        value("retrykit_breaker_rejected_total", circuit),
    )
    net = {"category": "network_error"}
    assert 1 == value(
        "retrykit_giveups_total", {"operation": "pay.fetch", **net, "reason": "budget_exhausted"}
    )
    assert 1 == value("retrykit_giveups_total", {"operation": "inv.fetch", **net, "reason": "circuit_open"})
    refused = {"operation": "inv.fetch", "category": "system_error", "reason": "circuit_open"}
    assert 1 == value("retrykit_giveups_total", refused)
    clock.now += 31
    assert 0.0 == breaker.allow()  # its probe: half-open, and no event says so
    assert (2.0, 30.0) == (
        value("retrykit_breaker_state", circuit),
        value("retrykit_breaker_open_remaining_seconds", circuit),
    )
    text = client.generate_latest(registry).decode()
    assert 1 == sum(line.startswith("retrykit_breaker_state{") for line in text.splitlines())


def test_opentelemetry_observes_budgets_and_breakers_at_collection() -> None:
    """Observable gauges and counters per key, read at each collection; give-ups carry the reason."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    clock = Clock()
    breaker = _overload(clock, lambda: retrykit.sinks.opentelemetry(provider))

    def collect() -> dict[str, list[tuple[dict[str, Any], float]]]:
        return {
            m.name: [(dict(p.attributes), p.value) for p in m.data.data_points]
            for rm in reader.get_metrics_data().resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name != "retrykit.retry_delay"  # a histogram: no single value
        }

    found = collect()
    budget = {"retrykit.key": "payments", "retrykit.shape": "quota", "retrykit.store": "memory"}
    circuit = {"retrykit.key": "inventory", "retrykit.store": "memory"}
    assert [(budget, 0.0)] == found["retrykit.budget.available"]
    assert [(budget, 1.0)] == found["retrykit.budget.retries_spent"]
    assert [(budget, 1.0)] == found["retrykit.budget.exhausted"]
    assert [(circuit, 1.0)] == found["retrykit.breaker.state"]
    assert [(circuit, 30.0)] == found["retrykit.breaker.open_remaining"]
    assert [(circuit, 1.0)] == found["retrykit.breaker.rejected"]
    reasons: Counter[tuple[str, str]] = Counter()
    for attributes, value in found["retrykit.giveups"]:
        reasons[attributes["retrykit.operation"], attributes["retrykit.reason"]] += int(value)
    assert {("pay.fetch", "budget_exhausted"): 1, ("inv.fetch", "circuit_open"): 2} == reasons
    clock.now += 31
    assert 0.0 == breaker.allow()
    assert [(circuit, 2.0)] == collect()["retrykit.breaker.state"]


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """retrykit's lines as JSON into a buffer (the retrykit logger at INFO), restored afterwards."""
    stream = io.StringIO()
    logger = logging.getLogger("retrykit")
    level = logger.level
    logger.setLevel(logging.INFO)
    handler = retrykit.logs.configure_json(stream=stream)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)
    structlog.reset_defaults()


def test_json_logs_carry_the_trace_id(json_logs: io.StringIO) -> None:
    """Every retrykit line is one JSON object with the bound trace id."""
    with retrykit.logs.trace("req-42") as trace_id:
        _run(1)
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert "req-42" == trace_id
    assert ["retrykit.retry_scheduled", "retrykit.succeeded"] == [entry["event"] for entry in lines]
    assert all(entry["trace_id"] == "req-42" for entry in lines)
    assert {"level", "timestamp", "operation", "attempt", "category"} <= set(lines[0])


def test_json_logs_use_the_celery_task_id(json_logs: io.StringIO) -> None:
    """Inside a Celery task, the task id is the trace id."""
    celery = pytest.importorskip("celery")
    app = celery.Celery("t", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True

    @app.task
    def job() -> None:
        _run(1)

    result = job.apply(task_id="task-7")
    assert result.successful()
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if "retrykit" in line]
    assert lines
    assert {"task-7"} == {entry.get("trace_id") for entry in lines}


def test_celery_beat_monitoring_tasks() -> None:
    """register_monitoring adds a monitor and a cleanup task to the app and its beat schedule."""
    celery = pytest.importorskip("celery")
    from retrykit_celery import register_monitoring

    app = celery.Celery("t", broker="memory://", backend="cache+memory://")
    alerts: list[Any] = []
    monitor_task, cleanup_task = register_monitoring(
        app, retrykit.stats.Thresholds(total_errors=2), on_alert=alerts.append, every=60
    )
    assert {"retrykit.monitor_errors", "retrykit.cleanup_errors"} <= set(app.conf.beat_schedule)
    assert 60 == app.conf.beat_schedule["retrykit.monitor_errors"]["schedule"].run_every.total_seconds()
    _run(5)
    result = monitor_task.apply().get()
    assert ["total_errors"] == [a["kind"] for a in result]
    assert 1 == len(alerts)
    assert isinstance(cleanup_task.apply().get(), int)
    with pytest.raises(retrykit.ConfigError, match="every"):
        register_monitoring(app, retrykit.stats.Thresholds(), every=0)


def test_missing_integration_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sink whose package is missing says which extra to install."""
    import builtins

    real_import = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("prometheus_client"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    import importlib

    monkeypatch.setattr(importlib, "import_module", lambda name: fake(name))
    with pytest.raises(retrykit.ConfigError, match=r"retrykit-engine\[prometheus\]"):
        retrykit.sinks.prometheus()


# --------------------------------------------------------------------------- sinks registered twice


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
        _run(1)
        assert 1 == _failures(registry) - start
        first()
        first()  # each caller's unsubscribe counts once
        _run(1)
        assert 2 == _failures(registry) - start  # the second caller still holds the sink
    finally:
        second()
    _run(1)
    assert 2 == _failures(registry) - start
    again = retrykit.sinks.prometheus(registry)  # after everyone left: the same metrics again
    try:
        _run(1)
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
        _run(1)
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
