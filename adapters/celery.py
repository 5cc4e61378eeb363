"""
The Celery binding: the same policies on Celery tasks, retried through the broker.

Two ways in, both registering the policy with the task in one step:

* ``@retrykit.adapters.celery.task("tracking", app=app, bind=True)`` in place of ``@app.task``
  (or of ``@shared_task`` without *app*);
* ``@app.task(base=RetrykitTask, retrykit_policy="tracking")``, or a subclass of ``RetrykitTask``
  that sets ``retrykit_policy`` (the ``BaseTaskWithRetry`` pattern).

Each failure is classified by the core; a retry is ``self.retry(countdown=delay, exc=exc)``, so
the worker never sleeps and the wait lives in the broker. The attempt number is
``request.retries + 1``; per-category counters travel in a message header. Inner
``@retrykit.retry`` layers make one attempt inside a bound task (the one-layer rule), Celery's
``Retry``/``Ignore``/``Reject`` pass through untouched, and the original exception ends the task
when retrykit gives up. ``celery`` is imported by this module only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from retrykit import _decision, _scope
from retrykit._analysis import Alert, Thresholds, cleanup_old_errors, monitor
from retrykit._classify import ErrorCategory
from retrykit._errors import ConfigError
from retrykit._loop import Call
from retrykit._policy import Policy

from ._source import PolicySource, resolve

try:
    import celery
    from celery.exceptions import Ignore
    from celery.schedules import schedule
except ImportError:  # pragma: no cover - celery is in the dev extra
    raise ImportError('retrykit.adapters.celery needs Celery: pip install "retrykit[celery]"') from None

_log = logging.getLogger("retrykit")
OWNER = "celery-task"
"""The scope owner inside a task bound to a policy: nested retrykit layers make one attempt."""
HEADER = "retrykit"
"""The message header that carries per-category counters between attempts."""
CELERY_RETRY_OPTIONS = (
    "autoretry_for",
    "dont_autoretry_for",
    "retry_backoff",
    "retry_backoff_max",
    "retry_jitter",
    "retry_kwargs",
)
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
"""kombu's Redis/SQS default, used when ``broker_transport_options`` does not say."""
RABBITMQ_CONSUMER_TIMEOUT = 1800.0
"""RabbitMQ's default ``consumer_timeout`` (30 min): an ETA message held longer kills the channel."""
COUNTDOWN_MARGIN = 0.9
"""Countdowns are capped at this fraction of the broker's limit."""


class AttemptLost(RuntimeError):
    """
    An attempt of a task started but never finished (its worker died); found by the duplicate
    guard when the broker delivered the attempt again. It counts as a failed attempt.
    """

    def __init__(self, task_id: str, attempt: int) -> None:
        self.task_id = task_id
        self.attempt = attempt
        super().__init__(f"attempt {attempt} of task {task_id} started but never finished (worker lost)")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task_id, self.attempt))


class AttemptGuard:
    """
    Runs each attempt ``(task id, request.retries)`` at most once, with Redis ``SET NX``.

    The first delivery of an attempt marks it running and runs it; a later delivery of an attempt
    that finished is skipped (``Ignore``: acked, state untouched); a later delivery of an attempt
    that is still marked running means its worker died: the attempt counts as failed
    (``AttemptLost``) and the policy decides, without running the body again. If Redis is
    unreachable the guard lets the attempt run (nothing is lost) and logs one warning.
    """

    def __init__(self, url: str, *, prefix: str = "retrykit:attempt", ttl: float = 7 * 86400) -> None:
        import redis

        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                "retrykit_guard", url, "must be a Redis URL", "use e.g. redis://127.0.0.1:6379/0"
            )
        self.url = url
        self.prefix = prefix
        self.ttl = int(ttl)
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=2.0, decode_responses=True
        )
        self._errors = (redis.RedisError, OSError)
        self._warned = False

    def key(self, task_id: str, retries: int) -> str:
        """The Redis key of one attempt (hash-tagged by task id for Redis Cluster)."""
        return f"{self.prefix}:{{{task_id}}}:{retries}"

    def begin(self, task_id: str, retries: int) -> str:
        """``"run"`` (first delivery), ``"done"`` (already finished) or ``"lost"`` (died running)."""
        key = self.key(task_id, retries)
        try:
            if self.client.set(key, "running", nx=True, ex=self.ttl):
                return "run"
            return "done" if self.client.get(key) == "done" else "lost"
        except self._errors as err:
            self._warn(err)
            return "run"

    def end(self, task_id: str, retries: int) -> None:
        """Mark the attempt finished."""
        try:
            self.client.set(self.key(task_id, retries), "done", ex=self.ttl)
        except self._errors as err:
            self._warn(err)

    def _warn(self, err: BaseException) -> None:
        if not self._warned:
            self._warned = True
            _log.warning(
                "retrykit: the duplicate guard cannot reach Redis at %s (%s); attempts run unguarded",
                self.url,
                err,
            )


_guards: dict[str, AttemptGuard] = {}


def _guard_for(url: str) -> AttemptGuard:
    guard = _guards.get(url)
    if guard is None:
        guard = _guards[url] = AttemptGuard(url)
    return guard


def max_countdown(app: celery.Celery) -> float | None:
    """
    The longest countdown that is safe on *app*'s broker: below Redis/SQS ``visibility_timeout``
    (an ETA message held longer is delivered again) and RabbitMQ's ``consumer_timeout``.
    """
    options = app.conf.broker_transport_options or {}
    url = str(app.conf.broker_url or "")
    if "visibility_timeout" in options:
        return float(options["visibility_timeout"]) * COUNTDOWN_MARGIN
    if url.startswith(("redis", "sqs", "rediss")):
        return DEFAULT_VISIBILITY_TIMEOUT * COUNTDOWN_MARGIN
    if url.startswith(("amqp", "pyamqp", "rabbitmq")):
        return RABBITMQ_CONSUMER_TIMEOUT * COUNTDOWN_MARGIN
    return None


def _max_retries(policy: Policy) -> int | None:
    """Celery's ``max_retries`` matching *policy*: attempts - 1, or the categories' total."""
    if policy.max_attempts is not None:
        return policy.max_attempts - 1
    counts = [s.max_retries for s in policy.strategies.values() if s.retries]
    if any(c is None for c in counts):
        return None
    return sum(c for c in counts if c is not None)


def _expires_at(request: Any) -> float | None:
    expires = getattr(request, "expires", None)
    if not expires:
        return None
    if isinstance(expires, str):
        try:
            expires = datetime.fromisoformat(expires)
        except ValueError:
            return None
    if isinstance(expires, datetime):
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        return expires.timestamp()
    return None


def run_coroutine(coroutine: Any) -> Any:
    """
    Run *coroutine* to completion from sync code with a fresh event loop (never
    ``asyncio.get_event_loop()``); from a thread whose loop is running, in a helper thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="retrykit-async") as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()


def _check_task_class(cls: type) -> None:
    given = [name for name in CELERY_RETRY_OPTIONS if cls.__dict__.get(name) or _inherited(cls, name)]
    if given:
        raise ConfigError(
            given[0],
            getattr(cls, given[0]),
            f"task {getattr(cls, 'name', cls.__name__)} has a retrykit policy and Celery's own retry options "
            "(two retry authorities)",
            f"remove {', '.join(given)}: the retrykit policy decides what is retried and when",
        )
    run = cls.__dict__.get("run")
    target = getattr(run, "__func__", run)
    if hasattr(target, "__retrykit__"):
        raise ConfigError(
            "run",
            getattr(cls, "name", cls.__name__),
            "the task function has @retrykit.retry and the task a retrykit policy (applied twice)",
            "drop @retrykit.retry from the task function; pass the policy to the task instead",
        )


def _inherited(cls: type, name: str) -> bool:
    value = getattr(cls, name, None)
    return bool(value) and value != getattr(celery.Task, name, None)


class RetrykitTask(celery.Task):  # type: ignore[misc]
    """
    A Celery task base class whose failures are retried by a retrykit policy, through the broker.

    Class attributes (also accepted as ``@app.task(...)`` options):

    * ``retrykit_policy``: a ``Policy`` or a preset name (``"default"``);
    * ``retrykit_max_countdown``: the longest countdown (default: 90 % of the broker's
      visibility timeout or consumer timeout); longer delays are capped with a warning;
    * ``retrykit_guard``: a Redis URL for the duplicate-attempt guard (off by default).
    """

    retrykit_policy: Policy | str | None = "default"
    retrykit_max_countdown: float | None = None
    retrykit_guard: str | None = None
    _retrykit_source: PolicySource | None = None
    _retrykit_capped: bool = False

    @classmethod
    def on_bound(cls, app: celery.Celery) -> None:
        """Validate the configuration and make Celery's ``max_retries`` match the policy."""
        super().on_bound(app)
        if cls.__dict__.get("_decorated") or cls.__dict__.get("retrykit_policy") is not None:
            _check_task_class(cls)
        source = resolve(cls.retrykit_policy, {})
        cls._retrykit_source = source
        wanted = _max_retries(source.current())
        given = cls.__dict__.get("max_retries", wanted)
        if given != wanted:
            raise ConfigError(
                "max_retries",
                given,
                f"contradicts the retrykit policy, which allows {wanted} retries",
                "drop max_retries; set max_attempts on the policy instead",
            )
        cls.max_retries = wanted
        if cls.retrykit_guard is not None:
            _guard_for(cls.retrykit_guard)

    def _policy(self) -> Policy:
        source = self._retrykit_source
        if source is None:
            source = type(self)._retrykit_source = resolve(self.retrykit_policy, {})
        return source.current()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.called_directly:  # a plain call: one attempt, the original exception
            return _resolve_coroutine(super().__call__(*args, **kwargs))
        policy = self._policy()
        guard = None
        if self.retrykit_guard is not None and not request.is_eager and request.id:
            guard = _guard_for(self.retrykit_guard)
            status = guard.begin(request.id, request.retries)
            if status == "done":
                _log.info(
                    "retrykit: attempt %s of %s[%s] already ran; skipped",
                    request.retries + 1,
                    self.name,
                    request.id,
                )
                raise Ignore()
            if status == "lost":
                lost = AttemptLost(request.id, request.retries + 1)
                self._retrykit_fail(policy, lost, guard)
        token = _scope.enter(None, _scope.now(), owner=OWNER)
        try:
            try:
                result = _resolve_coroutine(super().__call__(*args, **kwargs))
            except Exception as exc:
                failure = exc
            else:
                if request.retries:
                    call = self._retrykit_call(policy)
                    call.succeeded(_scope.now())
                    _drain(call)
                return result
        finally:
            _scope.leave(token)
        try:
            self._retrykit_fail(policy, failure, guard)
        finally:
            failure = None  # type: ignore[assignment]
        raise AssertionError("unreachable")  # pragma: no cover

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Mark a guarded attempt finished once its result is stored."""
        super().after_return(status, retval, task_id, args, kwargs, einfo)
        if self.retrykit_guard is not None and not self.request.is_eager and task_id:
            _guard_for(self.retrykit_guard).end(task_id, self.request.retries)

    def _retrykit_call(self, policy: Policy) -> Call:
        """The task's call, rebuilt from the message: attempt number, counters, start, expiry."""
        request = self.request
        meta = dict((request.headers or {}).get(HEADER) or {})
        first_started = float(meta.get("started", time.time()))
        now = _scope.now()
        expires = _expires_at(request)
        scope = _scope.scope(None if expires is None else max(0.0, expires - time.time()), now)
        call = Call(policy, self.name, now - (time.time() - first_started), scope)
        call.attempt = request.retries + 1
        call.counts = {ErrorCategory(k): int(v) for k, v in dict(meta.get("counts", {})).items()}
        call.previous = {ErrorCategory(k): float(v) for k, v in dict(meta.get("previous", {})).items()}
        last = meta.get("last")
        if last is not None:
            call.verdict = _decision.Verdict(_decision.RETRY, None, ErrorCategory(last))
        return call

    def _retrykit_fail(self, policy: Policy, exc: Exception, guard: AttemptGuard | None) -> None:
        """Decide about a failed attempt: raise the original exception, or publish the retry."""
        request = self.request
        call = self._retrykit_call(policy)
        cap = (
            self.retrykit_max_countdown
            if self.retrykit_max_countdown is not None
            else max_countdown(self.app)
        )
        call.cap = None if request.is_eager else cap
        delay = call.step(exc, True)
        _drain(call)
        verdict = call.verdict
        if delay is None or verdict is None or verdict.strategy is None:
            raise exc
        if verdict.capped and not type(self)._retrykit_capped:
            type(self)._retrykit_capped = True
            warnings.warn(
                f"retrykit: task {self.name} would wait longer than {cap:.0f}s between attempts; "
                "capped below the broker's visibility/consumer timeout, so the message is not "
                "delivered twice. Raise broker_transport_options['visibility_timeout'] to allow longer.",
                RuntimeWarning,
                stacklevel=2,
            )
        meta = {
            "counts": {c.value: n for c, n in call.counts.items()},
            "previous": {c.value: d for c, d in call.previous.items()},
            "started": time.time() - (_scope.now() - call.start),
            "last": None if verdict.category is None else verdict.category.value,
        }
        options: dict[str, Any] = {"headers": {**(request.headers or {}), HEADER: meta}}
        if verdict.strategy.queue is not None:
            options["queue"] = verdict.strategy.queue
        retry = self.retry(exc=exc, countdown=delay, throw=False, **options)
        if guard is not None and request.id:
            guard.end(request.id, request.retries)
        raise retry


def _resolve_coroutine(value: Any) -> Any:
    return run_coroutine(value) if inspect.iscoroutine(value) else value


def _drain(call: Call) -> None:
    if call.pending:
        run_coroutine(call.drain())


def task_options(policy: Policy | str | None = "default", **options: Any) -> dict[str, Any]:
    """
    The Celery task options that go with a policy (the seeds'
    ``RetryConfigFactory.create_celery_config('tracking')``): ``@app.task(**task_options("tracking"))``.

    It binds the policy (``base=RetrykitTask``, ``retrykit_policy``) and applies the reliable
    defaults: ``acks_late=True`` (a message is acknowledged after the attempt, so a crash does not
    lose it), ``reject_on_worker_lost=True`` (a killed child's message is delivered again), and
    ``max_retries`` consistent with the policy. *options* are added (and win).
    """
    source = resolve(policy, {})
    for name in CELERY_RETRY_OPTIONS:
        if options.get(name):
            raise ConfigError(
                name,
                options[name],
                "Celery's own retry options next to a retrykit policy (two retry authorities)",
                f"remove {name}",
            )
    result: dict[str, Any] = {
        "base": RetrykitTask,
        "retrykit_policy": policy if policy is not None else "default",
        "acks_late": True,
        "reject_on_worker_lost": True,
        "max_retries": _max_retries(source.current()),
    }
    result.update(options)
    return result


def app_options() -> dict[str, Any]:
    """App settings for reliable retries: late acks, redelivery on worker loss, prefetch 1."""
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
    }


def task(
    policy: Policy | str | None = "default",
    *,
    app: celery.Celery | None = None,
    **options: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """
    Register a Celery task retried by *policy*, in one step: ``@task("tracking", app=app)``
    (or without *app*, as a ``shared_task``; with *app*, on that app only unless ``shared=True``).
    *options* are Celery task options
    (``bind=True``, ``name=``, ``queue=``...), on top of ``task_options(policy)``.
    ``async def`` functions work: each call runs on a fresh event loop.
    """
    if callable(policy) and not isinstance(policy, (str, Policy)):
        raise ConfigError(
            "policy",
            policy,
            "@task needs to be called: @task() or @task('tracking')",
            "write @retrykit.adapters.celery.task(...) with parentheses",
        )
    merged = task_options(policy, **options)

    def decorator(fn: Callable[..., Any]) -> Any:
        if hasattr(fn, "__retrykit__"):
            raise ConfigError(
                "fn",
                getattr(fn, "__qualname__", fn),
                "it already has @retrykit.retry and gets a task policy (applied twice)",
                "drop @retrykit.retry; the task's policy retries it",
            )
        if isinstance(fn, celery.Task):
            raise ConfigError(
                "fn",
                getattr(fn, "name", fn),
                "it is already a Celery task (decorators in the wrong order)",
                "use this decorator in place of @app.task, not on top of it",
            )
        target = fn
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            def target(*args: Any, **kwargs: Any) -> Any:
                return run_coroutine(fn(*args, **kwargs))

        if app is None:
            return celery.shared_task(**merged)(target)
        return app.task(**{"shared": False, **merged})(target)  # on this app only

    return decorator


def register_monitoring(
    app: celery.Celery,
    thresholds: Thresholds,
    *,
    on_alert: Callable[[Alert], Any] | None = None,
    every: float = 300.0,
    window: float = 3600.0,
    cleanup_hours: float = 24.0,
    cleanup_every: float = 3600.0,
) -> tuple[Any, Any]:
    """
    Register ``retrykit.monitor_errors`` (every *every* seconds: analyse the last *window*
    seconds and pass each alert to *on_alert*, or log it) and ``retrykit.cleanup_errors`` (every
    *cleanup_every* seconds: drop statistics older than *cleanup_hours*) on *app*, and add both
    to ``app.conf.beat_schedule``. Returns the two tasks.

    With ``stats_redis_url`` configured, the monitor sees every worker's figures.
    """
    if not isinstance(thresholds, Thresholds):
        raise ConfigError("thresholds", thresholds, "must be retrykit.stats.Thresholds", "build one")
    for name, value in (("every", every), ("window", window), ("cleanup_every", cleanup_every)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(name, value, "must be a number of seconds > 0", f"pass e.g. {name}=300")

    @app.task(name="retrykit.monitor_errors", ignore_result=False)
    def monitor_errors() -> list[dict[str, Any]]:
        alerts = monitor(thresholds, on_alert, since=window)
        return [a.__dict__ for a in alerts]

    @app.task(name="retrykit.cleanup_errors")
    def cleanup_errors() -> int:
        return cleanup_old_errors(cleanup_hours)

    beat = dict(app.conf.beat_schedule or {})
    beat["retrykit.monitor_errors"] = {"task": "retrykit.monitor_errors", "schedule": schedule(every)}
    beat["retrykit.cleanup_errors"] = {"task": "retrykit.cleanup_errors", "schedule": schedule(cleanup_every)}
    app.conf.beat_schedule = beat
    return monitor_errors, cleanup_errors


__all__ = [
    "HEADER",
    "AttemptGuard",
    "AttemptLost",
    "RetrykitTask",
    "app_options",
    "max_countdown",
    "register_monitoring",
    "run_coroutine",
    "task",
    "task_options",
]
