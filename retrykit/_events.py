"""
The event stream: what retrykit did, as typed, frozen events, dispatched to sinks.

Events are built only when something failed (the success path of a first attempt emits nothing),
and a failing sink never breaks the retried call: its error is reported once through stdlib
logging and the call goes on.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias, cast

if TYPE_CHECKING:
    from ._classify import Classification, ErrorCategory
    from ._strategy import Decision

_log = logging.getLogger("retrykit")

_NO_ATTRIBUTES: Mapping[str, object] = MappingProxyType({})
# What the events built in this context carry in ``attributes`` (``attributes()`` sets it).
_attributes: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "retrykit_event_attributes", default=_NO_ATTRIBUTES
)


def current_attributes() -> Mapping[str, object]:
    """The attributes events built now carry (read-only; empty unless ``attributes()`` is active)."""
    return _attributes.get()


@contextlib.contextmanager
def attributes(values: Mapping[str, object]) -> Iterator[None]:
    """
    Events built inside this block carry *values* in their ``attributes`` (on top of those of an
    enclosing block): an adapter names what the core cannot know, e.g. how many times an HTTP
    request was resent (``{"http.request.resend_count": 2}``). Context-local, like a contextvar.

    Args:
        values: The attributes, by name (str keys); values as the sinks take them (numbers,
            strings, booleans).

    Raises:
        ConfigError: *values* is not a mapping with str keys.
    """
    given = cast(object, values)  # checked at run time: callers are not all type-checked
    if not isinstance(given, Mapping) or not all(
        isinstance(key, str) for key in cast("Mapping[object, object]", given)
    ):
        from ._errors import ConfigError

        raise ConfigError(
            "values",
            values,
            "must be a mapping with str keys",
            "pass e.g. attributes({'http.request.resend_count': 1})",
        )
    outer = _attributes.get()
    token = _attributes.set(
        MappingProxyType({**outer, **values}) if outer else MappingProxyType(dict(values))
    )
    try:
        yield
    finally:
        _attributes.reset(token)


class StopReason(str, Enum):
    """Why a retrying layer gave up on a failure."""

    NON_RETRYABLE = "non_retryable"
    """The failure's category maps to ``Decision.NO_RETRY``."""
    CATEGORY_EXHAUSTED = "category_retries_exhausted"
    """The category's strategy allows no more retries (``max_retries``)."""
    MAX_ATTEMPTS = "max_attempts"
    """The policy's whole-call ``max_attempts`` was reached."""
    DEADLINE = "deadline"
    """The next sleep would end past the deadline (this layer's or an enclosing one's)."""
    RETRY_AFTER_EXCEEDS_DEADLINE = "retry_after_exceeds_deadline"
    """The server asked to wait longer (Retry-After) than the time left before the deadline."""
    STRATEGY_STOP = "strategy_stop"
    """A tenacity ``stop`` object given to the strategy said stop."""
    TESTING_NO_RETRY = "testing_no_retry"
    """``retrykit.testing.no_retry()`` is active."""
    RETRY_AFTER_TOO_LONG = "retry_after_too_long"
    """The server asked to wait (Retry-After) longer than the category's ``max_delay``."""
    NOT_IDEMPOTENT = "not_idempotent"
    """The request may have been applied and is not idempotent (declare ``idempotent=True``)."""
    STOP_CONDITION = "stop_condition"
    """A tenacity ``stop`` given to the decorator, or composed into tenacity's loop, said stop."""
    RETRY_CONDITION = "retry_condition"
    """A tenacity ``retry`` given to the decorator, or composed into tenacity's loop, said no."""
    BUDGET_EXHAUSTED = "budget_exhausted"
    """The policy's retry budget refused the retry (overload protection)."""
    CIRCUIT_OPEN = "circuit_open"
    """The policy's circuit breaker is open: the call fails fast (``retrykit.CircuitOpen``)."""
    PUSHBACK = "pushback"
    """The server said do not retry (a negative ``grpc-retry-pushback-ms``)."""
    INNER_RETRIES = "inner_retries"
    """The client inside the call already retried: another round would exceed one layer's requests."""
    UNRECOGNISED = "unrecognised"
    """No rule or signal recognised the failure, and it was already retried once (add a rule)."""


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """
    An attempt failed: it raised, or returned a result the policy retries.

    Attributes:
        operation: The call's name (the function's qualified name, the task's name, or the
            ``operation=`` given).
        attempt: The attempt's number in the call, from 1.
        error_type: The exception's class name (the result's type for a retried result).
        classification: What kind of failure it was, and why.
        elapsed: Seconds since the call started.
        after: The category of the failure that led to this attempt (``None`` on attempt 1).
        error: The exception the attempt raised (``None`` for a retried result).
        attributes: What the adapter or the caller attached (``retrykit.events.attributes``).
    """

    operation: str
    attempt: int
    error_type: str
    classification: Classification
    elapsed: float
    after: ErrorCategory | None = None
    """The category of the failure that led to this attempt (``None`` on attempt 1)."""
    error: BaseException | None = field(default=None, repr=False, compare=False)
    """The exception the attempt raised (``None`` for a retried result)."""
    attributes: Mapping[str, object] = field(default_factory=current_attributes, hash=False)
    """What the adapter or the caller attached (``retrykit.events.attributes``); empty by default."""


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """
    Attempt *attempt* failed and attempt ``attempt + 1`` starts after *delay* seconds.

    Attributes:
        operation: The call's name.
        attempt: The number of the attempt that failed, from 1.
        error_type: The exception's class name (the result's type for a retried result).
        classification: What kind of failure it was, and why.
        decision: The strategy's decision for the category.
        delay: Seconds until the next attempt (for Celery, the countdown).
        elapsed: Seconds since the call started.
        after: The category of the failure that led to the failed attempt (``None`` on attempt 1).
        error: The exception the attempt raised (``None`` for a retried result).
        attributes: What the adapter or the caller attached (``retrykit.events.attributes``).
    """

    operation: str
    attempt: int
    error_type: str
    classification: Classification
    decision: Decision
    delay: float
    elapsed: float
    after: ErrorCategory | None = None
    """The category of the failure that led to this attempt (``None`` on attempt 1)."""
    error: BaseException | None = field(default=None, repr=False, compare=False)
    """The exception the attempt raised (``None`` for a retried result)."""
    attributes: Mapping[str, object] = field(default_factory=current_attributes, hash=False)
    """What the adapter or the caller attached (``retrykit.events.attributes``); empty by default."""


@dataclass(frozen=True, slots=True)
class Succeeded:
    """
    The call succeeded on attempt *attempts*, after at least one failure.

    A call that succeeds on its first attempt emits nothing.

    Attributes:
        operation: The call's name.
        attempts: The attempts the call made, the successful one included.
        elapsed: Seconds since the call started.
        after: The category of the last failure before the success.
        attributes: What the adapter or the caller attached (``retrykit.events.attributes``).
    """

    operation: str
    attempts: int
    elapsed: float
    after: ErrorCategory | None = None
    """The category of the last failure before the success (``None`` for a first-try success)."""
    attributes: Mapping[str, object] = field(default_factory=current_attributes, hash=False)
    """What the adapter or the caller attached (``retrykit.events.attributes``); empty by default."""


@dataclass(frozen=True, slots=True)
class GaveUp:
    """
    The layer stopped retrying and let the original exception through.

    Attributes:
        operation: The call's name.
        attempts: The attempts the call made.
        error_type: The last failure's class name (the result's type for a retried result).
        classification: What kind of failure the last one was, and why.
        reason: Why the layer stopped (also in the exception's note and the log line).
        elapsed: Seconds since the call started.
        after: The category of the failure that led to the last attempt (``None`` on attempt 1).
        error: The exception the caller gets (``None`` when the caller gets the last result).
        returned: Whether the caller gets the last attempt's returned value (a retried result).
        rescheduled: The retry of this attempt had been scheduled (``RetryScheduled``) when the
            deadline ended it.
        attributes: What the adapter or the caller attached (``retrykit.events.attributes``).
    """

    operation: str
    attempts: int
    error_type: str
    classification: Classification
    reason: StopReason
    elapsed: float
    after: ErrorCategory | None = None
    """The category of the failure that led to this attempt (``None`` on attempt 1)."""
    error: BaseException | None = field(default=None, repr=False, compare=False)
    """The exception the caller gets (``None`` when the caller gets the last result)."""
    returned: bool = False
    """Whether the caller gets the last attempt's returned value (a retried result) instead."""
    rescheduled: bool = False
    """The retry of this attempt had been scheduled (``RetryScheduled``) when the deadline ended it."""
    attributes: Mapping[str, object] = field(default_factory=current_attributes, hash=False)
    """What the adapter or the caller attached (``retrykit.events.attributes``); empty by default."""


@dataclass(frozen=True, slots=True)
class RuleFailed:
    """
    A classifier rule raised while classifying; the rule was skipped.

    Attributes:
        rule: The rule's name.
        error_type: The class name of the exception being classified.
        rule_error: The class name of what the rule raised (never its message, which may hold
            data).
    """

    rule: str
    error_type: str
    rule_error: str


Event: TypeAlias = AttemptFailed | RetryScheduled | Succeeded | GaveUp | RuleFailed
"""Any of the events: what a sink given to ``subscribe()`` receives."""
Sink: TypeAlias = Callable[[Event], Any]

EVENT_TYPES: tuple[type, ...] = (AttemptFailed, RetryScheduled, Succeeded, GaveUp, RuleFailed)

DirectEntry: TypeAlias = Callable[..., None]
"""A sink's direct entry for one kind of event: the event's fields, positionally, no event built."""

DIRECT_KINDS: tuple[type, ...] = (RetryScheduled, Succeeded)
"""The events a sink may take directly: the ones every retried call emits."""

_sinks: tuple[Sink, ...] = ()
# The global sinks by the event type they take: emit() and listening() read one tuple.
_by_type: dict[type, tuple[Sink, ...]] = dict.fromkeys(EVENT_TYPES, ())
_sinks_lock = threading.Lock()
# Sinks that take some events' fields directly (the built-in log and statistics sinks), by
# identity (a sink need not be hashable): (sink, kind, entry).
_entries: tuple[tuple[Sink, type, DirectEntry], ...] = ()
# By kind, the direct entries of the sinks subscribed to it, when every one of them has one (then
# no event of that kind is built unless a context-local sink or a callback takes it); else None.
_direct: dict[type, tuple[DirectEntry, ...] | None] = dict.fromkeys(DIRECT_KINDS, ())


def _update_direct() -> None:
    for kind in DIRECT_KINDS:
        sinks = _by_type[kind]
        found = tuple(
            entry for sink in sinks for known, of, entry in _entries if known is sink and of is kind
        )
        _direct[kind] = found if len(found) == len(sinks) else None


def take_directly(sink: Sink, kind: type, entry: DirectEntry) -> None:
    """
    Let *sink* take events of *kind* (one of ``DIRECT_KINDS``) through *entry*, with the event's
    fields as arguments, so that no event is built for it (the built-in sinks; *sink* still takes
    the events that are built).
    """
    global _entries
    with _sinks_lock:
        _entries = (*_entries, (sink, kind, entry))
        _update_direct()


# Context-local sinks (the testing recorder): only events emitted in this context reach them.
_local_sinks: contextvars.ContextVar[tuple[Sink, ...]] = contextvars.ContextVar(
    "retrykit_local_sinks", default=()
)


def subscribe(sink: Sink, *, kinds: tuple[type, ...] = EVENT_TYPES) -> Callable[[], None]:
    """
    Send events to *sink* until the returned function is called.

    A sink that raises is reported through the ``retrykit`` logger (once a minute per sink and
    error type) and skipped; the retried call is never affected.

    Args:
        sink: A callable taking one event.
        kinds: Only events of these types (events nobody takes are not even built).

    Returns:
        A function that unsubscribes the sink.

    Raises:
        ConfigError: *sink* is not callable, or *kinds* names something that is not an event type.
    """
    if not callable(cast(object, sink)):
        from ._errors import ConfigError

        raise ConfigError("sink", sink, "must be callable", "pass a function taking one event")
    unknown = [k for k in kinds if k not in EVENT_TYPES]
    if unknown or not kinds:
        from ._errors import ConfigError

        raise ConfigError(
            "kinds", kinds, "must be retrykit event types", "pass e.g. kinds=(retrykit.GaveUp,)"
        )
    global _sinks
    with _sinks_lock:
        _sinks = (*_sinks, sink)
        for kind in kinds:
            _by_type[kind] = (*_by_type[kind], sink)
        _update_direct()

    def unsubscribe() -> None:
        global _sinks
        with _sinks_lock:
            _sinks = tuple(s for s in _sinks if s is not sink)
            for kind in EVENT_TYPES:
                _by_type[kind] = tuple(s for s in _by_type[kind] if s is not sink)
            _update_direct()

    return unsubscribe


def sink_name(sink: Any) -> str:
    """A sink's dotted name (module and qualified name), never its repr (which may show state)."""
    target = getattr(sink, "__func__", sink)
    qualname = getattr(target, "__qualname__", None)
    if not isinstance(qualname, str):
        qualname = type(sink).__qualname__
    module = getattr(target, "__module__", None)
    if not isinstance(module, str):
        module = type(sink).__module__
    return f"{module}.{qualname}"


_failure_hooks: tuple[Callable[[Sink, BaseException, Event], None], ...] = ()


def on_sink_failure(hook: Callable[[Sink, BaseException, Event], None]) -> None:
    """Call *hook* when a sink raises (the log and the statistics layers count and report it)."""
    global _failure_hooks
    if hook not in _failure_hooks:
        _failure_hooks = (*_failure_hooks, hook)


def listening(kind: type | None = None) -> bool:
    """Whether any sink would receive an event (of type *kind*), so callers can skip building one."""
    if kind is None:
        return bool(_sinks) or bool(_local_sinks.get())
    return bool(_by_type[kind]) or bool(_local_sinks.get())


def direct_entries(kind: type) -> tuple[DirectEntry, ...] | None:
    """
    The direct entries that take an event of *kind* in its place, when they are all that would
    receive one (no context-local sink); None: build the event and ``emit`` it.
    """
    entries = _direct[kind]
    if entries is None or _local_sinks.get():
        return None
    return entries


def _unknown_sink(event: Event) -> None:  # pragma: no cover - every entry has its sink
    """(An entry whose sink was unsubscribed meanwhile.)"""


def entry_failed(kind: type, entry: DirectEntry, err: Exception, fields: tuple[Any, ...]) -> None:
    """A direct entry raised on an event's *fields*: reported as ``emit`` reports a failing sink."""
    event = kind(*fields)
    sink: Sink = next((s for s, _, e in _entries if e is entry), _unknown_sink)
    for hook in _failure_hooks:
        with contextlib.suppress(Exception):  # the hooks are retrykit's and total
            hook(sink, err, event)


def send_direct(kind: type, entries: tuple[DirectEntry, ...], fields: tuple[Any, ...]) -> None:
    """
    Give an event's *fields* to each of *entries* (``direct_entries(kind)``) in place of the event;
    never raises: an entry that raises is reported through ``entry_failed``.
    """
    for entry in entries:
        try:
            entry(*fields)
        except Exception as err:
            entry_failed(kind, entry, err, fields)


def emit(event: Event) -> None:
    """
    Dispatch *event* to the global and context-local sinks; never raises.

    A sink that raises is skipped and counted; it is logged once a minute per sink and error type
    (``retrykit.stats.sink_failures()`` has the counts).
    """
    local = _local_sinks.get()
    for sink in (*_by_type[type(event)], *local) if local else _by_type[type(event)]:
        try:
            sink(event)
        except Exception as err:
            for hook in _failure_hooks:
                with contextlib.suppress(Exception):  # the hooks are retrykit's and total
                    hook(sink, err, event)
