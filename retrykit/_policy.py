"""
Policies: category -> strategy, whole-call limits, callbacks; presets by name.

A policy *is* tenacity objects: ``policy.retry``, ``policy.wait`` and ``policy.stop`` plug into
``tenacity.Retrying``/``AsyncRetrying`` and compose with tenacity's own (``|``, ``&``, ``+``).
"""

from __future__ import annotations

import difflib
import inspect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict, cast, overload

import tenacity

from . import _config, _loop
from ._breaker import CircuitBreaker
from ._budget import RetryBudget
from ._categories import CategoryKey
from ._classify import Classifier, ErrorCategory
from ._errors import ConfigError, seconds, whole
from ._events import GaveUp, RetryScheduled, Succeeded
from ._overload import Guard, guard_of
from ._results import BUILTIN_RESULT_RULES, ResultRule
from ._strategy import Decision, Jitter, Strategy

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._config import Settings

OnRetry: TypeAlias = Callable[[RetryScheduled], object]
OnGiveUp: TypeAlias = Callable[[GaveUp], object]
OnSuccess: TypeAlias = Callable[[Succeeded], object]


StrategyMap: TypeAlias = "Mapping[CategoryKey, Strategy]"
"""Strategies by category: the enum, its value as a string, or both mixed."""


class PolicyOptions(TypedDict, total=False):
    """The options of a ``Policy``, as keywords of ``replace()``, ``retry()`` and ``attempts()``."""

    strategies: StrategyMap
    classifier: Classifier | None
    max_attempts: int | None
    deadline: float | timedelta | None
    attempt_timeout: float | timedelta | None
    on_retry: OnRetry | None
    on_giveup: OnGiveUp | None
    on_success: OnSuccess | None
    name: str | None
    classify_result: ResultRule | Literal["http"] | None
    idempotent: bool
    clamp_retry_after: bool
    budget: RetryBudget | str | Mapping[str, Any] | None
    breaker: CircuitBreaker | str | Mapping[str, Any] | None


_BUILTIN_DEFAULT: Mapping[ErrorCategory, Strategy] = MappingProxyType(
    {
        ErrorCategory.NETWORK_ERROR: Strategy.backoff(0.2, 10.0, max_retries=4),
        ErrorCategory.API_RATE_LIMIT: Strategy.delay(
            5.0, max_retries=3, backoff_factor=2.0, max_delay=60.0, jitter=Jitter.EQUAL
        ),
        ErrorCategory.DATA_ERROR: Strategy.no_retry(),
        ErrorCategory.SYSTEM_ERROR: Strategy.backoff(1.0, 30.0, max_retries=3, jitter=Jitter.EQUAL),
        ErrorCategory.TEMPORARY_ERROR: Strategy.backoff(0.5, 15.0, max_retries=3),
        ErrorCategory.PERMANENT_ERROR: Strategy.no_retry(),
    }
)


class PolicyRetry(tenacity.retry_base):
    """
    tenacity ``retry``: is this outcome one the policy retries at all (its category's strategy
    retries; not cancellation, not given up inside, not a good result)? Limits are ``stop``'s.
    A side-effect-free view of the decision: call it any number of times.
    """

    __slots__ = ("policy",)

    def __init__(self, policy: Policy) -> None:
        self.policy: Policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return _loop.view(self.policy, retry_state, False).retryable

    def __repr__(self) -> str:
        return f"<PolicyRetry of {self.policy.name or 'policy'}>"


class PolicyWait(tenacity.wait.wait_base):
    """
    tenacity ``wait``: the delay the decision gives this outcome (its category's strategy, the
    server's Retry-After, capped). An outcome the policy would not retry but a composed ``retry``
    does is waited for as a temporary error. Side-effect free.
    """

    __slots__ = ("policy",)

    def __init__(self, policy: Policy) -> None:
        self.policy: Policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return _loop.view(self.policy, retry_state, True).delay

    def __repr__(self) -> str:
        return f"<PolicyWait of {self.policy.name or 'policy'}>"


class PolicyStop(tenacity.stop.stop_base):
    """
    tenacity ``stop``: whether the decision gives up on this outcome (per-category retries,
    ``max_attempts``, the deadline, Retry-After bounds). Side-effect free.
    """

    __slots__ = ("policy",)

    def __init__(self, policy: Policy) -> None:
        self.policy: Policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return _loop.view(self.policy, retry_state, True).action != _loop.RETRY

    def __repr__(self) -> str:
        return f"<PolicyStop of {self.policy.name or 'policy'}>"


def _check_callback(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigError(name, value, "must be callable", f"pass a function taking one event as {name}=")


def _merged_strategies(given: object) -> MappingProxyType[ErrorCategory, Strategy]:
    """A policy's *strategies* checked and laid over the built-in default ones, read-only."""
    if not isinstance(given, Mapping):
        raise ConfigError(
            "strategies",
            given,
            "must map categories to Strategy objects",
            "pass e.g. {ErrorCategory.NETWORK_ERROR: Strategy.backoff(0.5, 10)}",
        )
    merged = dict(_BUILTIN_DEFAULT)
    for key, strategy in given.items():
        category = ErrorCategory.parse(key, "strategies")
        if not isinstance(strategy, Strategy):
            raise ConfigError(
                f"strategies[{category.value!r}]",
                strategy,
                "must be a Strategy",
                "build one with Strategy.backoff(...), Strategy.delay(...), "
                "Strategy.immediately(...) or Strategy.no_retry()",
            )
        merged[category] = strategy
    return MappingProxyType(merged)


def _result_rule(judge: object) -> ResultRule | None:
    """A policy's *classify_result*: a function as given, or the built-in rule a name stands for."""
    if isinstance(judge, str):
        if judge not in BUILTIN_RESULT_RULES:
            raise ConfigError(
                "classify_result",
                judge,
                "is not a built-in result rule",
                f"use one of: {', '.join(BUILTIN_RESULT_RULES)}, or pass a function",
            )
        return BUILTIN_RESULT_RULES[judge]
    if judge is not None and not callable(judge):
        raise ConfigError(
            "classify_result",
            judge,
            "must be a function result -> None | category | Classification, or 'http'",
            "pass e.g. classify_result=lambda r: 'temporary_error' if r is None else None",
        )
    return cast("ResultRule | None", judge)


@dataclass(frozen=True, slots=True)
class Policy:
    """
    How to retry: a strategy per error category, plus whole-call limits and callbacks.

    Every option is also a keyword of ``retry()``, ``attempts()`` and ``replace()``, applied
    over the policy they name: ``@retrykit.retry("http", max_attempts=3)``. A policy is also a
    set of tenacity objects: ``policy.retry``, ``policy.wait`` and ``policy.stop`` are
    side-effect-free views of its decision, and ``policy.tenacity_kwargs()`` runs it in
    tenacity's own loop.

    Args:
        strategies: A ``Strategy`` per category (``ErrorCategory`` members or their values as
            keys); categories left out keep the built-in default strategy.
        classifier: The ``Classifier`` that puts each failure in a category. Default: the
            configured one (built-in rules, ``default_category``).
        max_attempts: The executions of one call, all categories together. Default: no limit
            beyond the strategies'.
        deadline: The call's total time in seconds (or a ``timedelta``), waits included: no wait
            that would end past it is started. Nested calls never wait past an enclosing deadline.
        attempt_timeout: Seconds allowed to each attempt of a coroutine (enforced with anyio; for
            a plain function it is warned about, not enforced).
        on_retry: Called with each ``RetryScheduled`` event: a plain or ``async`` function (async
            ones only on coroutines). A callback that raises is logged, never propagated.
        on_giveup: Called with the ``GaveUp`` event when the policy stops retrying.
        on_success: Called with the ``Succeeded`` event when a call succeeds after a failure.
        name: The policy's name, shown in ``retrykit explain`` and events (presets have theirs).
        classify_result: Judges returned values: a function ``result -> None | category |
            Classification`` (``None``: a good result), or ``"http"`` for the built-in rule for
            HTTP responses (408, 425, 429, 500, 502, 503, 504, with ``Retry-After``). On giving up
            after retried results the caller gets the last result.
        idempotent: Declares that repeating a request the server may already have applied is
            safe; otherwise such a failure gives up (``not_idempotent``).
        clamp_retry_after: Wait ``max_delay`` when a server's Retry-After is longer than the
            category's ``max_delay``, instead of giving up (``retry_after_too_long``).
        budget: A ``RetryBudget``, a downstream's name (default settings) or a mapping of its
            settings: limits the retries every operation calling that downstream may add.
        breaker: A ``CircuitBreaker``, a name or a mapping of its settings: fails calls fast while
            the downstream is down.

    Raises:
        ConfigError: A bad option, naming it, the value and the fix.
    """

    strategies: Mapping[ErrorCategory, Strategy] = field(default_factory=lambda: _BUILTIN_DEFAULT)
    classifier: Classifier | None = None
    max_attempts: int | None = None
    deadline: float | None = None
    attempt_timeout: float | None = None
    on_retry: OnRetry | None = None
    on_giveup: OnGiveUp | None = None
    on_success: OnSuccess | None = None
    name: str | None = None
    classify_result: ResultRule | None = None
    idempotent: bool = False
    clamp_retry_after: bool = False
    budget: RetryBudget | None = None
    breaker: CircuitBreaker | None = None
    guard: Guard | None = field(init=False, repr=False, compare=False)
    retry: PolicyRetry = field(init=False, repr=False, compare=False)
    wait: PolicyWait = field(init=False, repr=False, compare=False)
    stop: PolicyStop = field(init=False, repr=False, compare=False)

    if TYPE_CHECKING:  # what type checkers see; at run time dataclass writes __init__

        @overload
        def __init__(
            self,
            strategies: StrategyMap = ...,  # a dict display: enum members and/or their values
            classifier: Classifier | None = None,
            max_attempts: int | None = None,
            deadline: float | timedelta | None = None,
            attempt_timeout: float | timedelta | None = None,
            on_retry: OnRetry | None = None,
            on_giveup: OnGiveUp | None = None,
            on_success: OnSuccess | None = None,
            name: str | None = None,
            classify_result: ResultRule | Literal["http"] | None = None,
            idempotent: bool = False,
            clamp_retry_after: bool = False,
            budget: RetryBudget | str | Mapping[str, Any] | None = None,
            breaker: CircuitBreaker | str | Mapping[str, Any] | None = None,
        ) -> None: ...

        @overload
        def __init__(
            self,
            strategies: Mapping[ErrorCategory, Strategy] = ...,  # a mapping built elsewhere
            classifier: Classifier | None = None,
            max_attempts: int | None = None,
            deadline: float | timedelta | None = None,
            attempt_timeout: float | timedelta | None = None,
            on_retry: OnRetry | None = None,
            on_giveup: OnGiveUp | None = None,
            on_success: OnSuccess | None = None,
            name: str | None = None,
            classify_result: ResultRule | Literal["http"] | None = None,
            idempotent: bool = False,
            clamp_retry_after: bool = False,
            budget: RetryBudget | str | Mapping[str, Any] | None = None,
            breaker: CircuitBreaker | str | Mapping[str, Any] | None = None,
        ) -> None: ...

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "strategies", _merged_strategies(self.strategies))
        if self.classifier is not None and not isinstance(self.classifier, Classifier):
            raise ConfigError(
                "classifier",
                self.classifier,
                "must be a Classifier",
                "wrap your rules: Classifier([Rule(...), my_function])",
            )
        set_(self, "max_attempts", whole("max_attempts", self.max_attempts, minimum=1))
        set_(self, "deadline", seconds("deadline", self.deadline, positive=True))
        set_(self, "attempt_timeout", seconds("attempt_timeout", self.attempt_timeout, positive=True))
        for name in ("on_retry", "on_giveup", "on_success"):
            _check_callback(name, getattr(self, name))
        if self.name is not None and not isinstance(self.name, str):
            raise ConfigError("name", self.name, "must be a str", "pass a short name")
        set_(self, "classify_result", _result_rule(self.classify_result))
        for flag in ("idempotent", "clamp_retry_after"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(flag, getattr(self, flag), "must be True or False", f"pass {flag}=True")
        set_(self, "budget", RetryBudget.parse(self.budget))
        set_(self, "breaker", CircuitBreaker.parse(self.breaker))
        set_(self, "guard", guard_of(self.budget, self.breaker))
        set_(self, "retry", PolicyRetry(self))
        set_(self, "wait", PolicyWait(self))
        set_(self, "stop", PolicyStop(self))

    def replace(self, **changes: Unpack[PolicyOptions]) -> Policy:
        """
        A copy with *changes*, validated.

        Args:
            **changes: Any option of ``Policy`` by keyword. ``strategies`` given here are merged
                over this policy's, so ``policy.replace(strategies={"network_error": ...})``
                changes one category.

        Returns:
            The new policy; this one is unchanged.

        Raises:
            ConfigError: An unknown option (with the closest known one) or a bad value.
        """
        given: dict[str, Any] = dict(changes)  # checked here: a typo is a ConfigError at run time too
        allowed = {f.name for f in fields(self) if f.init}
        for key, value in given.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(sorted(allowed))}"
                raise ConfigError(key, value, "is not a Policy option", hint)
        if "strategies" in given and isinstance(given["strategies"], Mapping):
            merged: dict[ErrorCategory, Strategy] = dict(self.strategies)
            for key, value in given["strategies"].items():
                merged[ErrorCategory.parse(key, "strategies")] = value
            given["strategies"] = merged
        return replace(self, **given)

    def strategy_for(self, category: ErrorCategory) -> Strategy:
        """
        The strategy this policy applies to *category*.

        Args:
            category: The category of a failure.

        Returns:
            The category's ``Strategy``.
        """
        return self.strategies[category]

    def tenacity_kwargs(
        self,
        *,
        retry: Any = None,
        wait: Any = None,
        stop: Any = None,
        asynchronous: bool = False,
        **overrides: Any,
    ) -> dict[str, Any]:
        """
        Keyword arguments that make ``tenacity.Retrying(**...)`` and ``AsyncRetrying(**...)`` run
        this policy (the same arguments serve both loops, on asyncio or trio).

        The loop then behaves as the decorator does: the same calls, sleeps (``no_wait()`` and
        ``scaled_time()`` included), deadline and ``remaining()``, events, callbacks and give-up note.

        Args:
            retry: Replaces the policy's ``retry`` view (pass compositions such as
                ``policy.retry & retry_if_exception_type(X)``).
            wait: Replaces the policy's ``wait`` view (``policy.wait + wait_random(0, 1)``).
            stop: Replaces the policy's ``stop`` view (``policy.stop | stop_after_attempt(2)``).
            asynchronous: No longer needed (an ``AsyncRetrying`` picks the async hooks itself);
                accepted and ignored.
            **overrides: Any other ``Retrying`` argument (``sleep=``, ``before=``, ...), which then
                replaces retrykit's.

        Returns:
            The keyword arguments for ``tenacity.Retrying`` or ``AsyncRetrying``.
        """
        del asynchronous  # accepted as before; an AsyncRetrying picks the async hooks itself
        return _loop.tenacity_hooks(self, retry, wait, stop, overrides)

    @property
    def async_callbacks(self) -> tuple[str, ...]:
        """Names of the callbacks that are coroutine functions."""
        return tuple(
            name
            for name in ("on_retry", "on_giveup", "on_success")
            if _is_async_callable(getattr(self, name))
        )


def _is_async_callable(obj: Any) -> bool:
    if obj is None:
        return False
    while hasattr(obj, "func"):  # functools.partial
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


# --------------------------------------------------------------------------- presets


def _policy(name: str, strategies: Mapping[ErrorCategory, Strategy], **kw: Any) -> Policy:
    return Policy(strategies=strategies, name=name, **kw)


_NET = ErrorCategory.NETWORK_ERROR
_RATE = ErrorCategory.API_RATE_LIMIT
_DATA = ErrorCategory.DATA_ERROR
_SYS = ErrorCategory.SYSTEM_ERROR
_TEMP = ErrorCategory.TEMPORARY_ERROR
_PERM = ErrorCategory.PERMANENT_ERROR

_RESOURCE_CONSTRAINT = Strategy.delay(
    30.0, max_retries=3, backoff_factor=2.0, max_delay=300.0, jitter=Jitter.EQUAL
)

BUILTIN_PRESETS: dict[str, Policy] = {
    # tracking (order-tracking queries). Network 5s -> 10s -> 20s -> 40s; rate limit
    # 5 min -> 10 min -> 20 min; data errors never; temporary errors exponential backoff.
    "tracking": _policy(
        "tracking",
        {
            _NET: Strategy.backoff(5.0, 40.0, max_retries=4, jitter=Jitter.NONE),
            _RATE: Strategy.delay(
                timedelta(minutes=5), max_retries=3, backoff_factor=2.0, max_delay=timedelta(minutes=30)
            ),
            _DATA: Strategy.no_retry(),
            _TEMP: Strategy.backoff(10.0, 300.0, max_retries=5),
        },
    ),
    # screenshot (screenshot capture). Network at once; resource-constraint retry for
    # system errors; quick file-operation retry for temporary errors.
    "screenshot": _policy(
        "screenshot",
        {
            _NET: Strategy.immediately(max_retries=3),
            _SYS: _RESOURCE_CONSTRAINT,
            _TEMP: Strategy.backoff(1.0, 10.0, max_retries=3, jitter=Jitter.EQUAL),
        },
    ),
    # document (document generation). Data errors never; resource-constraint retry;
    # critical-file retry (more, longer) for temporary errors.
    "document": _policy(
        "document",
        {
            _DATA: Strategy.no_retry(),
            _SYS: _RESOURCE_CONSTRAINT,
            _TEMP: Strategy.backoff(2.0, 60.0, max_retries=5, jitter=Jitter.EQUAL),
        },
    ),
    # http: calls to HTTP APIs. Short, jittered; Retry-After honoured; 4xx never retried.
    "http": _policy(
        "http",
        {
            _NET: Strategy.backoff(0.2, 5.0, max_retries=3),
            _RATE: Strategy.delay(
                1.0, max_retries=3, backoff_factor=2.0, max_delay=30.0, jitter=Jitter.EQUAL
            ),
            _TEMP: Strategy.backoff(0.5, 10.0, max_retries=3),
            _SYS: Strategy.no_retry(),
        },
        max_attempts=5,
        classify_result="http",
    ),
    # database: deadlocks, serialization failures and lost connections clear up fast.
    "database": _policy(
        "database",
        {
            _NET: Strategy.backoff(0.1, 2.0, max_retries=5),
            _TEMP: Strategy.backoff(0.05, 2.0, max_retries=5, jitter=Jitter.DECORRELATED),
            _SYS: Strategy.delay(1.0, max_retries=2),
        },
        max_attempts=6,
    ),
}


def build_default(cfg: Settings) -> Policy:
    """The ``default`` preset under settings *cfg*."""
    strategies: dict[ErrorCategory, Strategy] = {}
    for category, builtin in _BUILTIN_DEFAULT.items():
        strategy = builtin
        changes: dict[str, Any] = {}
        if strategy.retries:
            changes.update(cfg.strategy_defaults)
        changes.update(cfg.category_overrides.get(category, {}))
        if changes:
            decision = Decision.parse(changes.get("decision", strategy.decision))
            if decision is Decision.NO_RETRY:
                changes.setdefault("max_retries", 0)
            elif strategy.decision is Decision.NO_RETRY and "max_retries" not in changes:
                changes["max_retries"] = 3
            if decision is Decision.RETRY_IMMEDIATELY:
                changes.setdefault("base_delay", 0.0)
            if "base_delay" in changes and "max_delay" not in changes:
                changes["max_delay"] = max(strategy.max_delay, changes["base_delay"])
            if "max_delay" in changes and "base_delay" not in changes:
                changes["base_delay"] = min(strategy.base_delay, changes["max_delay"])
            try:
                strategy = strategy.replace(**changes)
            except ConfigError as err:
                short = category.value.removesuffix("_error")
                raise ConfigError(f"{short}_{err.argument}", err.value, err.rule, err.fix) from None
        strategies[category] = strategy
    return Policy(
        strategies=strategies,
        max_attempts=cfg.max_attempts or 6,
        deadline=cfg.deadline,
        name="default",
    )


_config.set_preset_check(build_default)
_registry: dict[str, Policy] = dict(BUILTIN_PRESETS)
_registry_lock = threading.Lock()
_default_cache: tuple[int, Policy] | None = None


def generation() -> int:
    """Bumped whenever settings or presets change (resolved-by-name policies re-resolve)."""
    return _config.settings.generation


def register_preset(name: str, policy: Policy, *, replace: bool = False) -> None:
    """
    Register *policy* under *name*, for ``@retrykit.retry(name)``.

    Functions decorated with the name pick up a policy registered or replaced later.

    Args:
        name: The preset's name.
        policy: The policy it stands for.
        replace: Whether to replace a preset of that name (a built-in one included).

    Raises:
        ConfigError: The name exists and *replace* is false, or *policy* is not a ``Policy``.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError("name", name, "must be a non-empty str", "pass e.g. 'payments'")
    if not isinstance(policy, Policy):
        raise ConfigError("policy", policy, "must be a Policy", "build one with retrykit.Policy(...)")
    with _registry_lock:
        if (name in _registry or name == "default") and not replace:
            raise ConfigError(
                "name",
                name,
                "a preset with this name exists",
                "pick another name, or pass replace=True to override it",
            )
        _registry[name] = policy if policy.name == name else policy.replace(name=name)
    _config.bump()


def snapshot_presets() -> dict[str, Policy]:
    """The presets registered now, by name (``retrykit.testing.isolated()`` puts them back)."""
    with _registry_lock:
        return dict(_registry)


def restore_presets(presets: dict[str, Policy]) -> None:
    """The presets are *presets* again, and only those."""
    with _registry_lock:
        _registry.clear()
        _registry.update(presets)


def preset_names() -> list[str]:
    """The names ``get_preset`` knows, sorted."""
    return sorted({"default", *_registry})


def get_preset(name: str) -> Policy:
    """
    The policy registered as *name*.

    Args:
        name: ``default``, ``http``, ``database``, ``tracking``, ``screenshot``, ``document`` or
            one you registered.

    Returns:
        The policy; ``default`` reflects the current settings (``configure()``).

    Raises:
        ConfigError: An unknown name (the message lists the known ones), or a bad
            ``RETRYKIT_*`` environment variable found at import.
    """
    global _default_cache
    _config.check()
    if name == "default":
        cache = _default_cache
        gen = generation()
        if cache is None or cache[0] != gen:
            cache = (gen, build_default(_config.settings))
            _default_cache = cache
        return cache[1]
    try:
        return _registry[name]
    except (KeyError, TypeError):
        raise ConfigError(
            "policy",
            name,
            "is not a known preset",
            f"use one of: {', '.join(preset_names())}, or register it with retrykit.register_preset()",
        ) from None
