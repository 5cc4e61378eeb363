"""
Classification: what kind of failure is this?

A ``Classifier`` holds ordered rules. It walks the exception, its ``__cause__``/``__context__``
chain (and ``.reason`` of urllib-style wrappers) and the members of exception groups, and returns
the first rule's verdict as a ``Classification``. It never raises: a rule that raises is skipped and
reported as a ``RuleFailed`` event. Third-party exception types (httpx, requests, urllib3, aiohttp,
database drivers) are recognised without importing those libraries.
"""

from __future__ import annotations

import builtins
import email.utils
import errno
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

from . import _events
from ._errors import ConfigError, parse_enum


class ErrorCategory(str, Enum):
    """The kinds of failure retrykit tells apart; each maps to a strategy in a policy."""

    NETWORK_ERROR = "network_error"
    """Connections refused, reset or timed out: the request may not have been served."""
    API_RATE_LIMIT = "api_rate_limit"
    """The server said slow down (HTTP 429, throttling)."""
    DATA_ERROR = "data_error"
    """The input is wrong (validation, decoding, HTTP 400/422): retrying repeats the failure."""
    SYSTEM_ERROR = "system_error"
    """This machine is short of a resource (memory, disk, file descriptors)."""
    TEMPORARY_ERROR = "temporary_error"
    """A transient server-side condition (HTTP 5xx, deadlock, lost database connection)."""
    PERMANENT_ERROR = "permanent_error"
    """A bug or a refusal that retrying cannot fix (TypeError, HTTP 401/403/404)."""

    @classmethod
    def parse(cls, value: Any, argument: str = "category") -> ErrorCategory:
        """Accept a member, its value (``"network_error"``) or its name (``"NETWORK_ERROR"``)."""
        return parse_enum(cls, value, argument, "an error category")


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one failure: its *category*, why, and how long the server asked to wait."""

    category: ErrorCategory
    reason: str
    retry_after: float | None = None
    """Seconds the server asked to wait (``Retry-After``), if it said so."""
    rule: str = "default"
    """The name of the rule that matched, or ``"default"`` when none did."""


@runtime_checkable
class ClassifierRule(Protocol):
    """Anything with a name and a ``match(exc)`` returning a ``Classification`` or ``None``."""

    @property
    def name(self) -> str: ...

    def match(self, exc: BaseException) -> Classification | None: ...


RuleLike: TypeAlias = (
    "ClassifierRule | Callable[[BaseException], ErrorCategory | Classification | str | None]"
)


@dataclass(frozen=True, slots=True)
class Rule:
    """
    A declarative rule: every criterion given must hold for the rule to match.

    ``Rule(ErrorCategory.DATA_ERROR, types=MyValidationError)``,
    ``Rule("api_rate_limit", status=429)``,
    ``Rule("temporary_error", message=r"try again later")``,
    ``Rule("permanent_error", when=lambda e: e.code == "ACCOUNT_CLOSED")``.
    """

    category: ErrorCategory
    types: tuple[type[BaseException], ...] = ()
    status: frozenset[int] = frozenset()
    message: re.Pattern[str] | None = None
    when: Callable[[BaseException], bool] | None = None
    reason: str | None = None
    name: str = ""

    def __init__(
        self,
        category: ErrorCategory | str,
        *,
        types: type[BaseException] | Iterable[type[BaseException]] = (),
        status: int | Iterable[int] = (),
        message: str | re.Pattern[str] | None = None,
        when: Callable[[BaseException], bool] | None = None,
        reason: str | None = None,
        name: str | None = None,
    ) -> None:
        cat = ErrorCategory.parse(category)
        type_tuple = (types,) if isinstance(types, type) else tuple(types)
        for t in type_tuple:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise ConfigError("types", t, "must be exception classes", "pass e.g. types=(MyError,)")
        codes = frozenset((status,) if isinstance(status, int) else status)
        for code in codes:
            if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                raise ConfigError(
                    "status", code, "must be HTTP status codes (100-599)", "pass e.g. status=429"
                )
        pattern: re.Pattern[str] | None
        try:
            pattern = re.compile(message, re.IGNORECASE) if isinstance(message, str) else message
        except re.error as err:
            raise ConfigError(
                "message",
                message,
                f"is not a valid regular expression ({err})",
                "escape special characters with re.escape()",
            ) from None
        if when is not None and not callable(when):
            raise ConfigError("when", when, "must be callable", "pass a function exc -> bool")
        if not (type_tuple or codes or pattern or when):
            raise ConfigError(
                "Rule",
                "no criteria",
                "a rule needs at least one criterion",
                "pass types=, status=, message= or when=",
            )
        object.__setattr__(self, "category", cat)
        object.__setattr__(self, "types", type_tuple)
        object.__setattr__(self, "status", codes)
        object.__setattr__(self, "message", pattern)
        object.__setattr__(self, "when", when)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "name", name or _describe(type_tuple, codes, pattern, when))

    def match(self, exc: BaseException) -> Classification | None:
        """Return a classification if every criterion holds for *exc*."""
        if self.types and not isinstance(exc, self.types):
            return None
        code = http_status(exc) if self.status else None
        if self.status and code not in self.status:
            return None
        if self.message is not None and not self.message.search(str(exc)):
            return None
        if self.when is not None and not self.when(exc):
            return None
        return Classification(
            self.category,
            self.reason or f"{type(exc).__name__} matched rule {self.name}",
            retry_after_of(exc),
            self.name,
        )


def _describe(types: tuple[type, ...], codes: frozenset[int], pattern: Any, when: Any) -> str:
    parts = []
    if types:
        parts.append("types=" + "|".join(t.__name__ for t in types))
    if codes:
        parts.append("status=" + "|".join(str(c) for c in sorted(codes)))
    if pattern is not None:
        parts.append(f"message={pattern.pattern!r}")
    if when is not None:
        parts.append(f"when={getattr(when, '__qualname__', repr(when))}")
    return "Rule(" + ", ".join(parts) + ")"


@dataclass(frozen=True, slots=True)
class _CallableRule:
    """Adapts a plain function ``exc -> category | Classification | None`` to a rule."""

    fn: Callable[[BaseException], Any]
    name: str

    def match(self, exc: BaseException) -> Classification | None:
        verdict = self.fn(exc)
        if verdict is None or isinstance(verdict, Classification):
            return verdict
        category = ErrorCategory.parse(verdict, argument=f"return value of rule {self.name}")
        return Classification(
            category,
            f"{type(exc).__name__} matched rule {self.name}",
            retry_after_of(exc),
            self.name,
        )


# --------------------------------------------------------------------------- HTTP helpers

_STATUS_CATEGORY: dict[int, ErrorCategory] = {
    429: ErrorCategory.API_RATE_LIMIT,
    408: ErrorCategory.TEMPORARY_ERROR,
    425: ErrorCategory.TEMPORARY_ERROR,
    500: ErrorCategory.TEMPORARY_ERROR,
    502: ErrorCategory.TEMPORARY_ERROR,
    503: ErrorCategory.TEMPORARY_ERROR,
    504: ErrorCategory.TEMPORARY_ERROR,
    400: ErrorCategory.DATA_ERROR,
    422: ErrorCategory.DATA_ERROR,
    401: ErrorCategory.PERMANENT_ERROR,
    403: ErrorCategory.PERMANENT_ERROR,
    404: ErrorCategory.PERMANENT_ERROR,
    405: ErrorCategory.PERMANENT_ERROR,
    410: ErrorCategory.PERMANENT_ERROR,
}


def _as_status(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def http_status(exc: BaseException) -> int | None:
    """
    The HTTP status an exception carries, found by duck typing.

    ``exc.response.status_code`` (httpx, requests), ``exc.response.status``, ``exc.status``
    (aiohttp), ``exc.status_code``, and ``exc.code`` on urllib's ``HTTPError``.
    """
    response = getattr(exc, "response", None)
    if response is not None:
        for attr in ("status_code", "status"):
            code = _as_status(getattr(response, attr, None))
            if code is not None:
                return code
    for attr in ("status", "status_code"):
        code = _as_status(getattr(exc, attr, None))
        if code is not None:
            return code
    if "urllib.error" in sys.modules and isinstance(exc, sys.modules["urllib.error"].HTTPError):
        return _as_status(exc.code)
    return None


def _header(headers: Any, name: str) -> Any:
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is None:
        value = getter(name.lower())
    return value


def parse_retry_after(value: Any, *, now: float | None = None) -> float | None:
    """
    Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    A date in the past, a negative number or garbage gives ``None`` (use the strategy's own delay).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)):
        seconds = float(value)
        return seconds if 0 <= seconds < float("inf") else None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when: datetime = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT; a zone-less parse means "-0000"
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return delta if delta > 0 else None


def retry_after_of(exc: BaseException) -> float | None:
    """The Retry-After an exception carries: a ``retry_after`` attribute or a response header."""
    own = getattr(exc, "retry_after", None)
    if own is not None:
        return parse_retry_after(own)
    response = getattr(exc, "response", None)
    raw = _header(getattr(response, "headers", None), "Retry-After")
    if raw is None:
        raw = _header(getattr(exc, "headers", None), "Retry-After")
    return parse_retry_after(raw)


# --------------------------------------------------------------------------- built-in rules

# Third-party types by import path, looked up in sys.modules only: if the library is not
# imported, none of its exceptions can exist, and importing it here would cost every user.
_LAZY_NETWORK_TYPES: tuple[tuple[str, str], ...] = (
    ("httpx", "TimeoutException"),
    ("httpx", "NetworkError"),
    ("httpx", "RemoteProtocolError"),
    ("httpx", "ProxyError"),
    ("requests.exceptions", "ConnectionError"),
    ("requests.exceptions", "Timeout"),
    ("requests.exceptions", "ChunkedEncodingError"),
    ("urllib3.exceptions", "TimeoutError"),
    ("urllib3.exceptions", "ProtocolError"),
    ("urllib3.exceptions", "NewConnectionError"),
    ("aiohttp", "ClientConnectionError"),
    ("aiohttp", "ClientPayloadError"),
    ("asyncio", "TimeoutError"),
    ("concurrent.futures", "TimeoutError"),
    ("http.client", "IncompleteRead"),
    ("http.client", "RemoteDisconnected"),
)
_SYSTEM_ERRNOS = {errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM}
_DATA_TYPES: tuple[type[BaseException], ...] = (ValueError, KeyError)
_PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    TypeError,
    AttributeError,
    NameError,
    NotImplementedError,
    AssertionError,
    ImportError,
    SyntaxError,
)
_NETWORK_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    ssl.SSLError,
    EOFError,
)
# SQLSTATE classes and codes (PostgreSQL, SQL standard), and MySQL error numbers.
_SQLSTATE_TEMPORARY_PREFIXES = ("08", "40", "57P")
_SQLSTATE_TEMPORARY_CODES = {"55P03", "57014", "53300"}
_SQLSTATE_SYSTEM_PREFIX = "53"
_SQLSTATE_DATA_PREFIXES = ("22", "23")
_SQLSTATE_PERMANENT_PREFIXES = ("42", "28")
_MYSQL_TEMPORARY = {1205, 1213, 2002, 2003, 2006, 2013, 2055}
_DB_TEMPORARY_NAMES = frozenset(
    {
        "OperationalError",
        "InterfaceError",
        "DeadlockDetected",
        "SerializationFailure",
        "TransactionRollbackError",
        "DisconnectionError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "InternalClientError",
    }
)
_DB_DATA_NAMES = frozenset({"IntegrityError", "DataError"})
_DB_PERMANENT_NAMES = frozenset({"ProgrammingError", "NotSupportedError"})
_RATE_LIMIT_MESSAGE = re.compile(r"rate[ _-]?limit|too many requests|throttl", re.IGNORECASE)


_lazy_found: tuple[type[BaseException], ...] = ()
_lazy_pending: tuple[tuple[str, str], ...] = _LAZY_NETWORK_TYPES
_lazy_seen = -1  # len(sys.modules) at the last look: no new module, nothing new to resolve


def _lazy_types() -> tuple[type[BaseException], ...]:
    """The third-party network error types whose modules are imported (resolved once each)."""
    global _lazy_found, _lazy_pending, _lazy_seen
    modules = sys.modules
    if len(modules) == _lazy_seen or not _lazy_pending:
        return _lazy_found
    _lazy_seen = len(modules)
    found, pending = list(_lazy_found), []
    for module_name, attr in _lazy_pending:
        module = modules.get(module_name)
        if module is None:
            pending.append((module_name, attr))
            continue
        cls = getattr(module, attr, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    _lazy_found, _lazy_pending = tuple(found), tuple(pending)
    return _lazy_found


@dataclass(frozen=True, slots=True)
class _Builtin:
    name: str
    fn: Callable[[BaseException], Classification | None]

    def match(self, exc: BaseException) -> Classification | None:
        return self.fn(exc)


def _rule_http_status(exc: BaseException) -> Classification | None:
    code = http_status(exc)
    if code is None:
        return None
    category = _STATUS_CATEGORY.get(code)
    if category is None:
        return None
    return Classification(category, f"HTTP {code}", retry_after_of(exc), "http_status")


def _sqlstate(exc: BaseException) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        code = getattr(exc, attr, None)
        if isinstance(code, str) and len(code) == 5:
            return code.upper()
    return None


_MRO_NAMES: dict[type, frozenset[str]] = {}


def _mro_names(cls: type) -> frozenset[str]:
    names = _MRO_NAMES.get(cls)
    if names is None:
        names = frozenset(c.__name__ for c in cls.__mro__)
        if len(_MRO_NAMES) < 4096:  # bounded: exception classes are few, but be safe
            _MRO_NAMES[cls] = names
    return names


def _rule_database(exc: BaseException) -> Classification | None:
    code = _sqlstate(exc)
    if code is not None:
        if code in _SQLSTATE_TEMPORARY_CODES or code.startswith(_SQLSTATE_TEMPORARY_PREFIXES):
            return Classification(ErrorCategory.TEMPORARY_ERROR, f"SQLSTATE {code}", None, "database")
        if code.startswith(_SQLSTATE_SYSTEM_PREFIX):
            return Classification(ErrorCategory.SYSTEM_ERROR, f"SQLSTATE {code}", None, "database")
        if code.startswith(_SQLSTATE_DATA_PREFIXES):
            return Classification(ErrorCategory.DATA_ERROR, f"SQLSTATE {code}", None, "database")
        if code.startswith(_SQLSTATE_PERMANENT_PREFIXES):
            return Classification(ErrorCategory.PERMANENT_ERROR, f"SQLSTATE {code}", None, "database")
    names = _mro_names(type(exc))
    if "OperationalError" in names or "InternalError" in names:
        number = exc.args[0] if exc.args else None
        if isinstance(number, int) and number in _MYSQL_TEMPORARY:
            return Classification(ErrorCategory.TEMPORARY_ERROR, f"MySQL error {number}", None, "database")
    if getattr(exc, "connection_invalidated", False) is True:
        return Classification(
            ErrorCategory.TEMPORARY_ERROR, "database connection invalidated", None, "database"
        )
    for group, category in (
        (_DB_TEMPORARY_NAMES, ErrorCategory.TEMPORARY_ERROR),
        (_DB_DATA_NAMES, ErrorCategory.DATA_ERROR),
        (_DB_PERMANENT_NAMES, ErrorCategory.PERMANENT_ERROR),
    ):
        hit = names & group
        if hit:
            return Classification(category, f"database {min(hit)}", None, "database")
    return None


def _rule_network(exc: BaseException) -> Classification | None:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Classification(
            ErrorCategory.PERMANENT_ERROR, "TLS certificate verification failed", None, "network"
        )
    if isinstance(exc, (*_NETWORK_TYPES, *_lazy_types())):
        return Classification(
            ErrorCategory.NETWORK_ERROR, f"{type(exc).__name__}: network failure", None, "network"
        )
    if isinstance(exc, (socket.gaierror, socket.herror)):
        return Classification(ErrorCategory.NETWORK_ERROR, "DNS lookup failed", None, "network")
    return None


def _rule_system(exc: BaseException) -> Classification | None:
    if isinstance(exc, MemoryError):
        return Classification(ErrorCategory.SYSTEM_ERROR, "out of memory", None, "system")
    if isinstance(exc, OSError) and exc.errno in _SYSTEM_ERRNOS:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return Classification(ErrorCategory.SYSTEM_ERROR, f"OSError {name}", None, "system")
    return None


def _rule_rate_limit_message(exc: BaseException) -> Classification | None:
    if _RATE_LIMIT_MESSAGE.search(str(exc)):
        return Classification(
            ErrorCategory.API_RATE_LIMIT,
            "message mentions a rate limit",
            retry_after_of(exc),
            "rate_limit_message",
        )
    return None


def _rule_types(exc: BaseException) -> Classification | None:
    if isinstance(exc, _DATA_TYPES):
        return Classification(ErrorCategory.DATA_ERROR, f"{type(exc).__name__}: bad data", None, "types")
    if isinstance(exc, _PERMANENT_TYPES):
        return Classification(
            ErrorCategory.PERMANENT_ERROR,
            f"{type(exc).__name__}: programming error",
            None,
            "types",
        )
    return None


BUILTIN_RULES: tuple[ClassifierRule, ...] = (
    _Builtin("http_status", _rule_http_status),
    _Builtin("database", _rule_database),
    _Builtin("network", _rule_network),
    _Builtin("system", _rule_system),
    _Builtin("rate_limit_message", _rule_rate_limit_message),
    _Builtin("types", _rule_types),
)

# Most severe first: an exception group is classified by its most severe member.
_SEVERITY = (
    ErrorCategory.PERMANENT_ERROR,
    ErrorCategory.DATA_ERROR,
    ErrorCategory.SYSTEM_ERROR,
    ErrorCategory.API_RATE_LIMIT,
    ErrorCategory.NETWORK_ERROR,
    ErrorCategory.TEMPORARY_ERROR,
)
_MAX_CHAIN = 32


def _as_rule(rule: Any) -> ClassifierRule:
    if isinstance(rule, (Rule, _Builtin, _CallableRule)):
        return rule
    if hasattr(rule, "match") and hasattr(rule, "name"):
        return rule  # type: ignore[no-any-return]
    if callable(rule):
        return _CallableRule(rule, getattr(rule, "__qualname__", repr(rule)))
    raise ConfigError(
        "rules",
        rule,
        "each rule must be a Rule, an object with name and match(), or a function",
        "wrap it as Rule(category, types=..., status=..., message=..., when=...)",
    )


@dataclass(frozen=True, slots=True)
class Classifier:
    """
    Ordered rules mapping exceptions to a ``Classification``.

    User *rules* run before the built-in ones (unless ``builtin=False``); the first match wins, and
    an exception no rule matches gets the *default* category.
    """

    rules: tuple[ClassifierRule, ...] = ()
    default: ErrorCategory = ErrorCategory.TEMPORARY_ERROR
    builtin: bool = True
    _all: tuple[ClassifierRule, ...] = field(default=(), init=False, repr=False, compare=False)

    def __init__(
        self,
        rules: Iterable[RuleLike] = (),
        *,
        default: ErrorCategory | str = ErrorCategory.TEMPORARY_ERROR,
        builtin: bool = True,
    ) -> None:
        given = cast(object, rules)
        if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
            raise ConfigError("rules", rules, "must be an iterable of rules", "pass rules=[Rule(...)]")
        own = tuple(_as_rule(r) for r in rules)
        object.__setattr__(self, "rules", own)
        object.__setattr__(self, "default", ErrorCategory.parse(default, "default"))
        object.__setattr__(self, "builtin", bool(builtin))
        object.__setattr__(self, "_all", own + (BUILTIN_RULES if builtin else ()))

    def with_rules(self, *rules: RuleLike) -> Classifier:
        """A copy with *rules* placed before this classifier's own rules."""
        return Classifier((*rules, *self.rules), default=self.default, builtin=self.builtin)

    def classify(self, exc: BaseException) -> Classification:
        """Classify *exc*; never raises."""
        try:
            found = self._classify(exc, set())
        except Exception as err:  # pragma: no cover - defensive: _classify guards every rule
            found = None
            _events.emit(_events.RuleFailed("<classifier>", type(exc).__name__, repr(err)))
        if found is not None:
            return found
        return Classification(self.default, f"{type(exc).__name__} matched no rule; default category", None)

    def _classify(self, exc: BaseException, seen: set[int]) -> Classification | None:
        for link in _chain(exc, seen):
            for rule in self._all:
                try:
                    verdict = rule.match(link)
                except Exception as err:
                    _events.emit(_events.RuleFailed(rule.name, type(link).__name__, repr(err)))
                    continue
                if verdict is not None:
                    return verdict
            if _is_group(link):
                members = [self._classify(e, seen) for e in link.exceptions]  # type: ignore[attr-defined]
                hits = [m for m in members if m is not None]
                if hits:
                    return min(hits, key=lambda c: _SEVERITY.index(c.category))
        return None


_GROUP_TYPE: Any = getattr(builtins, "BaseExceptionGroup", None)


def _is_group(exc: BaseException) -> bool:
    """Exception groups: the built-in one (3.11+) or the ``exceptiongroup`` backport (3.10)."""
    if _GROUP_TYPE is not None and isinstance(exc, _GROUP_TYPE):
        return True
    backport = sys.modules.get("exceptiongroup")
    group = getattr(backport, "BaseExceptionGroup", None) if backport is not None else None
    return group is not None and isinstance(exc, group)


def _chain(exc: BaseException, seen: set[int]) -> Iterator[BaseException]:
    """The exception, then what caused it: ``__cause__``, ``__context__``, ``.reason``."""
    current: BaseException | None = exc
    depth = 0
    while current is not None and id(current) not in seen and depth < _MAX_CHAIN:
        seen.add(id(current))
        depth += 1
        yield current
        nxt = current.__cause__
        if nxt is None and not current.__suppress_context__:
            nxt = current.__context__
        if nxt is None:
            reason = getattr(current, "reason", None)
            nxt = reason if isinstance(reason, BaseException) else None
        current = nxt
