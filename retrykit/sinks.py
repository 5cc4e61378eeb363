"""
Metrics sinks for the event stream: Prometheus and OpenTelemetry.

Both are optional (``pip install "retrykit-engine[prometheus]"`` / ``"retrykit-engine[otel]"``) and imported
only when you call them. Labels are low-cardinality on purpose: the operation (function or task
name), the category and, for give-ups, the stop reason; never argument values or attempt numbers.
Each function subscribes its sink and returns the function that unsubscribes it.

Registering is idempotent per registry (Prometheus) and per meter provider (OpenTelemetry): a
second call (an app factory run once per test) reuses the metrics and the one subscription, so
nothing is registered or counted twice. The sink stays subscribed until every caller has
unsubscribed.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from . import _events
from ._errors import ConfigError, Shown, install_hint


class _Shared:
    """One sink per (registry or meter provider, name), subscribed while anyone holds it."""

    __slots__ = ("sink", "unsubscribe", "users")

    def __init__(self, sink: _events.Sink) -> None:
        self.sink = sink
        self.users = 0
        self.unsubscribe: Callable[[], None] | None = None


_shared: weakref.WeakKeyDictionary[Any, dict[str, _Shared]] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def _register(owner: Any, key: str, build: Callable[[], _events.Sink]) -> Callable[[], None]:
    """Subscribe the sink *build* makes for *owner* once, however often it is asked for."""
    with _shared_lock:
        per_owner = _shared.setdefault(owner, {})
        shared = per_owner.get(key)
        if shared is None:
            shared = per_owner[key] = _Shared(build())
        if shared.users == 0:
            shared.unsubscribe = _events.subscribe(shared.sink)
        shared.users += 1
    released = threading.Event()

    def unsubscribe() -> None:
        with _shared_lock:
            if released.is_set():
                return  # each caller's unsubscribe counts once
            released.set()
            shared.users -= 1
            if shared.users == 0 and shared.unsubscribe is not None:
                shared.unsubscribe()
                shared.unsubscribe = None

    return unsubscribe


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            "sink",
            module,
            f"needs the {module.split('.', maxsplit=1)[0]} package",
            install_hint(extra),
        ) from None


def prometheus(registry: Any = None, *, namespace: str = "retrykit") -> Callable[[], None]:
    """
    Count events as Prometheus metrics (extra ``retrykit-engine[prometheus]``).

    ``retrykit_attempt_failures_total{operation,category}``, ``retrykit_retries_total``,
    ``retrykit_retry_delay_seconds`` (histogram),
    ``retrykit_giveups_total{operation,category,reason}``,
    ``retrykit_late_successes_total{operation}``, ``retrykit_rule_failures_total{rule}``, and
    the state of retry budgets and circuit breakers by key, read when scraped. Calling it again
    for the same registry shares the metrics and the subscription.

    Args:
        registry: The ``CollectorRegistry``. Default: prometheus_client's default registry.
        namespace: The metrics' name prefix.

    Returns:
        A function that unsubscribes; the sink stays until every caller has unsubscribed.

    Raises:
        ConfigError: prometheus_client is missing (the message says what to install), or the
            registry already holds metrics of that namespace registered by something else.
    """
    client = _require("prometheus_client", "prometheus")
    target = client.REGISTRY if registry is None else registry
    return _register(target, f"prometheus:{namespace}", lambda: _prometheus_sink(client, target, namespace))


def _prometheus_sink(client: Any, registry: Any, namespace: str) -> _events.Sink:
    kw: dict[str, Any] = {"namespace": namespace, "registry": registry}
    try:
        return _prometheus_metrics(client, kw)
    except ValueError as err:  # DuplicateTimeseries: names taken by something else in the registry
        raise ConfigError(
            "namespace",
            Shown(repr(namespace)),
            f"has metric names already registered in this registry by something else ({err})",
            "pass another namespace= or registry=",
        ) from None


_OVERLOAD_FIGURES = {  # figure: Prometheus name (after the namespace), OTel name, kind, unit, help
    "available": (
        "budget_available",
        "retrykit.budget.available",
        "gauge",
        "1",
        "Retries (ratio shape) or tokens (quota shape) the retry budget has left now",
    ),
    "reject_probability": (
        "budget_reject_probability",
        "retrykit.budget.reject_probability",
        "gauge",
        "1",
        "Probability that the adaptive retry budget refuses a retry now",
    ),
    "spent": (
        "budget_retries_spent",
        "retrykit.budget.retries_spent",
        "counter",
        "1",
        "Retries the retry budget allowed",
    ),
    "refused": (
        "budget_exhausted",
        "retrykit.budget.exhausted",
        "counter",
        "1",
        "Retries the retry budget refused (exhausted)",
    ),
    "state": (
        "breaker_state",
        "retrykit.breaker.state",
        "gauge",
        "1",
        "Circuit breaker state: 0 closed, 1 open, 2 half-open",
    ),
    "remaining": (
        "breaker_open_remaining_seconds",
        "retrykit.breaker.open_remaining",
        "gauge",
        "s",
        "Seconds the circuit breaker stays open (0 when closed)",
    ),
    "rejected": (
        "breaker_rejected",
        "retrykit.breaker.rejected",
        "counter",
        "1",
        "Calls the circuit breaker refused",
    ),
}


class _OverloadCollector:
    """
    Budget and breaker gauges for prometheus_client, read from their stores at each scrape
    (nothing on the retried calls' path). Labels: the key, the budget's shape, the store.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def _families(self) -> dict[str, Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = {}
        for figure, (name, _, kind, _, description) in _OVERLOAD_FIGURES.items():
            family = GaugeMetricFamily if kind == "gauge" else CounterMetricFamily
            labels = ["key", "shape", "store"] if name.startswith("budget") else ["key", "store"]
            families[figure] = family(f"{self.namespace}_{name}", description, labels=labels)
        return families

    def describe(self) -> list[Any]:
        """The metric names, without reading any store (prometheus_client checks duplicates)."""
        return list(self._families().values())

    def collect(self) -> list[Any]:
        """The gauges now: every budget and breaker this process uses, read from its store."""
        families = self._families()
        for labels, values in _overload_values():
            for name, value in values.items():
                families[name].add_metric(list(labels.values()), value)
        return list(families.values())


def _overload_values() -> list[tuple[dict[str, str], dict[str, float]]]:
    """
    For each budget and breaker this process uses: its labels (key, budget shape, store) and
    the figures its gauges show now, read from its store (the fleet's for one kept in Redis).
    """
    from ._budget import RetryBudget
    from ._overload import known_parts, readings
    from ._overload_memory import OPEN, STATE_NAMES

    codes = {name: code for code, name in STATE_NAMES.items()}
    out = []
    for part, store, state in readings(known_parts()):
        if "error" in state:
            continue
        labels = {"key": part.key, "store": store}
        values: dict[str, float] = {}
        if isinstance(part, RetryBudget):
            labels = {"key": part.key, "shape": part.shape, "store": store}  # the families' order
            if "balance" in state:
                values["available"] = max(0.0, float(state["balance"]))
            if "reject_probability" in state:
                values["reject_probability"] = float(state["reject_probability"])
            values["spent"] = float(state["spent"])
            values["refused"] = float(state["refused"])
        else:
            values["state"] = float(codes.get(state["state"], OPEN))
            values["remaining"] = float(state["remaining"])
            values["rejected"] = float(state["rejected"])
        out.append((labels, values))
    return out


def _prometheus_metrics(client: Any, kw: dict[str, Any]) -> _events.Sink:
    failures = client.Counter("attempt_failures", "Failed attempts", ["operation", "category"], **kw)
    retries = client.Counter("retries", "Retries scheduled", ["operation", "category"], **kw)
    delays = client.Histogram("retry_delay_seconds", "Wait before a retry", ["operation", "category"], **kw)
    giveups = client.Counter("giveups", "Calls given up", ["operation", "category", "reason"], **kw)
    successes = client.Counter("late_successes", "Calls that succeeded after a retry", ["operation"], **kw)
    rules = client.Counter("rule_failures", "Classifier rules that raised", ["rule"], **kw)
    kw["registry"].register(_OverloadCollector(kw["namespace"]))

    def sink(event: _events.Event) -> None:
        if isinstance(event, _events.AttemptFailed):
            failures.labels(event.operation, event.classification.category.value).inc()
        elif isinstance(event, _events.RetryScheduled):
            category = event.classification.category.value
            retries.labels(event.operation, category).inc()
            delays.labels(event.operation, category).observe(event.delay)
        elif isinstance(event, _events.GaveUp):
            giveups.labels(event.operation, event.classification.category.value, event.reason.value).inc()
        elif isinstance(event, _events.Succeeded):
            successes.labels(event.operation).inc()
        else:
            rules.labels(event.rule).inc()

    return sink


def opentelemetry(meter_provider: Any = None) -> Callable[[], None]:
    """
    Report events to OpenTelemetry (extra ``retrykit-engine[otel]``).

    Counters ``retrykit.attempt_failures``, ``retrykit.retries``, ``retrykit.giveups``,
    ``retrykit.late_successes``, a histogram ``retrykit.retry_delay``, an event on the current
    span for each retry and give-up, and the budgets' and breakers' state as observable gauges.

    Args:
        meter_provider: The ``MeterProvider``. Default: the global one.

    Returns:
        A function that unsubscribes; the sink stays until every caller has unsubscribed.

    Raises:
        ConfigError: The OpenTelemetry API is missing (the message says what to install).
    """
    metrics = _require("opentelemetry.metrics", "otel")
    trace = _require("opentelemetry.trace", "otel")
    provider = meter_provider or metrics.get_meter_provider()
    return _register(provider, "opentelemetry", lambda: _otel_sink(provider, trace))


def _otel_sink(provider: Any, trace: Any) -> _events.Sink:
    meter = provider.get_meter("retrykit")
    failures = meter.create_counter("retrykit.attempt_failures", description="Failed attempts")
    retries = meter.create_counter("retrykit.retries", description="Retries scheduled")
    delays = meter.create_histogram("retrykit.retry_delay", unit="s", description="Wait before a retry")
    giveups = meter.create_counter("retrykit.giveups", description="Calls given up")
    successes = meter.create_counter("retrykit.late_successes", description="Successes after a retry")
    _otel_overload(meter)

    def sink(event: _events.Event) -> None:
        if isinstance(event, _events.RuleFailed):
            return
        attributes: dict[str, str] = {"retrykit.operation": event.operation}
        if isinstance(event, _events.Succeeded):
            successes.add(1, attributes)
            return
        attributes["retrykit.category"] = event.classification.category.value
        if isinstance(event, _events.AttemptFailed):
            failures.add(1, attributes)
        elif isinstance(event, _events.RetryScheduled):
            retries.add(1, attributes)
            delays.record(event.delay, attributes)
            figures = {"retrykit.attempt": event.attempt, "retrykit.delay": event.delay}
            _span_event(trace, "retrykit.retry_scheduled", event, attributes, figures)
        else:
            attributes["retrykit.reason"] = event.reason.value
            giveups.add(1, attributes)
            _span_event(trace, "retrykit.gave_up", event, attributes, {"retrykit.attempts": event.attempts})

    return sink


def _span_event(
    trace: Any,
    name: str,
    event: _events.RetryScheduled | _events.GaveUp,
    labels: dict[str, str],
    figures: dict[str, int | float],
) -> None:
    """An event *name* on the current span: the call's attributes, the metrics' *labels*, *figures*."""
    trace.get_current_span().add_event(
        name, {**event.attributes, **labels, **figures, "retrykit.error": event.error_type}
    )


def _otel_overload(meter: Any) -> None:
    """Observable gauges and counters of the budgets and breakers, read at each collection."""
    from opentelemetry.metrics import Observation

    def observe(figure: str) -> Callable[[Any], list[Any]]:
        def callback(options: Any) -> list[Any]:
            return [
                Observation(values[figure], {f"retrykit.{k}": v for k, v in labels.items()})
                for labels, values in _overload_values()
                if figure in values
            ]

        return callback

    for figure, (_, name, kind, unit, description) in _OVERLOAD_FIGURES.items():
        create = meter.create_observable_gauge if kind == "gauge" else meter.create_observable_counter
        create(name, callbacks=[observe(figure)], unit=unit, description=description)


__all__ = ["opentelemetry", "prometheus"]
