"""The Celery adapter in real workers: memory://, and the same suite on Redis and RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest

celery = pytest.importorskip("celery")

import itertools  # noqa: E402

from celery import signals  # noqa: E402
from celery.contrib.testing.worker import start_worker  # noqa: E402
from celery.exceptions import Ignore, Retry  # noqa: E402
from celery_services import require_service  # noqa: E402
from kombu.asynchronous import set_event_loop  # noqa: E402

import retrykit  # noqa: E402
from retrykit import ConfigError, ErrorCategory, Policy, Strategy  # noqa: E402
from retrykit.testing import Recorder  # noqa: E402
from retrykit_celery import RetrykitTask, app_options, max_countdown, task, task_options  # noqa: E402

NET = ErrorCategory.NETWORK_ERROR
BROKERS = {
    "memory": ("memory://", "cache+memory://"),
    "redis": ("redis://127.0.0.1:6379/14", "redis://127.0.0.1:6379/15"),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", "redis://127.0.0.1:6379/15"),
}


def fast(max_attempts: int = 4, delay: float = 0.05, **kw: Any) -> Policy:
    """Network errors retried after *delay*, up to *max_attempts* executions."""
    return Policy(
        strategies={NET: Strategy.delay(delay, max_retries=max_attempts - 1)}, max_attempts=max_attempts, **kw
    )


def _need(broker: str) -> None:
    if broker in ("redis", "rabbitmq"):
        require_service("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --port 6379")
    if broker == "rabbitmq":
        require_service("RabbitMQ", "127.0.0.1", 5672, "rabbitmq-server -detached")


def make_app(broker: str, **conf: Any) -> Any:
    """A Celery app on *broker* with a queue of its own."""
    _need(broker)
    url, backend = BROKERS[broker]
    app = celery.Celery(f"rk{uuid.uuid4().hex[:8]}", broker=url, backend=backend)
    app.conf.update(
        task_default_queue=f"rk-{uuid.uuid4().hex[:10]}",
        broker_transport_options={"polling_interval": 0.01},
        broker_connection_retry_on_startup=True,
        result_expires=600,
        worker_hijack_root_logger=False,
        broker_heartbeat=0,
        **conf,
    )
    return app


@pytest.fixture(params=list(BROKERS))
def broker(request: pytest.FixtureRequest) -> str:
    """Each broker in turn: memory://, Redis, RabbitMQ."""
    _need(str(request.param))
    return str(request.param)


@contextlib.contextmanager
def worker(app: Any, pool: str = "solo", concurrency: int = 1, **kwargs: Any) -> Iterator[Any]:
    """A real worker in a thread, cleaned up with its queue and its event loop afterwards."""
    try:
        with start_worker(
            app,
            pool=pool,
            concurrency=concurrency,
            perform_ping_check=False,
            loglevel="error",
            shutdown_timeout=30,
            **kwargs,
        ) as w:
            yield w
    finally:
        # kombu < 5.5 (Celery 5.4.0's) leaves the stopped worker's hub as the process-wide event
        # loop: the next worker on Redis or RabbitMQ reuses it, whose timer is the dead worker's,
        # so its countdown/ETA messages (every retry) never run (celery/celery#9983, fixed by
        # kombu#2404, which clears it when the hub closes). One worker per process is unaffected.
        set_event_loop(None)
    with contextlib.suppress(Exception), app.connection_for_write() as conn:
        conn.default_channel.queue_delete(app.conf.task_default_queue)


def wait(result: Any, timeout: float = 30) -> Any:
    """The task's outcome: its value, or the exception it ended with."""
    try:
        return result.get(timeout=timeout, interval=0.02, propagate=True)
    except Exception as exc:
        return exc


@pytest.fixture
def spy() -> Iterator[dict[str, list[Any]]]:
    """Celery's task_retry, task_failure and task_postrun signals, recorded."""
    seen: dict[str, list[Any]] = {"retry": [], "failure": [], "postrun": []}

    def on_retry(sender: Any = None, request: Any = None, reason: Any = None, **kw: Any) -> None:
        seen["retry"].append(reason)

    def on_failure(sender: Any = None, exception: Any = None, **kw: Any) -> None:
        seen["failure"].append(exception)

    def on_postrun(sender: Any = None, state: Any = None, **kw: Any) -> None:
        seen["postrun"].append(state)

    signals.task_retry.connect(on_retry, weak=False)
    signals.task_failure.connect(on_failure, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)
    yield seen
    signals.task_retry.disconnect(on_retry)
    signals.task_failure.disconnect(on_failure)
    signals.task_postrun.disconnect(on_postrun)


@pytest.fixture
def events() -> Iterator[Recorder]:
    """Every retrykit event from any thread (the worker runs in its own)."""
    recorder = Recorder()
    unsubscribe = retrykit.events.subscribe(recorder)
    yield recorder
    unsubscribe()


@pytest.fixture
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """retrykit's sleeps fail the test: a bound task must never sleep in the worker."""

    def forbidden(*a: Any) -> None:
        raise AssertionError("retrykit slept inside a Celery worker")

    monkeypatch.setattr(retrykit._scope, "sleep_sync", forbidden)
    monkeypatch.setattr(retrykit._scope, "sleep_async", forbidden)


# --------------------------------------------------------------------------- the core behaviour


@pytest.mark.usefixtures("no_sleeping")
def test_retries_go_through_the_broker(broker: str, spy: dict[str, list[Any]], events: Recorder) -> None:
    """Each retry is a new delivery after the countdown; the task ends with the original error."""
    app = make_app(broker)
    runs: list[tuple[int, float, bool]] = []

    @task(fast(4, delay=0.2), app=app, bind=True)
    def flaky(self: Any) -> None:
        runs.append((self.request.retries, time.monotonic(), self.request.is_eager))
        raise ConnectionResetError("down")

    states = set()
    rec = events
    with worker(app):
        result = flaky.delay()
        deadline = time.monotonic() + 30
        while not result.ready() and time.monotonic() < deadline:
            states.add(result.state)
            time.sleep(0.02)
        outcome = wait(result)
    assert [0, 1, 2, 3] == [r[0] for r in runs]
    assert all(b[1] - a[1] >= 0.19 for a, b in itertools.pairwise(runs))
    assert not any(r[2] for r in runs)
    assert isinstance(outcome, ConnectionResetError)
    assert "RETRY" in states
    assert [0.2, 0.2, 0.2] == [r.when for r in spy["retry"]]
    assert [0.2, 0.2, 0.2] == rec.sleeps
    assert {flaky.name} == {e.operation for e in rec.retries}
    assert 1 == len(spy["failure"])


@pytest.mark.parametrize(("attempts", "celery_default"), [(6, 3), (2, 3)])
def test_exactly_max_attempts_executions(attempts: int, celery_default: int) -> None:
    """max_attempts=N is exactly N executions, whatever Celery's own default max_retries is."""
    app = make_app("memory")
    runs: list[int] = []

    @task(fast(attempts), app=app, bind=True)
    def flaky(self: Any) -> None:
        runs.append(self.request.retries)
        raise ConnectionResetError

    assert RetrykitTask.max_retries == celery_default
    with worker(app):
        outcome = wait(flaky.delay())
    assert list(range(attempts)) == runs
    assert isinstance(outcome, ConnectionResetError)
    assert attempts - 1 == flaky.max_retries


def test_non_retryable_fails_at_once(broker: str, spy: dict[str, list[Any]]) -> None:
    """A data error: one execution, no retry published, never a RETRY state, the original error."""
    app = make_app(broker)
    runs: list[int] = []

    @task(fast(4), app=app, bind=True)
    def bad(self: Any) -> None:
        runs.append(self.request.retries)
        raise ValueError("bad input")

    with worker(app):
        result = bad.delay()
        states = set()
        deadline = time.monotonic() + 20
        while not result.ready() and time.monotonic() < deadline:
            states.add(result.state)
            time.sleep(0.01)
        outcome = wait(result)
    assert [0] == runs
    assert isinstance(outcome, ValueError)
    assert "RETRY" not in states
    assert [] == spy["retry"]


def test_nested_retrykit_layers_make_one_attempt(broker: str) -> None:
    """A 4-attempt helper inside a 4-attempt task runs 4 times in all, not 16."""
    app = make_app(broker)
    helper_runs: list[int] = []

    @retrykit.retry(fast(4))
    def helper() -> None:
        helper_runs.append(1)
        raise ConnectionResetError

    @task(fast(4), app=app)
    def outer() -> None:
        helper()

    with worker(app):
        outcome = wait(outer.delay())
    assert 4 == len(helper_runs)
    assert isinstance(outcome, ConnectionResetError)


def test_celery_control_flow_passes_through(broker: str, spy: dict[str, list[Any]]) -> None:
    """A body calling self.retry() (through a retrykit helper) publishes one retry per attempt."""
    app = make_app(broker)
    runs: list[int] = []

    @task(fast(4), app=app, bind=True)
    def manual(self: Any) -> str:
        runs.append(self.request.retries)

        @retrykit.retry(fast(3))
        def step() -> None:
            if self.request.retries < 2:
                raise self.retry(countdown=0.01)

        step()
        return "done"

    @task(fast(4), app=app, bind=True)
    def ignored(self: Any) -> None:
        runs.append(-1)
        raise Ignore()

    with worker(app):
        assert "done" == wait(manual.delay())
        result = ignored.delay()
        time.sleep(0.3)
    assert [0, 1, 2, -1] == runs
    assert 2 == len(spy["retry"])
    assert result.state == "PENDING"


def test_max_retries_never_leaks_between_requests() -> None:
    """A request limited by one category does not change the next request's budget."""
    app = make_app("memory")
    policy = Policy(
        strategies={
            NET: Strategy.immediately(max_retries=1),
            "temporary_error": Strategy.backoff(0.01, 0.02, max_retries=3),
        },
        max_attempts=10,
    )
    runs: list[tuple[str, int]] = []

    @task(policy, app=app, bind=True)
    def job(self: Any, kind: str) -> None:
        runs.append((kind, self.request.retries))
        raise ConnectionResetError if kind == "net" else RuntimeError("temporary")

    with worker(app):
        wait(job.delay("net"))
        wait(job.delay("temp"))
    assert [("net", 0), ("net", 1)] == runs[:2]
    assert [("temp", 0), ("temp", 1), ("temp", 2), ("temp", 3)] == runs[2:]
    assert not hasattr(job, "override_max_retries")


def test_threads_pool_keeps_requests_apart() -> None:
    """20 concurrent failing requests in a threads pool each see retries 0..2 exactly once."""
    app = make_app("memory")
    runs: dict[str, list[int]] = {}

    @task(fast(3, delay=0.02), app=app, bind=True)
    def flaky(self: Any, n: int) -> None:
        runs.setdefault(self.request.id, []).append(self.request.retries)
        raise ConnectionResetError

    with worker(app, pool="threads", concurrency=4):
        results = [flaky.delay(n) for n in range(20)]
        for r in results:
            wait(r)
    assert 20 == len(runs)
    assert all(sorted(v) == [0, 1, 2] for v in runs.values())


def test_hooks_and_signals_fire_once_per_attempt(spy: dict[str, list[Any]]) -> None:
    """on_retry per retry; on_failure and after_return('FAILURE') once at the end."""
    app = make_app("memory")
    hooks: list[str] = []

    class Hooked(RetrykitTask):  # type: ignore[misc]
        retrykit_policy = fast(3)

        def on_retry(self, exc: Any, task_id: Any, args: Any, kwargs: Any, einfo: Any) -> None:
            hooks.append("on_retry")

        def on_failure(self, exc: Any, task_id: Any, args: Any, kwargs: Any, einfo: Any) -> None:
            hooks.append("on_failure")

        def after_return(self, status: str, *args: Any) -> None:
            super().after_return(status, *args)
            hooks.append(f"after_return:{status}")

    @app.task(base=Hooked, shared=False)
    def flaky() -> None:
        raise ConnectionResetError

    with worker(app):
        wait(flaky.delay())
    assert ["on_retry", "on_retry", "on_failure", "after_return:FAILURE"] == hooks
    assert 2 == len(spy["retry"])
    assert ["RETRY", "RETRY", "FAILURE"] == spy["postrun"]


@pytest.mark.parametrize("asked_by", ["policy", "body"])
def test_a_retrys_recorded_traceback_shows_no_adapter_frames(asked_by: str) -> None:
    """A recorded retry traceback: no adapter frames when the policy decided, the body's for self.retry()."""
    app = make_app("memory")
    seen: list[str] = []

    def on_retry(einfo: Any = None, **kw: Any) -> None:
        seen.append(einfo.traceback)

    @task(fast(2), app=app, bind=True)
    def flaky(self: Any) -> None:
        if asked_by == "body" and not self.request.retries:
            self.retry(exc=ConnectionResetError("asked"))
        raise ConnectionResetError

    signals.task_retry.connect(on_retry, weak=False)
    try:
        with worker(app):
            wait(flaky.delay())
    finally:
        signals.task_retry.disconnect(on_retry)
    assert 1 == len(seen)
    assert "Retry in" in seen[0]
    assert ("in flaky" in seen[0]) == (asked_by == "body")
    assert ("_retrykit" in seen[0]) == (asked_by == "body")


def test_message_identity_survives_retries(broker: str) -> None:
    """Task id, args, kwargs, priority and headers are the same on every attempt."""
    app = make_app(broker)
    seen: list[tuple[Any, ...]] = []

    @task(fast(3), app=app, bind=True)
    def flaky(self: Any, a: int, b: str = "") -> None:
        r = self.request
        seen.append(
            (r.id, r.args, r.kwargs, (r.delivery_info or {}).get("priority"), (r.headers or {}).get("x"))
        )
        raise ConnectionResetError

    with worker(app):
        wait(flaky.apply_async(args=(1,), kwargs={"b": "z"}, priority=7, headers={"x": "1"}))
    assert 3 == len(seen)
    assert all(attempt == seen[0] for attempt in seen)
    _task_id, args, kwargs, priority, header = seen[0]
    assert (list(args), kwargs, header) == ([1], {"b": "z"}, "1")
    if broker != "memory":
        assert priority == 7


def test_a_strategy_routes_its_retries_to_a_queue(broker: str) -> None:
    """A strategy naming a queue publishes its retries there."""
    app = make_app(broker)
    retry_queue = f"{app.conf.task_default_queue}-retries"
    policy = Policy(strategies={NET: Strategy.delay(0.02, max_retries=2, queue=retry_queue)}, max_attempts=3)
    seen: list[str] = []

    @task(policy, app=app, bind=True)
    def flaky(self: Any) -> None:
        seen.append((self.request.delivery_info or {}).get("routing_key") or "")
        raise ConnectionResetError

    with worker(app, queues=[app.conf.task_default_queue, retry_queue]):
        wait(flaky.delay())
    assert [app.conf.task_default_queue, retry_queue, retry_queue] == seen
    with contextlib.suppress(Exception), app.connection_for_write() as conn:
        conn.default_channel.queue_delete(retry_queue)


def test_no_retry_is_published_past_expiry(broker: str) -> None:
    """A retry that would land after ``expires`` is not published: FAILURE, not REVOKED."""
    app = make_app(broker)
    runs: list[int] = []

    @task(fast(4, delay=3), app=app, bind=True)
    def flaky(self: Any) -> None:
        runs.append(self.request.retries)
        raise ConnectionResetError

    with worker(app):
        result = flaky.apply_async(expires=2)
        outcome = wait(result)
        state = result.state
    assert [0] == runs
    assert isinstance(outcome, ConnectionResetError)
    assert "FAILURE" == state


def test_long_delays_are_waited_in_hops_not_shortened(events: Recorder) -> None:
    """On Redis with visibility_timeout=3 a 5 s delay is waited in 1.5 s hops: not shortened, one body."""
    app = make_app("redis")
    app.conf.broker_transport_options = {"polling_interval": 0.01, "visibility_timeout": 3}
    assert 1.5 == pytest.approx(max_countdown(app))
    runs: list[tuple[int, float]] = []

    @task(fast(2, delay=5), app=app, bind=True)
    def flaky(self: Any) -> None:
        runs.append((self.request.retries, time.monotonic()))
        raise ConnectionResetError

    rec = events
    with worker(app):
        outcome = wait(flaky.delay(), timeout=40)
    assert [0, 1] == [r[0] for r in runs]
    assert runs[1][1] - runs[0][1] >= 5 - 0.6
    assert isinstance(outcome, ConnectionResetError)
    assert [pytest.approx(5)] == rec.sleeps


def test_max_countdown_per_broker() -> None:
    """The cap follows the broker: Redis visibility timeout, RabbitMQ consumer timeout, none in memory."""
    assert 1800 == pytest.approx(max_countdown(celery.Celery(broker="redis://x")))
    assert 1800 == pytest.approx(max_countdown(celery.Celery(broker="sentinel://x")))
    assert 900 == pytest.approx(max_countdown(celery.Celery(broker="sqs://x")))
    assert 900 == pytest.approx(max_countdown(celery.Celery(broker="amqp://x")))
    assert max_countdown(celery.Celery(broker="memory://")) is None


# --------------------------------------------------------------------------- modes


def test_direct_eager_and_propagating_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Direct call: 1 attempt. apply(): every attempt, no sleeping. apply(throw=True): Celery's Retry."""
    slept: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(
        time, "sleep", lambda seconds: (slept.append(seconds), real_sleep(min(seconds, 0.01)))
    )
    app = make_app("memory")
    runs: list[int] = []

    @task(fast(3, delay=60), app=app, bind=True)
    def flaky(self: Any) -> None:
        runs.append(self.request.retries)
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        flaky()
    assert [0] == runs
    runs.clear()
    result = flaky.apply()
    assert [] == [s for s in slept if s >= 1]  # the 60 s delays are not slept, not even cut short
    assert [0, 1, 2] == runs
    assert isinstance(result.result, ConnectionResetError)
    runs.clear()
    with pytest.raises(Retry):
        flaky.apply(throw=True)
    assert [0] == runs


# --------------------------------------------------------------------------- configuration


def test_celery_retry_options_are_refused() -> None:
    """autoretry_for and friends next to a retrykit policy are refused (two retry authorities)."""
    app = make_app("memory")
    with pytest.raises(ConfigError, match="two retry authorities"):
        task("http", app=app, autoretry_for=(ConnectionError,))
    with pytest.raises(ConfigError, match="retry_backoff"):

        @app.task(base=RetrykitTask, retrykit_policy="http", retry_backoff=True, shared=False)
        def t() -> None: ...

        t.name  # noqa: B018 - a lazy task is created on first use


def test_wrong_order_and_double_policies_are_refused() -> None:
    """@retrykit.retry over @app.task, or a policy applied twice, fails at decoration."""
    app = make_app("memory")

    @app.task(shared=False)
    def plain() -> None: ...

    with pytest.raises(ConfigError, match="wrong order"):
        retrykit.retry("http")(plain)

    def job() -> None: ...

    with pytest.raises(ConfigError, match="applied twice"):
        task("http", app=app)(retrykit.retry("http")(job))
    with pytest.raises(ConfigError, match="applied twice"):

        @app.task(base=RetrykitTask, retrykit_policy="http", shared=False)
        @retrykit.retry("http")
        def twice() -> None: ...

        twice.name  # noqa: B018
    with pytest.raises(ConfigError, match="max_retries"):
        task(fast(3), app=app, max_retries=10)(job).name  # noqa: B018


def test_task_options_for_a_preset() -> None:
    """task_options('tracking') binds the policy with reliable defaults and a matching max_retries."""
    options = task_options("tracking")
    assert options["base"] is RetrykitTask
    assert (True, True) == (options["acks_late"], options["reject_on_worker_lost"])
    assert 4 + 3 + 3 + 5 == options["max_retries"]
    assert {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
    } == app_options()
    app = make_app("memory")

    @app.task(**task_options("tracking"), shared=False)
    def track() -> None: ...

    assert 15 == track.max_retries
    assert track.acks_late


def test_base_class_way_in(broker: str) -> None:
    """The BaseTaskWithRetry pattern: a RetrykitTask subclass naming a policy."""
    app = make_app(broker)
    runs: list[int] = []

    class BaseTaskWithRetry(RetrykitTask):  # type: ignore[misc]
        retrykit_policy = fast(3)

    @app.task(bind=True, base=BaseTaskWithRetry, shared=False)
    def flaky(self: Any) -> str:
        runs.append(self.request.retries)
        if self.request.retries < 2:
            raise TimeoutError
        return "ok"

    with worker(app):
        assert "ok" == wait(flaky.delay())
    assert [0, 1, 2] == runs


# --------------------------------------------------------------------------- async bodies


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_async_task_bodies(pool: str) -> None:
    """async def tasks run on a fresh loop per call, in solo and threads pools, retries included."""
    app = make_app("memory")
    runs: list[int] = []

    @task(fast(3), app=app, bind=True)
    async def fetch(self: Any, x: int) -> int:
        await asyncio.sleep(0)
        runs.append(self.request.retries)
        if self.request.retries < 1:
            raise ConnectionResetError
        return x * 2

    @app.task(base=RetrykitTask, retrykit_policy=fast(2), shared=False)
    async def plain(x: int) -> int:
        return x + 1

    with worker(app, pool=pool, concurrency=2):
        assert 42 == wait(fetch.delay(21))
        assert 10 == wait(fetch.delay(5))
        assert 8 == wait(plain.delay(7))
        assert 9 == wait(plain.delay(8))
    assert [0, 1, 0, 1] == runs


def test_async_task_called_eagerly_inside_a_running_loop() -> None:
    """apply() from async code runs the coroutine in a helper thread, not on the running loop."""
    app = make_app("memory")

    @task(fast(2), app=app)
    async def double(x: int) -> int:
        return x * 2

    async def main() -> int:
        return int(double.apply(args=(4,)).get())

    assert 8 == asyncio.run(main())


def test_chains_and_error_links_survive_retries() -> None:
    """A retried task's chain continues after its late success; link_error fires once at the end."""
    app = make_app("memory")
    errors: list[str] = []

    @task(fast(3), app=app, bind=True)
    def first(self: Any, x: int) -> int:
        if self.request.retries < 1:
            raise ConnectionResetError
        return x + 1

    @app.task(shared=False)
    def second(x: int) -> int:
        return x * 10

    @task(fast(3), app=app)
    def broken() -> None:
        raise ConnectionResetError

    @app.task(shared=False)
    def on_error(request: Any, exc: Any, traceback: Any) -> None:
        errors.append(type(exc).__name__)

    with worker(app):
        assert 20 == wait((first.s(1) | second.s()).delay())
        wait(broken.apply_async(link_error=on_error.s()))
        deadline = time.monotonic() + 10
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
    assert ["ConnectionResetError"] == errors


def test_log_lines_carry_the_task_id(caplog: pytest.LogCaptureFixture) -> None:
    """Each retrykit log line of a task names the task and its id."""
    app = make_app("memory")

    @task(fast(2), app=app, bind=True)
    def flaky(self: Any) -> None:
        raise ConnectionResetError

    with caplog.at_level("INFO", logger="retrykit"), worker(app):
        result = flaky.delay()
        wait(result)
    lines = [r.retrykit for r in caplog.records if hasattr(r, "retrykit")]  # type: ignore[attr-defined]
    assert ["retry_scheduled", "gave_up"] == [line["event"] for line in lines]
    assert {result.id} == {line["task_id"] for line in lines}
    assert {flaky.name} == {line["operation"] for line in lines}


# --------------------------------------------------------------------------- one authority (issue 13)


def test_the_policy_governs_the_bodys_own_retry(broker: str) -> None:
    """self.retry(exc=e, args=...) counts against max_attempts and waits the policy's delay, not 180 s."""
    app = make_app(broker)
    runs: list[tuple[int, int, float]] = []

    @task(fast(3, delay=0.05), app=app, bind=True)
    def seed(self: Any, n: int) -> None:
        runs.append((n, self.request.retries, time.monotonic()))
        try:
            raise ConnectionResetError(f"try {n}")
        except ConnectionResetError as e:
            raise self.retry(exc=e, args=(n + 1,), max_retries=100) from e  # a computed limit is ignored

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("retrykit")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.WARNING  # the worker sets the root logger to ERROR
    try:
        with worker(app):
            outcome = wait(seed.delay(0), timeout=20)
    finally:
        logger.removeHandler(handler)
        logger.level = level
    assert 1 == sum("is ignored" in line for line in seen)
    assert [(0, 0), (1, 1), (2, 2)] == [r[:2] for r in runs]
    assert all(b[2] - a[2] < 5 for a, b in itertools.pairwise(runs))
    assert isinstance(outcome, ConnectionResetError)


@pytest.mark.parametrize(
    ("asked", "delay"),
    [
        ({"exc": ValueError("bad row")}, 0.2),  # the policy alone would not retry it: the temporary wait
        ({"exc": ValueError("bad row"), "countdown": 0.1}, 0.1),
        ({"exc": ConnectionResetError("reset")}, 0.05),  # its own category's wait
        ({"exc": ConnectionResetError("reset"), "countdown": 0.1}, 0.1),
    ],
)
def test_an_explicit_retry_is_honoured_within_the_policy(
    asked: dict[str, Any], delay: float, events: Recorder
) -> None:
    """self.retry(exc=...) retries even what the policy would not, counted against max_attempts."""
    app = make_app("memory")
    runs: list[int] = []
    strategies = {NET: Strategy.delay(0.05), ErrorCategory.TEMPORARY_ERROR: Strategy.delay(0.2)}
    policy = Policy(strategies=strategies, max_attempts=3)

    @task(policy, app=app, bind=True)
    def asks(self: Any) -> None:
        runs.append(self.request.retries)
        raise self.retry(**asked)

    with worker(app):
        outcome = wait(asks.delay(), timeout=20)
    assert [0, 1, 2] == runs
    assert type(asked["exc"]) is type(outcome)
    assert [pytest.approx(delay, abs=0.01)] * 2 == events.sleeps


@pytest.mark.parametrize("how", ["strategy", "countdown", "breaker"])
def test_the_longest_wait_is_published_not_an_overflow(how: str) -> None:
    """A year-long retry (the cap, countdown=1e308, a breaker open 1e12 s): RETRY stored, no OverflowError."""
    from retrykit.queues import LONGEST_DELAY

    app = make_app("memory")
    runs: list[int] = []
    breaker = retrykit.CircuitBreaker(
        f"rk-{uuid.uuid4().hex[:8]}", min_throughput=1, open_for=1e12
    )  # opened by the first failure
    policy = Policy(
        strategies={NET: Strategy.delay(0.01 if how == "breaker" else LONGEST_DELAY, max_retries=2)},
        max_attempts=3,
        breaker=breaker if how == "breaker" else None,
    )

    @task(policy, app=app, bind=True)
    def waits(self: Any) -> None:
        runs.append(self.request.retries)
        if how == "countdown":
            raise self.retry(exc=ConnectionResetError(), countdown=1e308)
        raise ConnectionResetError

    with worker(app):
        result = waits.delay()
        deadline = time.monotonic() + 10
        while result.state != "RETRY" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ("RETRY", [0]) == (result.state, runs)
        assert isinstance(result.result, ConnectionResetError)


# --------------------------------------------------------------------------- switching an existing app


def _celery_style_tasks(app: Any, runs: dict[str, list[Any]]) -> dict[str, Any]:
    """Tasks written with Celery's own retry options and nothing of retrykit's."""

    def record(name: str, value: Any) -> None:
        runs.setdefault(name, []).append(value)

    @app.task(bind=True, shared=False)
    def plain(self: Any) -> None:
        record("plain", self.request.retries)
        raise RuntimeError("nobody asked to retry this")

    @app.task(
        bind=True, shared=False, autoretry_for=(ConnectionError,), max_retries=2, default_retry_delay=0.01
    )
    def auto(self: Any) -> None:
        record("auto", self.request.retries)
        raise ConnectionResetError

    @app.task(bind=True, shared=False, default_retry_delay=0.01)
    def explicit(self: Any) -> None:
        record("explicit", self.request.retries)
        raise self.retry(exc=ValueError("bad row"), max_retries=4)

    @app.task(bind=True, shared=False, max_retries=1, default_retry_delay=0.01)
    def bare(self: Any) -> None:
        record("bare", self.request.retries)
        raise self.retry()

    @app.task(bind=True, shared=False)
    def recurse(self: Any, i: int) -> Any:
        record("recurse", list(self.request.args))
        return recurse(i - 1) if i else list(self.request.args)

    return {"plain": plain, "auto": auto, "explicit": explicit, "bare": bare, "recurse": recurse}


@pytest.mark.parametrize("task_cls", ["celery.app.task:Task", "retrykit_celery:RetrykitTask"])
def test_without_a_policy_a_task_behaves_as_with_celerys_task(task_cls: str) -> None:
    """task_cls=RetrykitTask, no policy named: Celery's options, retries and self-calls as with Task."""
    app = make_app("memory")
    app2 = celery.Celery(
        f"rk{uuid.uuid4().hex[:8]}", broker="memory://", backend="cache+memory://", task_cls=task_cls
    )
    app2.conf.update(app.conf)
    runs: dict[str, list[Any]] = {}
    tasks = _celery_style_tasks(app2, runs)
    with worker(app2):
        outcomes = {name: wait(t.delay(2) if name == "recurse" else t.delay()) for name, t in tasks.items()}
    assert {"plain": [0], "auto": [0, 1, 2], "explicit": [0, 1, 2, 3, 4], "bare": [0, 1]} == {
        k: v for k, v in runs.items() if k != "recurse"
    }
    assert [[2], [1], [0]] == runs["recurse"]
    assert [0] == outcomes["recurse"]
    assert isinstance(outcomes["plain"], RuntimeError)
    assert isinstance(outcomes["auto"], ConnectionResetError)
    assert isinstance(outcomes["explicit"], ValueError)
    assert type(outcomes["bare"]).__name__ == "MaxRetriesExceededError"
    assert 3 == tasks["plain"].max_retries


@pytest.fixture
def _only_celerys_builtins_shared() -> Iterator[None]:
    """
    Apps finalized inside get Celery's built-in tasks only: ``@app.task`` shares a task with every
    app finalized later, and a task another test shared (with autoretry_for, say) would come under
    an app-wide policy too, and be refused.
    """
    from celery import _state

    shared = set(_state._on_app_finalizers)
    builtins = {c for c in shared if getattr(c, "__module__", "") == "celery.app.builtins"}
    _state._on_app_finalizers.intersection_update(builtins)
    try:
        yield
    finally:
        _state._on_app_finalizers.update(shared)


@pytest.mark.usefixtures("_only_celerys_builtins_shared")
def test_an_app_wide_policy_and_a_task_that_keeps_celerys() -> None:
    """app.conf.retrykit_policy names the policy of every task naming none; retrykit_policy=None opts out."""
    app = make_app("memory")
    app2 = celery.Celery(
        f"rk{uuid.uuid4().hex[:8]}", broker="memory://", backend="cache+memory://", task_cls=RetrykitTask
    )
    app2.conf.update(app.conf)
    app2.conf.retrykit_policy = fast(3)
    runs: list[str] = []

    @app2.task(shared=False)
    def governed() -> None:
        runs.append("governed")
        raise ConnectionResetError

    @app2.task(shared=False, retrykit_policy=None)
    def celerys() -> None:
        runs.append("celerys")
        raise ConnectionResetError

    with worker(app2):
        wait(governed.delay())
        wait(celerys.delay())
    assert ["governed"] * 3 + ["celerys"] == runs
    assert (2, 3) == (governed.max_retries, celerys.max_retries)
    assert app2.tasks["celery.chord_unlock"]._retrykit_off


@pytest.mark.parametrize("named_by", ["task", "app"])
def test_a_refused_task_never_leaves_the_app_half_finalized(named_by: str) -> None:
    """Celery options next to a policy: refused before the task is recorded, and again at every access."""
    app = celery.Celery(f"rk{uuid.uuid4().hex[:8]}", broker="memory://", task_cls=RetrykitTask)
    own: dict[str, Any] = {"retrykit_policy": "http"} if named_by == "task" else {}
    if named_by == "app":
        app.conf.retrykit_policy = "http"

    @app.task(shared=False)
    def before() -> None: ...

    @app.task(shared=False, autoretry_for=(ConnectionError,), **own)
    def both() -> None: ...

    @app.task(shared=False)
    def after() -> None: ...

    for _ in range(3):
        with pytest.raises(ConfigError, match="two retry authorities"):
            app.tasks  # noqa: B018 - finalizes the app
        with pytest.raises(ConfigError, match="two retry authorities"):
            both.name  # noqa: B018 - a lazy task is created on first use
        assert not app.finalized
        assert not [name for name in app._tasks if name.endswith(".both")]


def test_a_direct_self_call_is_one_plain_attempt() -> None:
    """A task calling itself in its body: a fresh request (its own args), one attempt, no retry of its own."""
    app = make_app("memory")
    runs: list[Any] = []

    @task(fast(5, delay=60), app=app, bind=True)
    def recurse(self: Any, i: int) -> Any:
        runs.append(list(self.request.args))
        return recurse(i - 1) if i else list(self.request.args)

    @task(fast(5, delay=60), app=app, bind=True)
    def catches(self: Any, i: int) -> str:
        runs.append(i)
        if i:
            try:
                catches(i - 1)
            except ConnectionResetError:
                return "caught the direct call's failure"
        raise ConnectionResetError

    assert [0] == recurse.apply(args=(2,)).get()
    assert [[2], [1], [0]] == runs
    runs.clear()
    assert "caught the direct call's failure" == catches.apply(args=(1,)).get()
    assert [1, 0] == runs


@pytest.mark.parametrize(
    ("error", "runs"),
    [(ConnectionResetError, 3), (ConnectionAbortedError, 1), (RuntimeError, 1), (ValueError, 1)],
)
def test_celery_options_become_the_equivalent_policy(error: type[Exception], runs: int) -> None:
    """policy_from_celery(same keywords): the same runs and the same outcome as Celery's own options."""
    from retrykit_celery import policy_from_celery

    options: dict[str, Any] = {
        "autoretry_for": (ConnectionError,),
        "dont_autoretry_for": (ConnectionAbortedError,),
        "max_retries": 2,
        "retry_backoff": 0.01,
        "retry_jitter": False,
    }
    app = make_app("memory")
    seen: dict[str, int] = {"celery": 0, "retrykit": 0}

    def body(who: str) -> None:
        seen[who] += 1
        if error is ValueError:
            raise ValueError("not retried, even with a retried cause") from ConnectionResetError()
        raise error

    def by_celery() -> None:
        body("celery")

    def by_retrykit() -> None:
        body("retrykit")

    celerys = app.task(shared=False, **options)(by_celery)
    switched = task(policy_from_celery(**options), app=app)(by_retrykit)
    with worker(app):
        outcomes = [wait(celerys.delay()), wait(switched.delay())]
    assert {"celery": runs, "retrykit": runs} == seen
    assert [error, error] == [type(o) for o in outcomes]


def test_the_bridge_reads_a_task_and_celerys_defaults() -> None:
    """policy_from_celery(task): its options, else Celery's (3 retries, 180 s); unbounded is refused."""
    from retrykit_celery import policy_from_celery, policy_of

    app = make_app("memory")

    @app.task(shared=False, autoretry_for=(OSError,), retry_backoff=True, max_retries=4)
    def backs_off() -> None: ...

    policy = policy_from_celery(backs_off)
    temporary = policy.strategy_for(ErrorCategory.TEMPORARY_ERROR)
    assert (5, 4, 600.0) == (policy.max_attempts, temporary.max_retries, temporary.max_delay)
    assert [(0, 1), (0, 2), (0, 4)] == [temporary.delay_range(n) for n in (1, 2, 3)]
    assert policy == policy_of(backs_off)
    default = policy_from_celery()
    assert (4, (180.0, 180.0)) == (
        default.max_attempts,
        default.strategy_for(ErrorCategory.TEMPORARY_ERROR).delay_range(1),
    )
    assert 1 == policy_from_celery(max_retries=0).max_attempts
    assert 5 == policy_from_celery(retry_kwargs={"countdown": 5}).strategy_for("temporary_error").base_delay
    for bad in ({"max_retries": None}, {"retry_kwargs": {"queue": "x"}}, {"autoretry_for": (1,)}):
        with pytest.raises(ConfigError):
            policy_from_celery(**bad)


def test_app_wide_task_cls_and_dont_autoretry_for() -> None:
    """Celery(task_cls=RetrykitTask) finalizes (celery.* builtins keep Celery's behaviour) and retries."""
    app = make_app("memory")
    app2 = celery.Celery("rkwide", broker="memory://", backend="cache+memory://", task_cls=RetrykitTask)
    app2.conf.update(app.conf)
    runs: list[int] = []

    @app2.task(bind=True, retrykit_policy=fast(3), dont_autoretry_for=(ValueError,))
    def flaky(self: Any) -> str:
        runs.append(self.request.retries)
        if self.request.retries < 2:
            raise ConnectionResetError
        return "ok"

    app2.finalize()
    assert not isinstance(app2.tasks["celery.chord_unlock"].max_retries, int)
    with worker(app2):
        assert "ok" == wait(flaky.delay())
    assert [0, 1, 2] == runs

    def job() -> None: ...

    assert task("http", app=app, dont_autoretry_for=(ValueError,))(job).name


def test_double_authorities_are_refused_at_registration() -> None:
    """autoretry_for via register_task or a subclass, retry_on_worker_lost, a tenacity-wrapped body."""
    tenacity = pytest.importorskip("tenacity")
    app = make_app("memory")

    class Inherits(RetrykitTask):  # type: ignore[misc]
        name = "rk.inherits"
        retrykit_policy = "http"
        autoretry_for = (ConnectionError,)

        def run(self) -> None: ...

    with pytest.raises(ConfigError, match="two retry authorities"):
        app.register_task(Inherits)

    class Plain(RetrykitTask):  # type: ignore[misc]
        name = "rk.plain"
        retrykit_policy = "http"

        def run(self) -> None: ...

    with pytest.raises(ConfigError, match="autoretry_for"):
        app.register_task(Plain(), autoretry_for=(ConnectionError,))

    def job() -> None: ...

    with pytest.raises(ConfigError, match="retry_on_worker_lost"):
        task("http", app=app, retry_on_worker_lost=True)(job).name  # noqa: B018

    @tenacity.retry(stop=tenacity.stop_after_attempt(3))
    def wrapped() -> None: ...

    with pytest.raises(ConfigError, match="tenacity"):
        task("http", app=app)(wrapped).name  # noqa: B018

    def seed(self: Any, order_id: int) -> None: ...  # a self parameter, no bind=True

    with pytest.raises(ConfigError, match="bind=True"):
        task("tracking", app=app)(seed)


def test_attempt_lost_round_trips_through_result_backends() -> None:
    """AttemptLost survives pickle and the JSON result backend's exception encoding."""
    import pickle

    from celery.backends.base import BaseBackend

    from retrykit_celery import AttemptLost

    lost = AttemptLost("abc", 3)
    again = pickle.loads(pickle.dumps(lost))
    assert (again.task_id, again.attempt, str(again)) == ("abc", 3, str(lost))
    for serializer in ("json", "pickle"):
        backend = BaseBackend(celery.Celery(), serializer=serializer, accept=[serializer])
        stored = backend.decode(backend.encode(backend.prepare_exception(lost)))
        back = backend.exception_to_python(stored)
        assert type(back) is AttemptLost
        assert (back.task_id, back.attempt) == ("abc", 3)


@pytest.mark.parametrize("stored", ["SUCCESS", "FAILURE", "PENDING"])
@pytest.mark.parametrize("celery_check", [True, False], ids=["celery-check", "celery-5.4"])
def test_a_lost_attempt_that_stored_success_is_not_counted(
    stored: str, celery_check: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker asks the backend whether a lost attempt stored SUCCESS, also where Celery (5.4.0) cannot."""
    from celery.contrib.testing.mocks import TaskMessage
    from celery.worker.request import Request

    from retrykit_celery._request import RetrykitRequest

    app = make_app("memory")

    @task(fast(), app=app, bind=True)
    def job(self: Any) -> None: ...

    if not celery_check:  # as on Celery 5.4.0, whose Request has no _success_was_stored
        monkeypatch.delattr(Request, "_success_was_stored", raising=False)
    task_id = uuid.uuid4().hex
    if stored != "PENDING":
        job.backend.store_result(task_id, None, stored)
    request = RetrykitRequest(TaskMessage(job.name, id=task_id), app=app, task=job)
    assert (stored == "SUCCESS") is request._stored_success()


# --------------------------------------------------------------------------- eager mode, the body's countdown


@pytest.mark.parametrize("how", ["task_always_eager", "apply"])
def test_eager_attempts_see_their_retries(how: str) -> None:
    """Eager mode: the bodies see request.retries 0, 1, 2 and the task id; the task succeeds on the third."""
    app = make_app("memory", task_always_eager=how == "task_always_eager")
    seen: list[tuple[int, Any]] = []

    @task(fast(5, delay=60), app=app, bind=True)
    def third(self: Any) -> int:
        seen.append((self.request.retries, self.request.id))
        if self.request.retries < 2:
            raise ConnectionResetError
        return int(self.request.retries) + 1

    result = third.delay() if how == "task_always_eager" else third.apply()
    assert 3 == result.get()
    assert [0, 1, 2] == [s[0] for s in seen]
    assert {result.id} == {s[1] for s in seen}
    assert result.id is not None


@pytest.mark.parametrize("asked", [{"countdown": 0.3}, {"countdown": 0}, {"eta": 0.3}])
def test_the_bodys_countdown_is_the_reported_delay(
    asked: dict[str, float], events: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """A bare self.retry(countdown=x) (or eta): the event and the log line say x, not the policy's delay."""
    from datetime import datetime, timedelta

    app = make_app("memory")
    runs: list[float] = []

    @task(fast(3, delay=7), app=app, bind=True)
    def asks(self: Any) -> str:
        runs.append(time.monotonic())
        if self.request.retries == 0:
            if "eta" in asked:
                raise self.retry(eta=datetime.now(UTC) + timedelta(seconds=asked["eta"]))
            raise self.retry(countdown=asked["countdown"])
        return "ok"

    with caplog.at_level("WARNING", logger="retrykit"), worker(app):
        assert "ok" == wait(asks.delay(), timeout=20)
    wanted = next(iter(asked.values()))
    assert [pytest.approx(wanted, abs=0.05)] == events.sleeps
    lines = [
        r.retrykit for r in caplog.records if getattr(r, "retrykit", {}).get("event") == "retry_scheduled"
    ]  # type: ignore[attr-defined]
    assert [pytest.approx(wanted, abs=0.05)] == [line["delay"] for line in lines]
    assert 2 == len(runs)
