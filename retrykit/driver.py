"""
The driver: the one public way to run attempts under a policy, for adapters.

A ``Run`` is one retrying call, sans-I/O: it never runs your code and never sleeps. You run an
attempt, hand the run its outcome (``run.failed(exc)`` or ``run.returned(value)``) and get back a
``Step``: retry after ``step.delay`` seconds, give up (the caller gets this outcome) or pass (a
success, or nothing retrykit judges). It classifies, decides, emits the events, runs the
callbacks, counts statistics, charges budgets and breakers, writes the note on the exception it
gives up on and keeps the one-layer rule, exactly as ``@retrykit.retry`` does (the decorator is a
driver of this kind), so an adapter is a loop of a few lines around it::

    run = retrykit.driver.start("http", operation="GET example.com")
    with run:  # the call's scope: its deadline, and one layer for retrykit calls inside it
        while True:
            try:
                step = run.returned(send())
            except Exception as exc:
                step = run.failed(exc)
                if step.action is not Action.RETRY:
                    raise
            if step.action is not Action.RETRY:
                break
            run.sleep(step.delay)  # or hand the wait to a broker, or await run.asleep(...)
            if not run.next():  # the deadline passed or a breaker opened meanwhile
                return run.last()

``Run.call`` and ``Run.acall`` are that loop, for a function and a coroutine function.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from types import TracebackType
from typing import Any, NamedTuple, TypeVar, Unpack

from . import _config, _scope
from ._categories import Classification
from ._decision import PASS, Action, classify_outcome
from ._errors import ConfigError
from ._events import StopReason
from ._layers import attach
from ._loop import Call
from ._policy import Policy, PolicyOptions, get_preset
from ._results import judge_result

__all__ = ["Action", "Run", "Step", "start"]

T = TypeVar("T")


class Step(NamedTuple):
    """The driver's answer on one attempt: its *action*, the *delay* before a retry, the *reason*."""

    action: Action
    delay: float = 0.0
    reason: StopReason | None = None


_PASS = Step(Action.PASS)


def start(policy: Policy | str | None = None, *, operation: str, **overrides: Unpack[PolicyOptions]) -> Run:
    """
    Begin a retrying call under *policy* (a ``Policy``, a preset name, or None for the default).

    Args:
        policy: the policy, or the name of a preset (``"http"``); None is the default preset.
        operation: the name of the call in events, logs and statistics (e.g. ``"GET example.com"``).
        **overrides: policy options on top (``max_attempts=3``, ``deadline=10``...).

    Returns:
        The ``Run``; enter it (``with run:``) around the attempts.

    Raises:
        ConfigError: an unknown preset, a bad option or a non-str *operation*.
        CircuitOpen: the policy's circuit breaker is open: no attempt may start.
    """
    if not isinstance(operation, str) or not operation:
        raise ConfigError(
            "operation", operation, "must be a non-empty str", "pass e.g. operation='GET example.com'"
        )
    _config.check()
    if policy is None or isinstance(policy, str):
        resolved = get_preset(policy or "default")
    elif isinstance(policy, Policy):
        resolved = policy
    else:
        raise ConfigError(
            "policy",
            policy,
            "must be a Policy, a preset name or None",
            "pass e.g. start('http', operation=...)",
        )
    if overrides:
        resolved = resolved.replace(**overrides)
    return Run(resolved, operation)


class Run:
    """
    One retrying call under a policy (see the module's documentation). Not thread-safe: one run
    per call, as every call of a decorated function has its own.
    """

    __slots__ = ("_call", "_start", "_token", "operation", "policy", "scope")

    def __init__(self, policy: Policy, operation: str) -> None:
        outer = _scope._SCOPE.get()
        guard = policy.guard
        if guard is not None:  # an open breaker refuses the call before its first attempt
            guard.admit(operation, outer)
        self.policy: Policy = policy
        """The policy in force."""
        self.operation: str = operation
        """The call's name in events, logs and statistics."""
        self._start = _scope.now()
        self.scope: _scope.Scope = (
            _scope.scope(policy.deadline, self._start)
            if policy.deadline is not None or outer is None
            else _scope.Scope(outer, outer.deadline, outer.owner)
        )
        self._call: Call | None = None
        self._token: Any = None

    # ------------------------------------------------------------------ the scope

    def __enter__(self) -> Run:
        self._token = _scope._SCOPE.set(self.scope)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            _scope._SCOPE.reset(token)
        self.close()

    # ------------------------------------------------------------------ the steps

    @property
    def attempt(self) -> int:
        """The number of the attempt running now (1, 2, ...)."""
        return 1 if self._call is None else self._call.attempt

    def timeout(self) -> float | None:
        """How long the current attempt may run: ``attempt_timeout``, and never past the deadline."""
        limit = self.policy.attempt_timeout
        deadline = self.scope.deadline
        if deadline is not None:
            left = max(0.0, deadline - _scope.now())
            limit = left if limit is None else min(limit, left)
        return limit

    def failed(self, exc: BaseException, *, replay_unsafe: bool = False) -> Step:
        """
        The attempt raised *exc*: what to do now.

        *replay_unsafe*: the adapter knows the request may have reached the server and is not
        idempotent (a POST whose connection broke after it was sent): the run gives up with
        ``StopReason.NOT_IDEMPOTENT`` instead of retrying, unless the policy is ``idempotent``.
        False leaves it to the classifier's own reading of the exception.
        """
        if not replay_unsafe:
            return self._step(exc, True)
        call = self._call
        if call is None:
            call = self._call = Call(self.policy, self.operation, self._start, self.scope)
        found, _ = classify_outcome(call, exc, True)
        if found is None:  # cancellation, a pass-through, a failure an inner layer gave up on
            return self._step(exc, True)
        return self._step(exc, True, replace(found, replay_unsafe=True))

    def returned(self, value: Any) -> Step:
        """The attempt returned *value* (retried when the policy's result rule says so)."""
        if self._call is not None:
            return self._step(value, False)
        judge = self.policy.classify_result
        found = None if judge is None else judge_result(judge, value)
        if found is None:
            guard = self.policy.guard
            if guard is not None:
                guard.succeeded(None)
            return _PASS  # a first-try success: nothing is built
        return self._step(value, False, attach(found, value, failed=False))

    def _step(self, outcome: Any, failed: bool, found: Classification | None = None) -> Step:
        call = self._call
        if call is None:
            call = self._call = Call(self.policy, self.operation, self._start, self.scope)
        before = call.verdict
        if failed and found is None and isinstance(outcome, Exception):
            delay = call.fail(outcome)  # the common retry decided in one go (else ``step``)
        else:
            delay = call.step(outcome, failed, found)
        if delay is not None:
            verdict = call.verdict
            return Step(Action.RETRY, delay, None if verdict is None else verdict.reason)
        verdict = call.verdict
        if verdict is None or verdict is before or verdict.action == PASS:
            return _PASS
        # a retry the deadline ended while callbacks ran is a give-up at the deadline
        return Step(Action.GIVE_UP, 0.0, verdict.reason or StopReason.DEADLINE)

    def sleep(self, delay: float) -> None:
        """Sleep *delay* seconds as retrykit does: ``retrykit.testing``'s modes (no_wait...) apply."""
        _scope.sleep_sync(delay)

    async def asleep(self, delay: float) -> None:
        """``sleep`` for coroutines, on the running event loop (asyncio or trio)."""
        await _scope.sleep_async(delay)

    def next(self) -> bool:
        """Start the next attempt after the delay; False: the call gave up meanwhile (see ``last``)."""
        call = self._call
        if call is None:
            raise RuntimeError("Run.next() before a retry was decided: call failed() or returned() first")
        call.drop_pending()
        return call.begin()

    def last(self) -> Any:
        """Return (or raise) the outcome the call ended with when ``next()`` said False."""
        call = self._call
        if call is None:
            raise RuntimeError("Run.last() before any attempt ended")
        return call.end_with_last()

    def close(self) -> None:
        """Drop what async callbacks returned (a sync adapter cannot await them)."""
        if self._call is not None:
            self._call.drop_pending()

    async def aclose(self) -> None:
        """Await what async callbacks returned (their errors are logged, never raised)."""
        if self._call is not None:
            await self._call.drain()

    # ------------------------------------------------------------------ conveniences

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` under this run: attempt, decide, sleep, until it ends."""
        with self:
            while True:
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    step = self.failed(exc)
                    if step.action is not Action.RETRY:
                        raise
                else:
                    step = self.returned(result)
                    if step.action is not Action.RETRY:
                        return result
                self.close()
                self.sleep(step.delay)
                if not self.next():
                    last: T = self.last()
                    return last

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``call`` for a coroutine function (asyncio and trio): each attempt bounded by ``timeout()``."""
        import anyio

        with self:
            while True:
                try:
                    limit = self.timeout()
                    if limit is None:
                        result = await fn(*args, **kwargs)
                    else:
                        with anyio.fail_after(limit):
                            result = await fn(*args, **kwargs)
                except Exception as exc:
                    step = self.failed(exc)
                    if step.action is not Action.RETRY:
                        await self.aclose()
                        raise
                else:
                    step = self.returned(result)
                    if step.action is not Action.RETRY:
                        await self.aclose()
                        return result
                await self.aclose()
                await self.asleep(step.delay)
                if not self.next():
                    last: T = self.last()
                    return last
