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
import difflib
import email.utils
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, NamedTuple, TypeAlias, TypedDict, TypeVar, cast

import anyio

import retrykit
from retrykit import Classification, ConfigError, ErrorCategory, Policy
from retrykit.driver import Action, Run, Step, start
from retrykit.events import StopReason, attributes

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


class Options(TypedDict, total=False):
    """The options every adapter takes (see ``RetryTransport``)."""

    statuses: Iterable[int] | None
    classify_response: ResponseRule | None
    key: KeyFunction | None
    route: RouteFunction | None
    budget: Any
    breaker: Any
    idempotency_keys: bool
    retry_non_idempotent: bool
    read_body: bool


def _base_policy(policy: Policy | str | None) -> Policy:
    given = cast(object, policy)  # checked at run time: callers are not all type-checked
    if given is None or isinstance(given, str):
        return retrykit.get_preset(given or "http")
    if isinstance(given, Policy):
        return given
    raise ConfigError("policy", policy, "must be a Policy, a preset name or None", "pass e.g. policy='http'")


def _check_flags(**flags: bool) -> None:
    for flag, value in flags.items():
        if not isinstance(cast(object, value), bool):
            raise ConfigError(flag, value, "must be True or False", f"pass {flag}=True")


def _check_unknown(unknown: dict[str, object]) -> None:
    """An option no adapter takes (a typo) is a ConfigError naming the options there are."""
    for name, value in unknown.items():
        known = sorted(Options.__optional_keys__)
        close = difflib.get_close_matches(name, known, n=1)
        fix = f"did you mean {close[0]}=?" if close else f"use one of {', '.join(known)}"
        raise ConfigError(name, value, "is not an option of the retrykit-http adapters", fix)


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
        "request_of",
        "retry_non_idempotent",
        "route",
        "statuses",
    )

    def __init__(
        self,
        policy: Policy | str | None,
        request_of: Callable[[Any], tuple[str, Any]],
        *,
        statuses: Iterable[int] | None = None,
        classify_response: ResponseRule | None = None,
        key: KeyFunction | None = None,
        route: RouteFunction | None = None,
        budget: Any = None,
        breaker: Any = None,
        idempotency_keys: bool = False,
        retry_non_idempotent: bool = False,
        read_body: bool = True,
        **unknown: object,
    ) -> None:
        _check_unknown(unknown)
        base = _base_policy(policy)
        self.statuses = _check_statuses(statuses)
        _check_callable("classify_response", classify_response, "lambda response: None")
        _check_callable("key", key, "lambda request: request.host")
        _check_callable("route", route, "lambda request: '/users/{id}'")
        _check_flags(
            idempotency_keys=idempotency_keys,
            retry_non_idempotent=retry_non_idempotent,
            read_body=read_body,
        )
        self.request_of = request_of
        self.retry_non_idempotent = retry_non_idempotent
        self.policy: Policy = base.replace(
            classify_result=self._judge(base, classify_response),
            idempotent=base.idempotent or retry_non_idempotent,
            budget=base.budget if budget is None else budget,
            breaker=base.breaker if breaker is None else breaker,
        )
        self.budget, self.breaker = self.policy.budget, self.policy.breaker
        self.key, self.route = key, route
        self.idempotency_keys, self.read_body = idempotency_keys, read_body
        self._policies: dict[str, Policy] = {}
        self._lock = threading.Lock()

    def _judge(self, base: Policy, user_rule: ResponseRule | None) -> ResponseRule:
        """The result rule: the statuses retried, then the user's rule, then the policy's own."""
        policy_rule = base.classify_result
        if policy_rule is retrykit.get_preset("http").classify_result:
            policy_rule = None  # the built-in status rule: the statuses replace it
        statuses = self.statuses

        def judge(response: Any) -> ErrorCategory | Classification | str | None:
            status = getattr(response, "status_code", None)
            if status is None:
                status = getattr(response, "status", None)
            if status in statuses:
                unsafe = status not in REFUSED_STATUSES and not self._safe_for(response)
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
                        return self._with_safety(found, rule, response)
            return None

        return judge

    def _safe_for(self, response: Any) -> bool:
        method, headers = self.request_of(response)
        return self.resend_safe(method, headers)

    def _with_safety(self, found: Any, rule: Any, response: Any) -> Classification:
        """A rule's verdict, named after the rule and not resent when the request is not safe to."""
        unsafe = not self._safe_for(response)
        if isinstance(found, Classification):
            return dataclasses.replace(found, replay_unsafe=found.replay_unsafe or unsafe)
        name = getattr(rule, "__name__", type(rule).__name__)
        category = found if isinstance(found, ErrorCategory) else ErrorCategory(found)
        return Classification(category, f"response matched {name}", None, name, unsafe)

    def resend_safe(self, method: str, headers: Any) -> bool:
        """Whether a request may be sent again after it may have reached the server."""
        if self.retry_non_idempotent or method.upper() in IDEMPOTENT_METHODS:
            return True
        getter = getattr(headers, "get", None)
        return getter is not None and bool(getter(IDEMPOTENCY_HEADER))

    def plan(
        self, method: str, host: str, info: Callable[[], RequestInfo], headers: MutableMapping[str, Any]
    ) -> Plan:
        """
        How one request is run: its ``Idempotency-Key`` added (``idempotency_keys=True``), its
        operation, its policy (budget and breaker keyed for it) and its replay safety; *info*
        builds the ``RequestInfo`` a key or route function is given (only then).
        """
        keyed = self.idempotency_keys and method.upper() not in IDEMPOTENT_METHODS
        if keyed and not headers.get(IDEMPOTENCY_HEADER):
            headers[IDEMPOTENCY_HEADER] = str(uuid.uuid4())  # one key, sent on every attempt
        route = self.route(info()) if self.route is not None else None
        operation = f"{method} {host}{route}" if route else f"{method} {host}"
        policy = self.policy
        if self.budget is not None or self.breaker is not None:
            policy = self._keyed_policy(self.key(info()) if self.key is not None else host)
        return Plan(operation, policy, self.resend_safe(method, headers))

    def _keyed_policy(self, key: str) -> Policy:
        """The policy with its budget and breaker kept under *key* (one per key, made once)."""
        found = self._policies.get(key)
        if found is None:
            with self._lock:
                found = self._policies.get(key)
                if found is None:
                    found = self.policy.replace(
                        budget=_keyed(self.budget, key), breaker=_keyed(self.breaker, key)
                    )
                    self._policies[key] = found
        return found


def _marked(response: Any) -> int | None:
    """The resend count an adapter recorded on *response*, None if it went through none."""
    extensions: object = getattr(response, "extensions", None)
    if isinstance(extensions, dict):
        found: object = cast("dict[str, object]", extensions).get(RESEND_COUNT)
        if isinstance(found, int):
            return found
    count: object = getattr(response, "resend_count", None)
    return count if isinstance(count, int) else None


def resend_count(response: Any) -> int:
    """How many times the request of *response* (httpx, requests or aiohttp) was resent; 0: once."""
    return _marked(response) or 0


def mark_extension(response: Any, count: int) -> None:
    """Record *count* as the response's ``http.request.resend_count`` extension (httpx)."""
    response.extensions = {**response.extensions, RESEND_COUNT: count}


def mark_attribute(response: Any, count: int) -> None:
    """Record *count* as ``response.resend_count`` (requests, aiohttp)."""
    response.resend_count = count


def _requests_sent(exc: BaseException) -> int | None:
    """The requests an adapter sent for the response a status error carries (None: not through one)."""
    count = _marked(getattr(exc, "response", None))
    return None if count is None else count + 1


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


def declare_inner(client: str, kind: type[BaseException], probe: Callable[[], BaseException]) -> None:
    """
    Declare the client's status errors (``raise_for_status()``) as carrying the requests this
    adapter sent, so a retrykit layer around the call counts them (one layer), unless a
    *probe* error (its response marked as resent once) shows the declaration in effect:
    ``retrykit.testing.reset()`` forgets declarations, so each adapter checks when it is built.
    """
    if retrykit.classify(probe()).inner is None:
        retrykit.inner_retrier(
            client,
            switch_off="the plain client, or no retrykit layer around the call",
            types=(kind,),
            attempts=_requests_sent,
        )


class Attempt(NamedTuple):
    """One request's per-client operations, for the drivers below (async ones return awaitables)."""

    send: Callable[[float | None], Any]
    """Send the request once, bounded by the seconds given (None: no bound); returns the response."""
    read: Callable[[Any], Any] | None
    """Read the response's body inside the attempt (a failure reading it is retried); None: unread."""
    close: Callable[[Any], Any]
    """Close a response that will not reach the caller."""
    sent_nothing: Callable[[BaseException], bool]
    """Whether a failure happened before anything of the request was sent (connect, TLS)."""
    mark: Callable[[Any, int], None]
    """Record the resend count on the response the caller gets."""


def _start(plan: Plan, unreplayable: str | None) -> Run:
    if unreplayable is None:
        return start(plan.policy, operation=plan.operation)
    return start(plan.policy, operation=plan.operation, max_attempts=1)


def _counted(run: Run, act: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """``act(...)`` with the resend count in the events it builds (from the second attempt on)."""
    resent = run.attempt - 1
    if not resent:
        return act(*args, **kwargs)  # a first attempt: nothing resent, nothing to build
    with attributes({RESEND_COUNT: resent}):
        return act(*args, **kwargs)


def _failed(run: Run, plan: Plan, attempt: Attempt, exc: BaseException) -> Step:
    unsafe = not plan.resend_safe and not attempt.sent_nothing(exc)
    return _counted(run, run.failed, exc, replay_unsafe=unsafe)


def _ended(run: Run, attempt: Attempt, unreplayable: str | None, step: Step, outcome: Any) -> None:
    """The call ends with *outcome* (a response or an exception): say a body was sent once, mark it."""
    if unreplayable is not None and step.reason is StopReason.MAX_ATTEMPTS:
        sent_once(outcome if isinstance(outcome, BaseException) else None, run.operation, unreplayable)
    if not isinstance(outcome, BaseException):
        attempt.mark(outcome, run.attempt - 1)


def _last(run: Run, attempt: Attempt) -> Any:
    """The call ended while it waited (a deadline, a breaker): its last outcome, marked."""
    last = run.last()
    attempt.mark(last, run.attempt - 1)
    return last


def _read(attempt: Attempt, response: Any) -> None:
    assert attempt.read is not None
    try:
        attempt.read(response)
    except BaseException:
        attempt.close(response)
        raise


async def _aread(attempt: Attempt, response: Any) -> None:
    assert attempt.read is not None
    try:
        await attempt.read(response)
    except BaseException:
        await attempt.close(response)
        raise


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
                if attempt.read is not None:
                    _read(attempt, response)
            except Exception as exc:
                step = _failed(run, plan, attempt, exc)
                if step.action is not Action.RETRY:
                    _ended(run, attempt, unreplayable, step, exc)
                    raise
            else:
                step = _counted(run, run.returned, response)
                if step.action is not Action.RETRY:
                    _ended(run, attempt, unreplayable, step, response)
                    return response
                attempt.close(response)
            run.close()
            run.sleep(step.delay)
            if not _counted(run, run.next):  # the deadline passed, or a breaker opened, meanwhile
                return _last(run, attempt)


async def asend_request(plan: Plan, attempt: Attempt, unreplayable: str | None = None) -> Any:
    """``send_request`` for coroutines (asyncio and trio), each attempt bounded by ``run.timeout()``."""
    run = _start(plan, unreplayable)
    with run:
        while True:
            try:
                response = await _within(run.timeout(), attempt)
            except Exception as exc:
                step = _failed(run, plan, attempt, exc)
                if step.action is not Action.RETRY:
                    await run.aclose()
                    _ended(run, attempt, unreplayable, step, exc)
                    raise
            else:
                step = _counted(run, run.returned, response)
                if step.action is not Action.RETRY:
                    await run.aclose()
                    _ended(run, attempt, unreplayable, step, response)
                    return response
                await attempt.close(response)
            await run.aclose()
            await run.asleep(step.delay)
            if not _counted(run, run.next):
                return _last(run, attempt)


async def _within(limit: float | None, attempt: Attempt) -> Any:
    """One attempt (sent, and read unless streamed), cancelled with ``TimeoutError`` after *limit* s."""
    if limit is None:
        response = await attempt.send(None)
        if attempt.read is not None:
            await _aread(attempt, response)
        return response
    with anyio.fail_after(limit):
        response = await attempt.send(limit)
        if attempt.read is not None:
            await _aread(attempt, response)
        return response
