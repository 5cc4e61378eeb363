"""
The task's runtime: ``RetrykitTask``, one delivery of a task bound to a policy (the admission, the
attempt ledger's claim, the body in its one-layer scope, the decision, the retry through the broker)
and the body's own ``self.retry()``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any

import celery
from celery.app.task import Context
from celery.exceptions import Ignore, Reject, Retry, TaskPredicate

from retrykit import CircuitBreaker, Classification, ConfigError, ErrorCategory, Policy
from retrykit.driver import Action
from retrykit.events import StopReason
from retrykit.queues import LONGEST_DELAY, Delivery, admit, log_event, owned, resume

from ._checks import (
    autoretry_refused,
    builtin,
    check_max_retries,
    check_task_class,
    max_retries_of,
    named_policy,
    policy_named,
    refused,
)
from ._ledger import AttemptLedger, Claim, ledger_for, redis_url_of
from ._lost import LOST, AttemptLost, worker_lost
from ._runner import resolve_coroutine, run_coroutine
from ._wire import due_in, expires_at, max_countdown, requested_delay, retry_options, state_of

if TYPE_CHECKING:
    _Task = celery.Task[Any, Any]  # generic in celery-types' stubs, not at run time
else:
    _Task = celery.Task

_log = logging.getLogger("retrykit")
OWNER = "celery-task"
"""The scope owner inside a task bound to a policy: nested retrykit layers make one attempt."""
LEDGER_PAUSE = 10.0
"""After the attempt ledger's Redis failed, attempts run without the ledger this many seconds."""


class RetryRequested(Exception):
    """The outcome a bare ``self.retry()`` hands the policy (classified as a temporary failure)."""


def _requested(policy: Policy) -> Classification:
    """A bare ``self.retry()``: a temporary failure, or the first category the policy retries."""
    strategies = policy.strategies
    for category in (ErrorCategory.TEMPORARY_ERROR, *strategies):
        strategy = strategies.get(category)
        if strategy is not None and strategy.retries:
            return Classification(category, "self.retry() without an exception", rule="self.retry")
    return Classification(
        ErrorCategory.TEMPORARY_ERROR, "self.retry() without an exception", rule="self.retry"
    )


class _Autoretry:
    """
    ``RetrykitTask._orig_run``: an attribute like any other for a task without a policy (Celery's
    ``autoretry_for`` wraps ``run`` as usual); for a task with a policy, Celery's
    ``add_autoretry_behaviour`` reads it first, so ``autoretry_for`` given to ``register_task``
    is refused there.
    """

    def __get__(self, task: Any, owner: object = None) -> Any:
        if task is None:
            return self
        if task._retrykit_off:
            try:
                return task.__dict__["_orig_run"]
            except KeyError:
                raise AttributeError("_orig_run") from None
        cls: type = task.__class__
        raise refused(task.app, cls, autoretry_refused(task))

    def __set__(self, task: Any, value: object) -> None:
        cls: type = task.__class__
        if not builtin(cls) and named_policy(cls, task.__dict__.get("_app"), RetrykitTask) is not None:
            raise refused(task.__dict__.get("_app"), cls, autoretry_refused(task))
        task.__dict__["_orig_run"] = value

    def __delete__(self, task: Any) -> None:
        task.__dict__.pop("_orig_run", None)


class RetrykitTask(_Task):
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
    Request = "retrykit_celery._request:RetrykitRequest"
    _retrykit_named: Policy | str | None = None
    _retrykit_off: bool = True
    _retrykit_ledger_url: str | None = None
    _retrykit_warned: bool = False
    _orig_run = _Autoretry()

    @classmethod
    def on_bound(cls, app: celery.Celery) -> None:
        """Find the task's policy, validate the configuration and make ``max_retries`` match it."""
        super().on_bound(app)
        named = None if builtin(cls) else named_policy(cls, app, RetrykitTask)
        cls._retrykit_off, cls._retrykit_named = named is None, named
        if named is None:
            return  # Celery's own behaviour, options and all
        try:
            check_task_class(cls)
            wanted = max_retries_of(policy_named(named))
            check_max_retries(cls, wanted)
            guard = cls.retrykit_guard
            if guard is not None and guard is not False:
                ledger_for(str(guard), cls.retrykit_lease)  # validates the URL and the lease now
        except ConfigError as err:
            cls._retrykit_off, cls._retrykit_named = True, None
            raise refused(app, cls, err)  # noqa: B904 - the same error, raised as it is
        cls.max_retries = wanted
        cls._retrykit_ledger_url = None

    def _policy(self) -> Policy:
        named = self._retrykit_named
        if named is None:
            named = type(self)._retrykit_named = named_policy(type(self), self.app, RetrykitTask)
        return policy_named(named)

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

    def _retrykit_hop(self, request: Context) -> float | None:
        """The longest single countdown (None: any; eager mode publishes nothing)."""
        if request.is_eager:
            return None
        if self.retrykit_max_countdown is not None:
            return float(self.retrykit_max_countdown)
        return max_countdown(self.app)

    # ------------------------------------------------------------------ one delivery

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request: Any = self.request  # Celery's Context, which carries the marks below too
        if request.called_directly or getattr(request, "_retrykit_entered", None) is not None:
            # A direct call (outside a worker, or the body calling its own task): as Celery, a
            # fresh request context with these arguments, one attempt, the original exception.
            result: object = _Task.__call__(self, *args, **kwargs)
            return result if self._retrykit_off else resolve_coroutine(result)
        # the delivery the tracer runs; a context a direct call from its body pushes copies the mark
        request._retrykit_entered = id(request)
        request._protected = 1  # Celery's stack protection: the same mark, so it pushes that context
        if self._retrykit_off:
            return self.run(*args, **kwargs)  # what Celery's tracer runs for its own Task
        if "_orig_run" in self.__dict__:  # Celery's autoretry_for wrapped run before the policy was named
            raise autoretry_refused(self)
        try:
            return self._retrykit_deliver(request, args, kwargs)
        except Retry as flow:
            if flow is getattr(request, "_retrykit_published", None):
                # the retry this delivery published: Celery formats its traceback for every retry
                # (ExceptionInfo, stored with the RETRY state); the frames below say nothing
                request._retrykit_published = None  # nothing of the attempt outlives it
                flow.__traceback__ = None
            raise  # a Retry of the body's own, untouched

    def _retrykit_deliver(self, request: Context, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One delivery of a task with a policy: the attempt, and the decision if it fails."""
        policy = self._policy()
        claim = self._retrykit_enter(policy, request)
        failure: Exception | None = None
        try:
            return self._retrykit_attempt(policy, request, claim, args, kwargs)
        except TaskPredicate:
            raise
        except Exception as exc:
            failure = exc
        failed: Exception = failure  # set by the except clause
        try:  # outside the except block: what is raised now has no __context__
            if getattr(request, "_retrykit_decided", None) is failed:
                raise failed
            self._retrykit_fail(policy, failed, claim)
        finally:
            del failure, failed  # no reference cycle through the traceback
        raise AssertionError("unreachable")  # pragma: no cover

    def _retrykit_enter(self, policy: Policy, request: Context) -> Claim | None:
        """Before the body: a hop not yet due, the breaker's admission, the ledger's claim."""
        if request.is_eager:
            if policy.guard is not None and not request.retries:
                admit(policy, operation=self.name, first=True, hold=False)
            return None
        task_id = request.id
        if not task_id:
            return None
        left = due_in(request)
        if left is not None:
            self._retrykit_republish(request, left)
        if policy.guard is not None:
            self._retrykit_admit(policy, request)
        ledger = self._retrykit_ledger()
        if ledger is None:
            return None
        claim = Claim(ledger, task_id, request.retries)
        self._retrykit_claim(policy, claim, request)
        return claim

    def _retrykit_attempt(
        self,
        policy: Policy,
        request: Context,
        claim: Claim | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """The body in its one-layer scope; the ledger told how it ended; a success told the policy."""
        try:
            with owned(OWNER):
                # the tracer pushed this delivery's request: Task.__call__ would push an empty one
                # (eager mode on Celery 5.4.0: request.retries 0 and id None on every attempt)
                result = resolve_coroutine(self.run(*args, **kwargs))
        except TaskPredicate as flow:  # Retry, Ignore, Reject: Celery's control flow, untouched
            if claim is not None:
                if isinstance(flow, Reject) and getattr(flow, "requeue", False):
                    claim.release()  # the requeued delivery runs it
                else:
                    claim.end()
            raise
        finally:
            if claim is not None:
                claim.stop()
        if request.retries:
            delivery = resume(policy, operation=self.name, state=state_of(request))
            delivery.succeeded()
            _drain(delivery)
        elif policy.guard is not None:
            resume(policy, operation=self.name).succeeded()  # the breaker's success, the budget's refund
        return result

    def _retrykit_claim(self, policy: Policy, claim: Claim, request: Context) -> None:
        """Claim this attempt in the ledger: return to run the body, or raise (skip, defer, lost)."""
        status = claim.begin()
        if status == "run":
            return
        attempt = request.retries + 1
        if status == "done":
            _log.info("retrykit: attempt %s of %s[%s] already ran; skipped", attempt, self.name, request.id)
            raise Ignore()
        if status == "busy":
            wait = claim.lease_left() + 0.2
            _log.info(
                "retrykit: attempt %s of %s[%s] is running elsewhere; checked again in %.1fs",
                attempt,
                self.name,
                request.id,
                wait,
            )
            self._retrykit_republish(request, wait)
        # "lost": it started and its process died; counts as a failed attempt
        if self._retrykit_stored_success(request, claim.task_id):
            raise Ignore()
        _log.warning(
            "retrykit: attempt %s of %s[%s] was lost with its worker", attempt, self.name, request.id
        )
        self._retrykit_fail(policy, AttemptLost(claim.task_id, attempt), None, LOST)

    def _retrykit_admit(self, policy: Policy, request: Context) -> None:
        """
        Ask the policy's breaker before the body runs (a probe when half-open). Open: the body does
        not run and no attempt is charged; this same attempt goes back to the broker for the
        breaker's remaining open time. The budget counts the task's first attempt.
        """
        left = admit(policy, operation=self.name, first=not request.retries, hold=True)
        if left:
            breaker = policy.breaker
            assert breaker is not None
            self._retrykit_circuit_open(request, breaker, left, ran=False)
            self._retrykit_republish(request, left)

    def _retrykit_circuit_open(
        self, request: Context, breaker: CircuitBreaker, countdown: float, ran: bool
    ) -> None:
        """
        The log line of a wait the broker holds because *breaker* is open: the next attempt
        starts in *countdown* s; *ran*: after a failed body (else this attempt's body did not run).
        """
        fields: dict[str, object] = {
            "operation": self.name,
            "attempt": request.retries + 1 + int(ran),
            "stop_reason": StopReason.CIRCUIT_OPEN.value,
            "breaker": breaker.key,
            "countdown": round(countdown, 3),
            "body": "failed" if ran else "not run",
        }
        log_event("circuit_open", fields)

    def _retrykit_stored_success(self, request: Context, task_id: str) -> bool:
        if getattr(request, "ignore_result", False) or self.ignore_result:
            return False
        try:
            return bool(self.backend.get_state(task_id) == "SUCCESS")
        except Exception:
            return False

    def _retrykit_republish(self, request: Context, wait: float) -> None:
        """Publish this same attempt again in *wait* seconds (in hops), and end this delivery (acked)."""
        hop = self._retrykit_hop(request)
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

    def _retrykit_decide(
        self,
        policy: Policy,
        request: Context,
        exc: Exception,
        found: Classification | None,
        requested: float | None = None,
        forced: bool = False,
    ) -> tuple[Delivery, float | None]:
        """
        The decision on a failed attempt; *requested*: the delay the body asked for; *forced*:
        the body asked for the retry. Outside eager mode an open breaker holds the retry in the
        broker instead of ending the task.
        """
        delivery = resume(
            policy,
            operation=self.name,
            state=state_of(request),
            expires=expires_at(request),
            hold_while_open=not request.is_eager,
        )
        step = delivery.failed(exc, classification=found, forced=forced, delay=requested)
        _drain(delivery)
        return delivery, (step.delay if step.action is Action.RETRY else None)

    def _retrykit_fail(
        self,
        policy: Policy,
        exc: Exception,
        claim: Claim | None,
        found: Classification | None = None,
    ) -> None:
        """Decide about a failed attempt: raise the original exception, or publish the retry."""
        request = self.request
        delivery, delay = self._retrykit_decide(policy, request, exc, found)
        if delay is None:
            raise exc
        self._retrykit_held(policy, request, delay)
        countdown, options = retry_options(request, delivery, delay, self._retrykit_hop(request))
        retry = super().retry(exc=exc, countdown=countdown, throw=False, **options)  # Celery's own
        if claim is not None:
            claim.end()
        vars(request)["_retrykit_published"] = retry
        raise retry

    def _retrykit_held(self, policy: Policy, request: Context, delay: float) -> None:
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
        self._retrykit_warn_max_retries(max_retries)
        policy = self._policy()
        delivery, delay = self._retrykit_requested(policy, request, exc, requested_delay(countdown, eta))
        self._retrykit_held(policy, request, delay)
        planned, message = retry_options(request, delivery, delay, self._retrykit_hop(request))
        message.update(options)
        if eta is not None and countdown is None and planned >= delay:  # not hopped: Celery's own eta
            return super().retry(args, kwargs, exc, throw, eta, None, **message)
        return super().retry(args, kwargs, exc, throw, None, planned, **message)

    def _retrykit_requested(
        self, policy: Policy, request: Context, exc: Exception | None, delay: float | None
    ) -> tuple[Delivery, float]:
        """The decision on a retry the body asked for; raises what ends the task when it is refused."""
        outcome = exc if exc is not None else sys.exc_info()[1]
        found = None
        if not isinstance(outcome, Exception) or isinstance(outcome, TaskPredicate):
            outcome, found = RetryRequested("self.retry()"), _requested(policy)
        delivery, planned = self._retrykit_decide(policy, request, outcome, found, delay, forced=True)
        if planned is not None:
            return delivery, planned
        if exc is not None:
            vars(request)["_retrykit_decided"] = exc  # decided here: __call__ re-raises it as it is
            raise exc
        exceeded: Any = self.MaxRetriesExceededError  # takes task_args and task_kwargs
        raise exceeded(
            f"Can't retry {self.name}[{request.id}] args:{request.args} kwargs:{request.kwargs}",
            task_args=request.args,
            task_kwargs=request.kwargs,
        )

    def _retrykit_warn_max_retries(self, max_retries: int | None) -> None:
        if max_retries is not None and not type(self)._retrykit_warned:
            type(self)._retrykit_warned = True
            _log.warning(
                "retrykit: self.retry(max_retries=%s) in task %s is ignored: the retrykit policy "
                "counts the attempts",
                max_retries,
                self.name,
            )

    # ------------------------------------------------------------------ in the worker's main process

    def _retrykit_worker_lost(self, req: Any, exc_info: object) -> bool:
        """The pool process running this attempt died: count a failed attempt (``worker_lost``)."""
        request = req._context
        policy = self._policy()

        def decide(exc: Exception, found: Classification) -> tuple[Delivery, float | None]:
            return self._retrykit_decide(policy, request, exc, found)

        return worker_lost(self, req, self._retrykit_ledger(), decide, self._retrykit_hop(request))


def _direct(request: Context) -> bool:
    """Whether *request* is the context of a direct call of the task from its own body."""
    entered = getattr(request, "_retrykit_entered", None)
    return entered is not None and entered != id(request)


def _drain(delivery: Delivery) -> None:
    if delivery.pending:
        run_coroutine(delivery.aclose())
