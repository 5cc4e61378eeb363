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
import copy
import functools
import importlib
import inspect
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from retrykit import _config, _decision, _scope
from retrykit._analysis import Alert, Thresholds, cleanup_old_errors, monitor
from retrykit._breaker import CircuitBreaker
from retrykit._categories import Classification
from retrykit._classify import ErrorCategory
from retrykit._errors import ConfigError, install_hint
from retrykit._events import StopReason
from retrykit._logging import context_fields
from retrykit._loop import Call
from retrykit._overload import refused
from retrykit._policy import Policy
from retrykit._strategy import LONGEST_DELAY

from ._celery_bridge import policy_from_celery
from ._celery_guard import AttemptLedger, ledger_for, redis_url_of
from ._celery_options import TaskOptions
from ._source import PolicySource, resolve

if TYPE_CHECKING:
    from typing_extensions import Unpack

try:
    import celery
    from celery import signals
    from celery._state import _task_stack, get_current_task
    from celery.exceptions import Ignore, Reject, Retry, TaskPredicate
    from celery.schedules import schedule
except ImportError:  # pragma: no cover - celery is in the dev extra
    raise ImportError(f"retrykit.adapters.celery needs Celery: {install_hint('celery')}") from None

_log = logging.getLogger("retrykit")
OWNER = "celery-task"
"""The scope owner inside a task bound to a policy: nested retrykit layers make one attempt."""
HEADER = "retrykit"
"""The message header that carries per-category counters between attempts."""
CELERY_RETRY_OPTIONS = (
    "autoretry_for",
    "retry_backoff",
    "retry_backoff_max",
    "retry_jitter",
    "retry_kwargs",
)
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
"""kombu's Redis default, used when ``broker_transport_options`` does not say."""
RABBITMQ_CONSUMER_TIMEOUT = 1800.0
"""RabbitMQ's default ``consumer_timeout`` (30 min): an ETA message held longer kills the channel."""
SQS_VISIBILITY_TIMEOUT = 1800.0
"""kombu's SQS default ``visibility_timeout`` (30 min)."""
COUNTDOWN_MARGIN = 0.5
"""A single countdown is at most this fraction of the broker's limit; longer waits go in hops."""
DUE_TOLERANCE = 0.5
"""A hop arriving at most this many seconds before the retry is due runs the attempt."""
LEDGER_PAUSE = 10.0
"""After the attempt ledger's Redis failed, attempts run without the ledger this many seconds."""


class AttemptLost(RuntimeError):
    """
    An attempt of a task started but never finished: the process running it died.

    A SIGKILL, the OOM killer, ``os._exit``, a crash in C code, a lost worker. It counts as one
    failed attempt, classified as a system failure; once the policy gives up, the task fails with
    it. Picklable and JSON-serialisable (``exc_message`` is ``[task_id, attempt]``).

    Args:
        task_id: The task's id.
        attempt: The number of the attempt that was lost, from 1.
    """

    def __init__(self, task_id: str, attempt: int) -> None:
        super().__init__(task_id, attempt)
        self.task_id = task_id
        self.attempt: int = int(attempt)

    def __str__(self) -> str:
        return f"attempt {self.attempt} of task {self.task_id} started but never finished (worker lost)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task_id, self.attempt), dict(self.__dict__))  # notes included


LOST = Classification(
    ErrorCategory.SYSTEM_ERROR, "the process running the attempt was lost", rule="celery worker lost"
)
"""How a lost attempt is classified: a system failure, whatever the policy's default category."""
_REQUESTED = Classification(
    ErrorCategory.TEMPORARY_ERROR, "self.retry() without an exception", rule="self.retry"
)


def _requested(policy: Policy) -> Classification:
    """A bare ``self.retry()``: a temporary failure, or the first category the policy retries."""
    strategies = policy.strategies
    for category in (ErrorCategory.TEMPORARY_ERROR, *strategies):
        strategy = strategies.get(category)
        if strategy is not None and strategy.retries:
            return Classification(category, "self.retry() without an exception", rule="self.retry")
    return _REQUESTED


class RetryRequested(Exception):
    """The outcome a bare ``self.retry()`` hands the policy (classified as a temporary failure)."""


_held: dict[int, tuple[Policy, Policy]] = {}


def _held_by_broker(policy: Policy) -> Policy:
    """*policy* with the guard that holds retries in the broker while its breaker is open."""
    guard = policy.guard
    if guard is None or guard.breaker is None:
        return policy
    found = _held.get(id(policy))
    if found is None or found[0] is not policy:
        held = copy.copy(policy)
        object.__setattr__(held, "guard", guard.holding())
        if len(_held) > 256:  # policies rebuilt by configuration changes: forget the old ones
            _held.clear()
        found = _held[id(policy)] = (policy, held)
    return found[1]


class _TaskCall(Call):
    """
    A task's call. A retry the body asked for (``self.retry()``) is *forced*: an outcome the
    policy would not retry is retried under the temporary category's strategy, within the
    policy's limits; with ``countdown``/``eta`` it waits that long.
    """

    __slots__ = ("forced", "requested")

    def __init__(self, policy: Policy, operation: str, start: float, scope: _scope.Scope | None) -> None:
        super().__init__(policy, operation, start, scope)
        self.requested: float | None = None
        self.forced = False

    def decide_outcome(self, outcome: Any, failed: bool, now: float, found: Any) -> _decision.Verdict:
        if self.forced:
            found = (_decision.classify_outcome(self, outcome, failed) if found is None else found)[0], True
        verdict = super().decide_outcome(outcome, failed, now, found)
        requested = self.requested
        if requested is not None and verdict.action == _decision.RETRY:
            verdict.delay = requested
        return verdict


AttemptGuard = AttemptLedger
"""
The attempt ledger's class: each attempt of a bound task runs its body at most once.

``AttemptGuard(url, prefix="retrykit:attempt", ttl=604800, lease=30.0)``. ``RetrykitTask``
builds one from ``retrykit_guard`` (by default the broker's or the result backend's Redis);
you need one yourself only to inspect or clear the ledger. A delivery claims its attempt
``(task id, request.retries)`` with ``begin()``: ``"run"`` (run the body), ``"done"``
(already finished: skip it), ``"busy"`` (running elsewhere, its lease still renewed: come back
later) or ``"lost"`` (started, and its process died: count a failed attempt).

Args:
    url: The Redis URL.
    prefix: The prefix of the keys ``<prefix>:{<task id>}:<retries>``.
    ttl: Seconds the keys are kept (7 days).
    lease: Seconds a running attempt's lease lasts without renewal.
"""


def max_countdown(app: celery.Celery) -> float | None:
    """
    The longest single countdown that is safe on *app*'s broker.

    Half the Redis/SQS ``visibility_timeout`` (an ETA message held longer is delivered again) or
    of RabbitMQ's ``consumer_timeout``. A longer delay is not shortened: it is waited in hops of
    at most this length, re-published without running the body until due.

    Args:
        app: The Celery app.

    Returns:
        Seconds, or ``None`` for a broker with no such limit (the memory transport).
    """
    options = app.conf.broker_transport_options or {}
    url = str(app.conf.broker_url or "")
    if "visibility_timeout" in options:
        return float(options["visibility_timeout"]) * COUNTDOWN_MARGIN
    if url.startswith(("redis", "rediss", "sentinel", "unix")):
        return DEFAULT_VISIBILITY_TIMEOUT * COUNTDOWN_MARGIN
    if url.startswith("sqs"):
        return SQS_VISIBILITY_TIMEOUT * COUNTDOWN_MARGIN
    if url.startswith(("amqp", "pyamqp", "rabbitmq", "amqps")):
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
        return _timestamp(expires)
    return None


def _timestamp(moment: datetime) -> float:
    """*moment* as a Unix time; a naive datetime is UTC, as Celery writes ``eta`` and ``expires``."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def run_coroutine(coroutine: Any) -> Any:
    """
    Run *coroutine* to completion from sync code, on a fresh event loop.

    Never ``asyncio.get_event_loop()``; from a thread whose loop is running, in a helper thread.
    Under gevent or eventlet (greenlets share one OS thread) the loop runs in a real OS thread of
    the hub's thread pool while the calling greenlet waits cooperatively. In another thread the
    body still sees its task's ``self.request`` and ``current_task``. ``task()`` uses it for
    ``async def`` tasks.

    Args:
        coroutine: The coroutine object to run.

    Returns:
        What the coroutine returned; what it raised is raised.
    """
    offload = _green_offload()
    if offload is not None:
        ok, value = offload(_in_thread(coroutine))
        if ok:
            return value
        raise value
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_fresh(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="retrykit-async") as pool:
        ok, value = pool.submit(_in_thread(coroutine)).result()
    if ok:
        return value
    raise value


def _green_offload() -> Callable[[Callable[[], Any]], Any] | None:
    """A call that runs a function in a real OS thread, if threading is monkey-patched (gevent, eventlet)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return importlib.import_module("gevent").get_hub().threadpool.apply  # type: ignore[no-any-return]
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return importlib.import_module("eventlet.tpool").execute  # type: ignore[no-any-return]
    return None


def _in_thread(coroutine: Any) -> Callable[[], tuple[bool, Any]]:
    """
    ``_run_fresh(coroutine)`` for another thread, in this one's context, with this thread's Celery
    task and request on that thread's stacks; returns ``(True, value)`` or ``(False, exception)``
    (a thread pool that sees no exception prints no traceback).
    """
    context = contextvars.copy_context()
    task = get_current_task()
    request = task.request if task is not None else None

    def run() -> tuple[bool, Any]:
        if task is not None:
            _task_stack.push(task)
            task.request_stack.push(request)
        try:
            return True, context.run(_run_fresh, coroutine)
        except BaseException as exc:
            if type(exc).__module__ == "greenlet" and type(exc).__name__ == "error":
                exc = ConfigError(
                    "async def task",
                    getattr(coroutine, "__qualname__", "coroutine"),
                    f"used an object of the greenlet hub from its event loop's OS thread ({exc})",
                    "create the sockets and clients the coroutine uses inside it",
                )
            return False, exc
        finally:
            if task is not None:
                task.request_stack.pop()
                _task_stack.pop()

    return run


def _run_fresh(coroutine: Any) -> Any:
    """``asyncio.run``; another loop running in this OS thread is a configuration error, never retried."""
    if asyncio._get_running_loop() is not None:
        coroutine.close()
        pool = next((name for name in ("gevent", "eventlet") if name in sys.modules), None)
        raise ConfigError(
            "async def task",
            getattr(coroutine, "__qualname__", "coroutine"),
            "cannot run: another event loop is running in this OS thread"
            + (f" (greenlets of the {pool} pool share one thread)" if pool else ""),
            f"monkey-patch threading before importing the task (celery -P {pool or 'gevent'} does), "
            "or run the worker with -P prefork, threads or solo",
        )
    return asyncio.run(coroutine)


def _check_task_class(cls: type) -> None:
    given = [name for name in CELERY_RETRY_OPTIONS if cls.__dict__.get(name) or _inherited(cls, name)]
    if given:
        raise ConfigError(
            given[0],
            getattr(cls, given[0]),
            f"task {getattr(cls, 'name', cls.__name__)} has a retrykit policy and Celery's own retry options "
            "(two retry authorities)",
            f"move {', '.join(given)} into retrykit_policy=policy_from_celery(...) (the same keywords), "
            "or drop the policy to keep Celery's retries",
        )
    if getattr(cls, "retry_on_worker_lost", None):
        raise ConfigError(
            "retry_on_worker_lost",
            True,
            f"task {getattr(cls, 'name', cls.__name__)} has a retrykit policy, which already counts a lost "
            "worker as a failed attempt (two retry authorities)",
            "drop retry_on_worker_lost (and task_retry_on_worker_lost) for tasks with a retrykit policy",
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
    if _has_tenacity(target):
        raise ConfigError(
            "run",
            getattr(cls, "name", cls.__name__),
            "the task function is wrapped by tenacity and the task has a retrykit policy "
            "(two retry authorities)",
            "drop the tenacity decorator; the task's policy retries it through the broker",
        )


def _check_max_retries(cls: type, wanted: int | None) -> None:
    given = cls.__dict__.get("max_retries", wanted)
    if given != wanted:
        raise ConfigError(
            "max_retries",
            given,
            f"contradicts the retrykit policy, which allows {wanted} retries",
            "drop max_retries; set max_attempts on the policy instead",
        )


def _has_tenacity(fn: Any) -> bool:
    for _ in range(8):
        if fn is None:
            return False
        retry = getattr(fn, "retry", None)
        if retry is not None and type(retry).__module__.startswith("tenacity"):
            return True
        fn = getattr(fn, "__wrapped__", None)
    return False


def _inherited(cls: type, name: str) -> bool:
    value = getattr(cls, name, None)
    return bool(value) and value != getattr(celery.Task, name, None)


def _builtin(cls: type) -> bool:
    """Celery's own tasks (``celery.chord_unlock``...) keep Celery's behaviour under ``task_cls``."""
    name = cls.__dict__.get("name") or getattr(cls, "name", None) or ""
    return isinstance(name, str) and name.startswith("celery.")


class _Autoretry:
    """
    ``RetrykitTask._orig_run``: an attribute like any other for a task without a policy (Celery's
    ``autoretry_for`` wraps ``run`` as usual); for a task with a policy, Celery's
    ``add_autoretry_behaviour`` reads it first, so ``autoretry_for`` given to ``register_task``
    is refused there.
    """

    def __get__(self, task: Any, owner: Any = None) -> Any:
        if task is None:
            return self
        if task._retrykit_off:
            try:
                return task.__dict__["_orig_run"]
            except KeyError:
                raise AttributeError("_orig_run") from None
        raise _refused(task.app, type(task), _autoretry_refused(task))

    def __set__(self, task: Any, value: Any) -> None:
        cls = type(task)
        if not _builtin(cls) and _named_policy(cls, task.__dict__.get("_app")) is not None:
            raise _refused(task.__dict__.get("_app"), cls, _autoretry_refused(task))
        task.__dict__["_orig_run"] = value

    def __delete__(self, task: Any) -> None:
        task.__dict__.pop("_orig_run", None)


def _autoretry_refused(task: Any) -> ConfigError:
    return ConfigError(
        "autoretry_for",
        getattr(task, "autoretry_for", None),
        f"task {task.name} has a retrykit policy and Celery's autoretry_for (two retry authorities)",
        "move the Celery options into retrykit_policy=policy_from_celery(...), or drop them",
    )


def _refused(app: Any, cls: type, err: ConfigError) -> ConfigError:
    """
    *err* about task class *cls*, to raise without leaving *app* half-finalized: the task is taken
    out of the registry (Celery recorded it before binding it), and if *app* was finalizing, it is
    not finalized: every later access (``app.tasks``, a worker starting) raises *err* again.
    """
    tasks = getattr(app, "_tasks", None)
    name = getattr(cls, "name", None)
    if tasks is not None and isinstance(tasks.get(name), cls):
        del tasks[name]
    mutex = getattr(app, "_finalize_mutex", None)
    owned = getattr(mutex, "_is_owned", None)
    if app is not None and getattr(app, "finalized", False) and callable(owned) and owned():

        def finalize(auto: bool = False) -> None:
            raise ConfigError(err.argument, err.value, err.rule, err.fix)

        app.finalized = False  # finalize() stopped half-way
        app.finalize = finalize
    return err


def _named_policy(cls: type, app: Any) -> Policy | str | None:
    """The policy *cls* names (itself or a base below ``RetrykitTask``), else *app*'s ``retrykit_policy``."""
    for klass in cls.__mro__:
        if klass is RetrykitTask:
            break
        if "retrykit_policy" in klass.__dict__:
            named: Policy | str | None = klass.__dict__["retrykit_policy"]
            return named
    conf = getattr(app, "conf", None)
    found = conf.get("retrykit_policy") if conf is not None else None
    return found if isinstance(found, (str, Policy)) else None


class RetrykitTask(celery.Task):  # type: ignore[misc]
    """
    A Celery task base class whose failures are retried by a retrykit policy, through the broker.

    Compatible by default: a task of this class that names no policy (and whose app names none)
    behaves exactly as with Celery's ``Task``, Celery's own retry options included. So an app can
    set ``Celery(task_cls=RetrykitTask)`` and switch its tasks over one at a time, each by naming
    its policy; ``app.conf.retrykit_policy = "default"`` names one for every task of the app that
    names none (Celery's own ``celery.*`` tasks always keep Celery's behaviour). Usable as
    ``base=`` of a task, or through ``task()`` and ``task_options()``; its class attributes are
    also accepted as ``@app.task(...)`` options.

    Attributes:
        retrykit_policy: A ``Policy`` or a preset name (``"default"``); ``None`` (default): the
            app's ``retrykit_policy`` setting, else no policy (Celery's behaviour).
        retrykit_max_countdown: The longest single countdown (default: half the broker's
            visibility timeout or consumer timeout); a longer delay is waited in hops.
        retrykit_guard: Where the attempt ledger lives: a Redis URL; ``None`` (default): the
            broker's Redis, else the result backend's, else no ledger; ``False``: no ledger.
        retrykit_lease: Seconds a running attempt's lease lasts without renewal (default 30): how
            soon an attempt whose whole worker died is found lost.
    """

    retrykit_policy: Policy | str | None = None
    retrykit_max_countdown: float | None = None
    retrykit_guard: str | bool | None = None
    retrykit_lease: float = 30.0
    Request = "retrykit.adapters._celery_request:RetrykitRequest"
    _retrykit_source: PolicySource | None = None
    _retrykit_off: bool = True
    _retrykit_ledger_url: str | None = None
    _retrykit_warned: bool = False
    _orig_run = _Autoretry()

    @classmethod
    def on_bound(cls, app: celery.Celery) -> None:
        """Find the task's policy, validate the configuration and make ``max_retries`` match it."""
        super().on_bound(app)
        named = None if _builtin(cls) else _named_policy(cls, app)
        if named is None:
            cls._retrykit_off = True  # Celery's own behaviour, options and all
            cls._retrykit_source = None
            return
        try:
            _check_task_class(cls)
            source = resolve(named, {})
            wanted = _max_retries(source.current())
            _check_max_retries(cls, wanted)
            guard = cls.retrykit_guard
            if guard is not None and guard is not False:
                ledger_for(str(guard), cls.retrykit_lease)  # validates the URL and the lease now
        except ConfigError as err:
            raise _refused(app, cls, err)  # noqa: B904 - the same error, raised as it is
        cls._retrykit_off = False
        cls._retrykit_source = source
        cls.max_retries = wanted
        cls._retrykit_ledger_url = None

    def _policy(self) -> Policy:
        source = self._retrykit_source
        if source is None:
            source = type(self)._retrykit_source = resolve(_named_policy(type(self), self.app), {})
        return source.current()

    def _retrykit_ledger(self) -> AttemptLedger | None:
        """The attempt ledger (see ``retrykit_guard``), or None."""
        guard = self.retrykit_guard
        if guard is False:
            return None
        url = guard if isinstance(guard, str) else type(self)._retrykit_ledger_url
        if url is None:
            conf = self.app.conf
            url = redis_url_of(conf.broker_url) or redis_url_of(conf.result_backend) or ""
            type(self)._retrykit_ledger_url = url
        if not url:
            return None
        ledger = ledger_for(url, self.retrykit_lease)
        if time.monotonic() - ledger.failed_at < LEDGER_PAUSE:
            return None  # its Redis failed just now (down, or frozen: each call would wait its timeout)
        return ledger

    def _retrykit_hop(self) -> float | None:
        if self.retrykit_max_countdown is not None:
            return float(self.retrykit_max_countdown)
        return max_countdown(self.app)

    # ------------------------------------------------------------------ one delivery

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.called_directly or getattr(request, "_retrykit_entered", None) is not None:
            # A direct call (outside a worker, or the body calling its own task): as Celery, a
            # fresh request context with these arguments, one attempt, the original exception.
            result = celery.Task.__call__(self, *args, **kwargs)
            return result if self._retrykit_off else _resolve_coroutine(result)
        # the delivery the tracer runs; a context a direct call from its body pushes copies the mark
        request._retrykit_entered = id(request)
        request._protected = 1  # Celery's stack protection: the same mark, so it pushes that context
        if self._retrykit_off:
            return self.run(*args, **kwargs)  # what Celery's tracer runs for its own Task
        if "_orig_run" in self.__dict__:  # Celery's autoretry_for wrapped run before the policy was named
            raise _autoretry_refused(self)
        try:
            return self._retrykit_deliver(request, args, kwargs)
        except Retry as flow:
            if id(flow) == id(getattr(request, "_retrykit_published", None)):
                # the retry this delivery published: Celery formats its traceback for every retry
                # (ExceptionInfo, stored with the RETRY state); the frames below say nothing
                request._retrykit_published = None  # nothing of the attempt outlives it
                flow.__traceback__ = None
            raise  # a Retry of the body's own, untouched

    def _retrykit_deliver(self, request: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One delivery of a task with a policy: the attempt, and the decision if it fails."""
        policy = self._policy()
        ledger = None
        if request.is_eager:
            if policy.guard is not None and not request.retries:
                self._retrykit_admit(policy, request)
        elif request.id:
            self._retrykit_until_due(request)
            if policy.guard is not None:
                self._retrykit_admit(policy, request)
            ledger = self._retrykit_ledger()
            if ledger is not None:
                self._retrykit_claim(policy, ledger, request)
        token = _scope.enter(None, _scope.now(), owner=OWNER)
        try:
            try:
                # the tracer pushed this delivery's request: Task.__call__ would push an empty one
                # (eager mode on Celery 5.4.0: request.retries 0 and id None on every attempt)
                result = _resolve_coroutine(self.run(*args, **kwargs))
            except TaskPredicate as flow:  # Retry, Ignore, Reject: Celery's control flow, untouched
                if ledger is not None:
                    if isinstance(flow, Reject) and flow.requeue:
                        ledger.release(request.id, request.retries)  # the requeued delivery runs it
                    else:
                        ledger.end(request.id, request.retries)
                raise
            except Exception as exc:
                failure = exc
            else:
                if request.retries:
                    call = self._retrykit_call(policy, request)
                    call.succeeded(_scope.now())
                    _drain(call)
                elif policy.guard is not None:
                    policy.guard.succeeded(None)  # the breaker's success count, the budget's refund
                return result
            finally:
                if ledger is not None:
                    ledger.stop(request.id, request.retries)
        finally:
            _scope.leave(token)
        try:
            if getattr(request, "_retrykit_decided", None) is failure:
                raise failure
            self._retrykit_fail(policy, failure, ledger)
        finally:
            failure = None  # type: ignore[assignment]
        raise AssertionError("unreachable")  # pragma: no cover

    def _retrykit_claim(self, policy: Policy, ledger: AttemptLedger, request: Any) -> None:
        """Claim this attempt in the ledger: return to run the body, or raise (skip, defer, lost)."""
        status = ledger.begin(request.id, request.retries)
        if status == "run":
            return
        attempt = request.retries + 1
        if status == "done":
            _log.info("retrykit: attempt %s of %s[%s] already ran; skipped", attempt, self.name, request.id)
            raise Ignore()
        if status == "busy":
            wait = ledger.lease_left(request.id, request.retries) + 0.2
            _log.info(
                "retrykit: attempt %s of %s[%s] is running elsewhere; checked again in %.1fs",
                attempt,
                self.name,
                request.id,
                wait,
            )
            self._retrykit_republish(request, wait)
        # "lost": it started and its process died; counts as a failed attempt
        if self._retrykit_stored_success(request):
            raise Ignore()
        _log.warning(
            "retrykit: attempt %s of %s[%s] was lost with its worker",
            attempt,
            self.name,
            request.id,
        )
        self._retrykit_fail(policy, AttemptLost(request.id, attempt), None, LOST)

    def _retrykit_admit(self, policy: Policy, request: Any) -> None:
        """
        Ask the policy's breaker before the body runs (a probe when half-open). Open: the body does
        not run and no attempt is charged; this same attempt goes back to the broker for the
        breaker's remaining open time (eager: ``CircuitOpen``, as a plain retrykit call). The
        budget counts the task's first attempt.
        """
        guard = policy.guard
        assert guard is not None
        breaker = guard.breaker
        if breaker is not None:
            left = breaker.allow()
            if left:
                if request.is_eager:
                    raise refused(breaker.key, left, self.name, None)
                self._retrykit_circuit_open(request, breaker, left, ran=False)
                self._retrykit_republish(request, left)
        if guard.budget is not None and not request.retries:
            guard.budget.admitted()

    def _retrykit_circuit_open(
        self, request: Any, breaker: CircuitBreaker, countdown: float, ran: bool
    ) -> None:
        """
        The log line of a wait the broker holds because *breaker* is open: attempt *attempt*
        starts in *countdown* s; *ran*: after a failed body (else this attempt's body did not run).
        """
        level = _config.settings.log_level
        if not _log.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "operation": self.name,
            "attempt": request.retries + 1 + int(ran),
            "stop_reason": StopReason.CIRCUIT_OPEN.value,
            "breaker": breaker.key,
            "countdown": round(countdown, 3),
            "body": "failed" if ran else "not run",
            **context_fields(),
        }
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        _log.log(
            level, "retrykit.circuit_open %s", text, extra={"retrykit": {"event": "circuit_open", **fields}}
        )

    def _retrykit_stored_success(self, request: Any) -> bool:
        if getattr(request, "ignore_result", False) or self.ignore_result:
            return False
        try:
            return bool(self.backend.get_state(request.id) == "SUCCESS")
        except Exception:
            return False

    def _retrykit_until_due(self, request: Any) -> None:
        """A hop of a long wait that arrives before the retry is due: publish the next hop, skip the body."""
        meta = (request.headers or {}).get(HEADER) or {}
        due = meta.get("due") if isinstance(meta, dict) else None
        if not isinstance(due, (int, float)):
            return
        left = float(due) - time.time()
        if left > DUE_TOLERANCE:
            self._retrykit_republish(request, left)

    def _retrykit_republish(self, request: Any, wait: float) -> None:
        """Publish this same attempt again in *wait* seconds (in hops), and end this delivery (acked)."""
        hop = self._retrykit_hop()
        wait = min(wait, LONGEST_DELAY)  # an open breaker's time left: a date the eta can hold
        countdown = wait if hop is None else min(wait, hop)
        self.signature_from_request(
            request, countdown=countdown, retries=request.retries, headers=dict(request.headers or {})
        ).apply_async()
        raise Ignore()

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Mark the attempt finished in the ledger once its result is stored."""
        super().after_return(status, retval, task_id, args, kwargs, einfo)
        if self._retrykit_off or self.request.is_eager or not task_id:
            return
        ledger = self._retrykit_ledger()
        if ledger is not None:
            ledger.end(task_id, self.request.retries)

    # ------------------------------------------------------------------ decisions

    def _retrykit_call(self, policy: Policy, request: Any) -> _TaskCall:
        """The task's call, rebuilt from the message: attempt number, counters, start, expiry."""
        meta = dict((request.headers or {}).get(HEADER) or {})
        first_started = float(meta.get("started", time.time()))
        now = _scope.now()
        expires = _expires_at(request)
        # the task's call is the outermost layer, whatever scope the caller (a helper in the body) is in
        scope = _scope.Scope(None, None if expires is None else now + max(0.0, expires - time.time()), None)
        call = _TaskCall(policy, self.name, now - (time.time() - first_started), scope)
        call.attempt = request.retries + 1
        call.counts = {ErrorCategory(k): int(v) for k, v in dict(meta.get("counts", {})).items()}
        call.previous = {ErrorCategory(k): float(v) for k, v in dict(meta.get("previous", {})).items()}
        last = meta.get("last")
        if last is not None:
            call.verdict = _decision.Verdict(_decision.RETRY, None, ErrorCategory(last))
        return call

    def _retrykit_decide(
        self,
        policy: Policy,
        request: Any,
        exc: Exception,
        found: Classification | None,
        requested: float | None = None,
        forced: bool = False,
    ) -> tuple[Call, float | None]:
        """
        The decision on a failed attempt; *requested*: the delay the body asked for; *forced*:
        the body asked for the retry. Outside eager mode an open breaker holds the retry in the
        broker instead of ending the task.
        """
        call = self._retrykit_call(policy if request.is_eager else _held_by_broker(policy), request)
        call.requested = requested
        call.forced = forced
        delay = call.step(exc, True, found)
        _drain(call)
        verdict = call.verdict
        if delay is None or verdict is None or verdict.strategy is None:
            return call, None
        return call, delay

    def _retrykit_options(self, request: Any, call: Call, delay: float) -> tuple[float, dict[str, Any]]:
        """The countdown and message options of the retry *delay* seconds from now."""
        delay = min(delay, LONGEST_DELAY)  # e.g. a breaker's open time: never an eta that overflows
        verdict = call.verdict
        assert verdict is not None
        assert verdict.strategy is not None
        meta: dict[str, Any] = {
            "counts": {c.value: n for c, n in call.counts.items()},
            "previous": {c.value: d for c, d in call.previous.items()},
            "started": time.time() - (_scope.now() - call.start),
            "last": None if verdict.category is None else verdict.category.value,
        }
        countdown = delay
        hop = None if request.is_eager else self._retrykit_hop()
        if hop is not None and delay > hop:
            meta["due"] = time.time() + delay
            countdown = hop
        options: dict[str, Any] = {"headers": {**(request.headers or {}), HEADER: meta}}
        if verdict.strategy.queue is not None:
            options["queue"] = verdict.strategy.queue
        return countdown, options

    def _retrykit_fail(
        self,
        policy: Policy,
        exc: Exception,
        ledger: AttemptLedger | None,
        found: Classification | None = None,
    ) -> None:
        """Decide about a failed attempt: raise the original exception, or publish the retry."""
        request = self.request
        call, delay = self._retrykit_decide(policy, request, exc, found)
        if delay is None:
            raise exc
        self._retrykit_held(policy, request, delay)
        countdown, options = self._retrykit_options(request, call, delay)
        retry = celery.Task.retry(self, exc=exc, countdown=countdown, throw=False, **options)
        if ledger is not None and request.id:
            ledger.end(request.id, request.retries)
        request._retrykit_published = retry
        raise retry

    def _retrykit_held(self, policy: Policy, request: Any, delay: float) -> None:
        """Say so when the retry just decided waits for the policy's open breaker."""
        breaker = policy.breaker
        if breaker is not None and not request.is_eager and breaker.remaining() > 0:
            self._retrykit_circuit_open(request, breaker, delay, ran=True)

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: Exception | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        """
        The body's own ``self.retry()``: a request from code that knows best, honoured within the
        policy's limits (attempts, deadline, budget, breaker) and counted as a failed attempt. *exc*
        is retried even if the policy would not retry it on its own (then under the temporary
        category's strategy); its classification chooses the wait unless *countdown*/*eta* is
        given. Once a limit is reached the task ends with *exc* (``MaxRetriesExceededError``
        without one). *max_retries* is ignored (the policy decides), with a warning.
        """
        request = self.request
        if request.called_directly or self._retrykit_off or _direct(request):
            # no policy, a direct call, or a direct call of the task from its own body: Celery's retry
            return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)
        if max_retries is not None and not type(self)._retrykit_warned:
            type(self)._retrykit_warned = True
            _log.warning(
                "retrykit: self.retry(max_retries=%s) in task %s is ignored: the retrykit policy "
                "counts the attempts",
                max_retries,
                self.name,
            )
        outcome = exc if exc is not None else sys.exc_info()[1]
        found = None
        policy = self._policy()
        if not isinstance(outcome, Exception) or isinstance(outcome, TaskPredicate):
            outcome, found = RetryRequested("self.retry()"), _requested(policy)
        call, delay = self._retrykit_decide(
            policy, request, outcome, found, _requested_delay(countdown, eta), forced=True
        )
        if delay is None:
            if exc is not None:
                request._retrykit_decided = exc  # decided here: __call__ re-raises it as it is
                raise exc
            raise self.MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} kwargs:{request.kwargs}",
                task_args=request.args,
                task_kwargs=request.kwargs,
            )
        self._retrykit_held(policy, request, delay)
        planned, message = self._retrykit_options(request, call, delay)
        message.update(options)
        if eta is not None and countdown is None and planned >= delay:  # not hopped: Celery's own eta
            return super().retry(args, kwargs, exc, throw, eta, None, **message)
        return super().retry(args, kwargs, exc, throw, None, planned, **message)

    # ------------------------------------------------------------------ in the worker's main process

    def _retrykit_worker_lost(self, req: Any, exc_info: Any) -> bool:
        """
        The pool process running this attempt died (the request in the worker's main process):
        count a failed attempt and publish the retry or record the failure, in place of Celery's
        requeue (``reject_on_worker_lost``: a poison pill loops forever). False: not handled.
        """
        request = req._context
        ledger = self._retrykit_ledger()
        if ledger is not None and not ledger.claim_lost(req.id, request.retries):
            if self.acks_late:  # the attempt finished (retry published or result stored) before the death
                req.acknowledge()
            return True
        attempt = request.retries + 1
        lost = AttemptLost(req.id, attempt)
        try:
            raise lost
        except AttemptLost:
            einfo = importlib.import_module("billiard.einfo").ExceptionInfo()
        call, delay = self._retrykit_decide(self._policy(), request, lost, LOST)
        if delay is not None:
            countdown, options = self._retrykit_options(request, call, delay)
            try:
                self.signature_from_request(
                    request, countdown=countdown, retries=request.retries + 1, **options
                ).apply_async()
            except Exception as err:
                _log.error(
                    "retrykit: cannot publish the retry of %s[%s] after its worker was lost: %r",
                    self.name,
                    req.id,
                    err,
                )
                return False
            if req.store_errors:
                self.backend.mark_as_retry(req.id, lost, einfo.traceback, request=request)
            if self.acks_late:
                req.acknowledge()
            req.send_event("task-retried", exception=repr(lost), traceback=einfo.traceback)
            self.request_stack.push(request)
            try:
                self.on_retry(lost, req.id, req.args, req.kwargs, einfo)
                signals.task_retry.send(
                    sender=self,
                    request=request,
                    reason=celery.exceptions.Retry(exc=lost, when=countdown),
                    einfo=einfo,
                )
            finally:
                self.request_stack.pop()
            _log.warning(
                "retrykit: attempt %s of %s[%s] lost with its worker; retry in %.1fs",
                attempt,
                self.name,
                req.id,
                delay,
            )
            return True
        self.backend.mark_as_failure(
            req.id, lost, einfo.traceback, request=request, store_result=req.store_errors
        )
        if self.acks_late:
            req.acknowledge()
        self.request_stack.push(request)
        try:
            self.on_failure(lost, req.id, req.args, req.kwargs, einfo)
            signals.task_failure.send(
                sender=self,
                task_id=req.id,
                exception=lost,
                args=req.args,
                kwargs=req.kwargs,
                traceback=einfo.traceback,
                einfo=einfo,
            )
        finally:
            self.request_stack.pop()
        req.send_event("task-failed", exception=repr(lost), traceback=einfo.traceback)
        _log.error("retrykit: %s; giving up", lost)
        return True


def _direct(request: Any) -> bool:
    """Whether *request* is the context of a direct call of the task from its own body."""
    entered = getattr(request, "_retrykit_entered", None)
    return entered is not None and entered != id(request)


def _requested_delay(countdown: float | None, eta: Any) -> float | None:
    """The delay a body's ``self.retry(countdown=..., eta=...)`` asks for (None: the policy's)."""
    if countdown is not None:
        return min(max(0.0, float(countdown)), LONGEST_DELAY)
    if isinstance(eta, datetime):
        return min(max(0.0, _timestamp(eta) - time.time()), LONGEST_DELAY)
    return None


def _resolve_coroutine(value: Any) -> Any:
    return run_coroutine(value) if inspect.iscoroutine(value) else value


def _drain(call: Call) -> None:
    if call.pending:
        run_coroutine(call.drain())


def task_options(policy: Policy | str | None = "default", **options: Unpack[TaskOptions]) -> dict[str, Any]:
    """
    The Celery task options that go with a policy: ``@app.task(**task_options("tracking"))``.

    It binds the policy (``base=RetrykitTask``, ``retrykit_policy``) and applies the reliable
    defaults: ``acks_late=True`` (a message is acknowledged after the attempt, so a crash does not
    lose it), ``reject_on_worker_lost=True`` (a killed child's message is delivered again), and
    ``max_retries`` consistent with the policy.

    Args:
        policy: A preset name or a ``Policy``.
        **options: Celery task options (``TaskOptions``), added on top; they win.

    Returns:
        The options, for ``@app.task(**...)``.

    Raises:
        ConfigError: An unknown preset, or one of Celery's own retry options (``autoretry_for``,
            ``retry_backoff``, ...): two retry authorities.
    """
    source = resolve(policy, {})
    given: dict[str, Any] = dict(options)  # checked here too: untyped callers can pass anything
    for name in CELERY_RETRY_OPTIONS:
        if given.get(name):
            raise ConfigError(
                name,
                given[name],
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
    result.update(given)
    return result


def policy_of(task: Any) -> Policy:
    """
    The policy *task* (a Celery task or task class) runs under: the one it or its app names,
    else the one ``policy_from_celery`` makes of its Celery options (what it would run under if
    switched over). ``retrykit explain module:task`` prints it.

    Args:
        task: A Celery task or task class.

    Returns:
        The ``Policy`` it runs under (or would, once switched over).

    Raises:
        ConfigError: *task* is not a Celery task.
    """
    cls = task if isinstance(task, type) else task.__class__  # a lazy task's proxy forwards __class__
    if not (isinstance(cls, type) and issubclass(cls, celery.Task)):
        raise ConfigError("task", task, "is not a Celery task", "pass a task (@app.task) or a task class")
    named = (
        None
        if not issubclass(cls, RetrykitTask) or _builtin(cls)
        else _named_policy(cls, getattr(task, "app", None))
    )
    if named is not None:
        return resolve(named, {}).current()
    return policy_from_celery(task)


def app_options() -> dict[str, Any]:
    """
    App settings for reliable retries: late acks, redelivery on worker loss, prefetch 1.

    Returns:
        ``task_acks_late``, ``task_reject_on_worker_lost`` and ``worker_prefetch_multiplier``,
            for ``app.conf.update(app_options())``.
    """
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
    }


def task(
    policy: Policy | str | None = "default",
    *,
    app: celery.Celery | None = None,
    **options: Unpack[TaskOptions],
) -> Callable[[Callable[..., Any]], Any]:
    """
    Register a Celery task retried by *policy*, in one step: ``@task("tracking", app=app)``.

    Use it in place of ``@app.task`` (or ``@shared_task``). ``async def`` functions work: each
    call runs on a fresh event loop (``run_coroutine``).

    Args:
        policy: A preset name or a ``Policy``.
        app: The Celery app; the task is registered on it only unless ``shared=True``. Without
            one, the task is a ``shared_task``.
        **options: Celery task options (``TaskOptions``: ``bind=True``, ``name=``, ``queue=``,
            ...), on top of ``task_options(policy)``.

    Returns:
        A decorator that makes the function a task.

    Raises:
        ConfigError: Used without parentheses, on a function already decorated by
            ``@retrykit.retry`` or already a task, a function taking ``self`` without
            ``bind=True``, or Celery's own retry options.
    """
    given: object = policy
    if callable(given) and not isinstance(given, (str, Policy)):
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
        _check_bind(fn, merged)
        target = fn
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            def target(*args: Any, **kwargs: Any) -> Any:
                return run_coroutine(fn(*args, **kwargs))

        if app is None:
            return celery.shared_task(**merged)(target)
        return app.task(**{"shared": False, **merged})(target)  # on this app only

    return decorator


def _check_bind(fn: Callable[..., Any], options: dict[str, Any]) -> None:
    """A ``def task(self, ...)`` without ``bind=True`` fails at ``.delay()``: say so now."""
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return
    if params and params[0] == "self" and not options.get("bind"):
        raise ConfigError(
            "bind",
            options.get("bind", False),
            f"task function {getattr(fn, '__qualname__', fn)} takes self but the task is not bound "
            "(Celery would pass your first argument as self)",
            "add bind=True: @retrykit.adapters.celery.task(policy, app=app, bind=True)",
        )


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
    Register the Beat tasks for alerts and cleanup on *app*, and add them to its schedule.

    ``retrykit.monitor_errors`` analyses the last *window* seconds every *every* seconds and passes
    each alert to *on_alert* (or logs it); ``retrykit.cleanup_errors`` drops statistics older than
    *cleanup_hours* every *cleanup_every* seconds. With ``stats_redis_url`` configured, the monitor
    sees every worker's figures.

    Args:
        app: The Celery app.
        thresholds: When to alert.
        on_alert: Called with each ``Alert``. Default: log it as a warning.
        every: Seconds between two runs of the monitor.
        window: Seconds of statistics the monitor analyses.
        cleanup_hours: The age beyond which statistics are dropped.
        cleanup_every: Seconds between two cleanups.

    Returns:
        The two tasks, the monitor and the cleanup.

    Raises:
        ConfigError: *thresholds* is not a ``Thresholds``, or a period is not a positive number.
    """
    if not isinstance(thresholds, Thresholds):
        raise ConfigError("thresholds", thresholds, "must be retrykit.stats.Thresholds", "build one")
    for name, value in (("every", every), ("window", window), ("cleanup_every", cleanup_every)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(name, value, "must be a number of seconds > 0", f"pass e.g. {name}=300")

    def _monitor_errors() -> list[dict[str, Any]]:
        alerts = monitor(thresholds, on_alert, since=window)
        return [a.__dict__ for a in alerts]

    def _cleanup_errors() -> int:
        return cleanup_old_errors(cleanup_hours)

    _monitor_errors.__name__ = _monitor_errors.__qualname__ = "monitor_errors"
    _cleanup_errors.__name__ = _cleanup_errors.__qualname__ = "cleanup_errors"
    monitor_errors = app.task(name="retrykit.monitor_errors", ignore_result=False)(_monitor_errors)
    cleanup_errors = app.task(name="retrykit.cleanup_errors")(_cleanup_errors)

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
    "TaskOptions",
    "app_options",
    "max_countdown",
    "policy_from_celery",
    "policy_of",
    "register_monitoring",
    "run_coroutine",
    "task",
    "task_options",
]
