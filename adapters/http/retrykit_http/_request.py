"""
What the three adapters share: a request's shape, whether it may be sent again (RFC 9110
idempotency, an ``Idempotency-Key``, a body that can be replayed), the key its budget and
breaker are kept under, the result rule for responses (statuses, ``Retry-After`` in seconds or
as a date, ``retry-after-ms``), and the loop that drives ``retrykit.driver`` for one request.
Everything here is checked when an adapter is built: bad input is a ``ConfigError`` then.
"""

from __future__ import annotations

import copy
import dataclasses
import email.utils
import logging
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, NamedTuple, TypeAlias, TypeVar, cast

import anyio

import retrykit
from retrykit import Classification, ConfigError, ErrorCategory, Policy
from retrykit.driver import Action, Run, start
from retrykit.events import StopReason

R = TypeVar("R")
_log = logging.getLogger("retrykit")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""RFC 9110 section 9.2.2: repeating these has the effect of sending them once."""
REFUSED_STATUSES = frozenset({408, 425, 429, 503})
"""Statuses by which the server says it did not act on the request: resent whatever the method."""
DEFAULT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
"""The statuses retried unless ``statuses=`` says otherwise (those the ``"http"`` preset retries)."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
RESEND_COUNT = "http.request.resend_count"
"""The extension (httpx) naming how many times a request was resent, after OpenTelemetry's attribute."""


class RequestInfo(NamedTuple):
    """What a key or route function is given about a request."""

    method: str
    """The method, upper case."""
    url: str
    """The whole URL."""
    host: str
    """``host`` or ``host:port`` (a non-default port): the default key of budgets and breakers."""
    path: str
    """The path, without the query."""


KeyFunction: TypeAlias = Callable[[RequestInfo], str]
RouteFunction: TypeAlias = Callable[[RequestInfo], "str | None"]
ResponseRule: TypeAlias = Callable[[Any], "ErrorCategory | Classification | str | None"]


def retry_after(headers: Any) -> float | None:
    """
    The server's wait hint in seconds: ``retry-after-ms``, else ``Retry-After`` as seconds or as
    an HTTP date (a date in the past is 0); None when absent or unreadable.
    """
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    millis = getter("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    text = getter("Retry-After")
    if text is None:
        return None
    text = str(text).strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def status_category(status: int) -> ErrorCategory:
    """429 is a rate limit; every other status retried is a temporary error."""
    return ErrorCategory.API_RATE_LIMIT if status == 429 else ErrorCategory.TEMPORARY_ERROR


def _check_statuses(statuses: Iterable[int] | None) -> frozenset[int]:
    given = cast(object, statuses)  # checked at run time: callers are not all type-checked
    if given is None:
        return DEFAULT_STATUSES
    fix = "pass error statuses only, e.g. statuses={429, 502, 503, 504}"
    if isinstance(given, (str, bytes, int)) or not isinstance(given, Iterable):
        raise ConfigError("statuses", given, "must be a collection of HTTP statuses", fix)
    found: frozenset[object] = frozenset(cast("Iterable[object]", given))
    for status in sorted(found, key=repr):
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ConfigError(
                "statuses",
                sorted(found, key=repr),
                f"holds {status!r}: only error statuses (400-599) can be retried",
                fix,
            )
    return cast("frozenset[int]", found)


def _check_callable(argument: str, value: Any, example: str) -> None:
    if value is not None and not callable(value):
        raise ConfigError(argument, value, "must be callable", f"pass e.g. {argument}={example}")


def _keyed(part: Any, key: str) -> Any:
    """A budget or breaker like *part*, kept under ``<part.key>:<key>`` (same settings, same store)."""
    if part is None:
        return None
    keyed = copy.copy(part)
    keyed.key = f"{part.key}:{key}"
    return keyed


class Plan(NamedTuple):
    """How one request is run: its operation name, its policy, and whether it may be resent."""

    operation: str
    policy: Policy
    resend_safe: bool


class Settings:
    """An adapter's settings, checked once when it is built; ``plan()`` per request."""

    __slots__ = (
        "_lock",
        "_policies",
        "breaker",
        "budget",
        "idempotency_keys",
        "key",
        "policy",
        "read_body",
        "retry_non_idempotent",
        "route",
        "statuses",
    )

    def __init__(
        self,
        policy: Policy | str | None,
        *,
        statuses: Iterable[int] | None,
        classify_response: ResponseRule | None,
        key: KeyFunction | None,
        route: RouteFunction | None,
        budget: Any,
        breaker: Any,
        idempotency_keys: bool,
        retry_non_idempotent: bool,
        read_body: bool,
        request_of: Callable[[Any], tuple[str, Any]],
    ) -> None:
        given = cast(object, policy)  # checked at run time: callers are not all type-checked
        if given is None or isinstance(given, str):
            base = retrykit.get_preset(given or "http")
        elif isinstance(given, Policy):
            base = given
        else:
            raise ConfigError(
                "policy", policy, "must be a Policy, a preset name or None", "pass e.g. policy='http'"
            )
        self.statuses = _check_statuses(statuses)
        _check_callable("classify_response", classify_response, "lambda response: None")
        _check_callable("key", key, "lambda request: request.host")
        _check_callable("route", route, "lambda request: '/users/{id}'")
        flags = (
            ("idempotency_keys", cast(object, idempotency_keys)),
            ("retry_non_idempotent", cast(object, retry_non_idempotent)),
            ("read_body", cast(object, read_body)),
        )
        for flag, value in flags:
            if not isinstance(value, bool):
                raise ConfigError(flag, value, "must be True or False", f"pass {flag}=True")
        user_rule = classify_response
        own = policy_rule = base.classify_result
        if own is retrykit.get_preset("http").classify_result:
            policy_rule = None  # the built-in status rule: the statuses above replace it
        statuses_ = self.statuses

        def judge(response: Any) -> ErrorCategory | Classification | str | None:
            status = getattr(response, "status_code", None)
            if status is None:
                status = getattr(response, "status", None)
            if status in statuses_:
                method, headers = request_of(response)
                unsafe = status not in REFUSED_STATUSES and not self.resend_safe(method, headers)
                return Classification(
                    status_category(status),
                    f"HTTP {status} response",
                    retry_after(getattr(response, "headers", None)),
                    "retrykit_http.status",
                    unsafe,
                )
            for rule in (user_rule, policy_rule):
                if rule is not None:
                    found = rule(response)
                    if found is not None:
                        return _with_safety(found, rule, response)
            return None

        def _with_safety(found: Any, rule: Any, response: Any) -> Classification:
            """A rule's verdict, named after the rule and not resent when the request is not safe to."""
            method, headers = request_of(response)
            unsafe = not self.resend_safe(method, headers)
            if isinstance(found, Classification):
                return dataclasses.replace(found, replay_unsafe=found.replay_unsafe or unsafe)
            name = getattr(rule, "__name__", type(rule).__name__)
            category = found if isinstance(found, ErrorCategory) else ErrorCategory(found)
            return Classification(category, f"response matched {name}", None, name, unsafe)

        self.policy: Policy = base.replace(
            classify_result=judge,
            idempotent=base.idempotent or retry_non_idempotent,
            budget=base.budget if budget is None else budget,
            breaker=base.breaker if breaker is None else breaker,
        )
        self.budget = self.policy.budget
        self.breaker = self.policy.breaker
        self.key: KeyFunction | None = key
        self.route: RouteFunction | None = route
        self.idempotency_keys = idempotency_keys
        self.retry_non_idempotent = retry_non_idempotent
        self.read_body = read_body
        self._policies: dict[str, Policy] = {}
        self._lock = threading.Lock()

    def resend_safe(self, method: str, headers: Any) -> bool:
        """Whether a request may be sent again after it may have reached the server."""
        if self.retry_non_idempotent or method.upper() in IDEMPOTENT_METHODS:
            return True
        getter = getattr(headers, "get", None)
        return getter is not None and bool(getter(IDEMPOTENCY_HEADER))

    def add_idempotency_key(self, method: str, headers: MutableMapping[str, Any]) -> None:
        """With ``idempotency_keys=True``: one key per logical request, sent on every attempt."""
        if (
            self.idempotency_keys
            and method.upper() not in IDEMPOTENT_METHODS
            and not headers.get(IDEMPOTENCY_HEADER)
        ):
            headers[IDEMPOTENCY_HEADER] = str(uuid.uuid4())

    def plan(self, method: str, host: str, info: Callable[[], RequestInfo], headers: Any) -> Plan:
        """
        The operation, the policy (its budget and breaker keyed for this request) and replay
        safety; *info* builds the ``RequestInfo`` a key or route function is given (only then).
        """
        route = self.route(info()) if self.route is not None else None
        operation = f"{method} {host}{route}" if route else f"{method} {host}"
        policy = self.policy
        if self.budget is not None or self.breaker is not None:
            key = self.key(info()) if self.key is not None else host
            found = self._policies.get(key)
            if found is None:
                with self._lock:
                    found = self._policies.get(key)
                    if found is None:
                        found = policy.replace(
                            budget=_keyed(self.budget, key), breaker=_keyed(self.breaker, key)
                        )
                        self._policies[key] = found
            policy = found
        return Plan(operation, policy, self.resend_safe(method, headers))


def host_of(scheme: str, host: str, port: int | None) -> str:
    """``host``, or ``host:port`` when the port is not the scheme's default."""
    default = 443 if scheme in ("https", "wss") else 80
    return host if port is None or port == default else f"{host}:{port}"


_told: set[str] = set()


def sent_once(exc: BaseException | None, operation: str, body: str) -> None:
    """Say that a request whose body cannot be replayed was sent once (a note, a warning once)."""
    text = f"retrykit-http: the request body ({body}) cannot be replayed: {operation} was sent once"
    if exc is not None:
        exc.add_note(text)
    if operation not in _told:
        _told.add(operation)
        _log.warning("%s; pass the body as bytes to have it retried (said once per operation)", text)


def declare_inner(
    client: str,
    kind: type[BaseException],
    attempts: Callable[[BaseException], int | None],
    probe: Callable[[], BaseException],
) -> None:
    """
    Declare the client's status errors (``raise_for_status()``) as carrying the requests this
    adapter sent, so a retrykit layer around the call counts them (one layer), unless a
    *probe* error shows the declaration in effect: ``retrykit.testing.reset()`` forgets
    declarations, so each adapter checks when it is built.
    """
    if retrykit.classify(probe()).inner is None:
        retrykit.inner_retrier(
            client,
            switch_off="the plain client, or no retrykit layer around the call",
            types=(kind,),
            attempts=attempts,
        )


class Attempt(NamedTuple):
    """One request's per-client operations, for the drivers below."""

    send: Callable[[float | None], Any]
    """Run one attempt, bounded by the seconds given (None: no bound); returns the response."""
    close: Callable[[Any], Any]
    """Close a response that will not reach the caller."""
    sent_nothing: Callable[[BaseException], bool]
    """Whether a failure happened before anything of the request was sent (connect, TLS)."""
    mark: Callable[[Any, int], None]
    """Record the resend count on the response the caller gets."""


def _start(plan: Plan, replayable: str | None) -> Run:
    if replayable is None:
        return start(plan.policy, operation=plan.operation)
    return start(plan.policy, operation=plan.operation, max_attempts=1)


def _unsafe(plan: Plan, attempt: Attempt, exc: BaseException) -> bool:
    return not plan.resend_safe and not attempt.sent_nothing(exc)


def _said(run: Run, unreplayable: str | None, step_reason: StopReason | None, exc: Any) -> None:
    if unreplayable is not None and step_reason is StopReason.MAX_ATTEMPTS:
        sent_once(exc if isinstance(exc, BaseException) else None, run.operation, unreplayable)


def send_request(plan: Plan, attempt: Attempt, unreplayable: str | None = None) -> Any:
    """
    Send one request under *plan*: attempt, decide, close what failed, sleep, until it ends.
    *unreplayable*: what the body is when it cannot be sent twice (then it is sent once).
    """
    run = _start(plan, unreplayable)
    with run:
        while True:
            try:
                response = attempt.send(run.timeout())
            except Exception as exc:
                step = run.failed(exc, replay_unsafe=_unsafe(plan, attempt, exc))
                if step.action is not Action.RETRY:
                    _said(run, unreplayable, step.reason, exc)
                    raise
            else:
                step = run.returned(response)
                if step.action is not Action.RETRY:
                    _said(run, unreplayable, step.reason, None)
                    attempt.mark(response, run.attempt - 1)
                    return response
                attempt.close(response)
            run.close()
            run.sleep(step.delay)
            if not run.next():  # the deadline passed, or a breaker opened, while it waited
                last = run.last()
                attempt.mark(last, run.attempt - 1)
                return last


async def asend_request(plan: Plan, attempt: Attempt, unreplayable: str | None = None) -> Any:
    """``send_request`` for coroutines (asyncio and trio): *attempt*'s send and close return awaitables."""
    run = _start(plan, unreplayable)
    with run:
        while True:
            try:
                response = await attempt.send(run.timeout())
            except Exception as exc:
                step = run.failed(exc, replay_unsafe=_unsafe(plan, attempt, exc))
                if step.action is not Action.RETRY:
                    await run.aclose()
                    _said(run, unreplayable, step.reason, exc)
                    raise
            else:
                step = run.returned(response)
                if step.action is not Action.RETRY:
                    await run.aclose()
                    _said(run, unreplayable, step.reason, None)
                    attempt.mark(response, run.attempt - 1)
                    return response
                await attempt.close(response)
            await run.aclose()
            await run.asleep(step.delay)
            if not run.next():
                last = run.last()
                attempt.mark(last, run.attempt - 1)
                return last


async def bounded(limit: float | None, attempt: Callable[[], Awaitable[R]]) -> R:
    """Await ``attempt()``, cancelled with ``TimeoutError`` after *limit* seconds (None: no bound)."""
    if limit is None:
        return await attempt()
    with anyio.fail_after(limit):
        return await attempt()
