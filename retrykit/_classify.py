"""
Classification: what kind of failure is this?

A ``Classifier`` holds ordered rules. It walks the exception, its ``__cause__``/``__context__``
chain (and ``.reason`` of urllib-style wrappers) and the members of exception groups, and returns
the first rule's verdict as a ``Classification``. It never raises: a rule that raises is skipped and
reported as a ``RuleFailed`` event. Third-party exception types (httpx, requests, urllib3, aiohttp,
database drivers) are recognised without importing those libraries.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

from . import (
    _events,
    _layers,
    _rules_amqp,
    _rules_aws,
    _rules_db,
    _rules_generic,
    _rules_grpc,
    _rules_http,
    _rules_redis,
    _rules_sdk,
    _rules_std,
)
from ._categories import (
    CODE,
    GENERIC,
    TIER_NAMES,
    WRAPPER,
    CategoryKey,
    Classification,
    ErrorCategory,
    Hit,
    module_of,
    parse_retry_after,
)
from ._errors import ConfigError, callable_name
from ._rules_http import http_status, retry_after_of


@runtime_checkable
class ClassifierRule(Protocol):
    """Anything with a name and a ``match(exc)`` returning a ``Classification`` or ``None``."""

    @property
    def name(self) -> str: ...

    def match(self, exc: BaseException) -> Classification | None:
        """The classification of *exc*, or None when the rule does not apply to it."""
        ...


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

    Args:
        category: The category a matching failure gets: an ``ErrorCategory`` or its value.
        types: Exception classes the failure must be an instance of (one or several).
        status: HTTP status codes the failure must carry (read as the built-in HTTP rules do).
        message: A regular expression searched in ``str(exc)``, case-insensitive.
        when: A predicate on the exception; an exception it raises makes the rule not match.
        reason: The ``Classification.reason`` to give. Default: the criteria that matched.
        name: The ``Classification.rule`` to give. Default: a description of the rule.

    Raises:
        ConfigError: A criterion of the wrong type, a status outside 100-599 or a bad regular
            expression, naming the argument and the fix.
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
        category: CategoryKey,
        *,
        types: type[BaseException] | Iterable[type[BaseException]] = (),
        status: int | Iterable[int] = (),
        message: str | re.Pattern[str] | None = None,
        when: Callable[[BaseException], bool] | None = None,
        reason: str | None = None,
        name: str | None = None,
    ) -> None:
        cat = ErrorCategory.parse(category)
        type_tuple = _exception_types(types)
        codes = _status_codes(status)
        _check_texts(message, reason, name)
        pattern = _compiled(message)
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


def _exception_types(types: object) -> tuple[type[BaseException], ...]:
    """``Rule``'s *types* as a tuple of exception classes (a ``ConfigError`` if they are not)."""
    type_tuple = _tuple_of("types", types, type)
    for t in type_tuple:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise ConfigError("types", types, "must be exception classes", "pass e.g. types=(MyError,)")
    return type_tuple


def _status_codes(status: object) -> frozenset[int]:
    """``Rule``'s *status* as a set of HTTP status codes (a ``ConfigError`` if it is not)."""
    codes = frozenset(_tuple_of("status", status, int))
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise ConfigError("status", status, "must be HTTP status codes (100-599)", "pass e.g. status=429")
    return codes


def _check_texts(message: object, reason: object, name: object) -> None:
    """``Rule``'s text arguments are of the right types: a regular expression, short texts."""
    if message is not None and not isinstance(message, (str, re.Pattern)):
        raise ConfigError(
            "message",
            message,
            "must be a regular expression (a str or re.Pattern)",
            "pass e.g. message=r'try again'",
        )
    for label, text in (("reason", reason), ("name", name)):
        if text is not None and not isinstance(text, str):
            raise ConfigError(label, text, "must be a str", f"pass a short text as {label}=")


def _compiled(message: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    """``Rule``'s *message* compiled, case-insensitive (a ``ConfigError`` if it does not compile)."""
    try:
        return re.compile(message, re.IGNORECASE) if isinstance(message, str) else message
    except re.error as err:
        raise ConfigError(
            "message",
            message,
            f"is not a valid regular expression ({err})",
            "escape special characters with re.escape()",
        ) from None


def _tuple_of(argument: str, value: Any, single: type) -> tuple[Any, ...]:
    """*value* as a tuple: one item of type *single*, or an iterable of them (not a str)."""
    if isinstance(value, single) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        example = "types=(MyError,)" if argument == "types" else "status=(429, 503)"
        raise ConfigError(
            argument, value, f"must be one {single.__name__} or several", f"pass e.g. {example}"
        )
    return tuple(value)


def _describe(
    types: tuple[type, ...],
    codes: frozenset[int],
    pattern: re.Pattern[str] | None,
    when: Callable[[BaseException], bool] | None,
) -> str:
    parts = []
    if types:
        parts.append("types=" + "|".join(t.__name__ for t in types))
    if codes:
        parts.append("status=" + "|".join(str(c) for c in sorted(codes)))
    if pattern is not None:
        parts.append(f"message={pattern.pattern!r}")
    if when is not None:
        parts.append(f"when={callable_name(when)}")
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


def _checked(verdict: Any, rule: ClassifierRule) -> Classification | None:
    """A rule's answer, validated at the rule's boundary (a bad one raises: the rule failed)."""
    if verdict is None:
        return None
    if not isinstance(verdict, Classification):
        raise TypeError(f"rule {rule.name} returned a {type(verdict).__name__}, not a Classification")
    category: Any = verdict.category
    retry_after: Any = verdict.retry_after
    if isinstance(category, ErrorCategory) and (retry_after is None or type(retry_after) is float):
        return verdict
    return Classification(
        ErrorCategory.parse(category, f"category returned by rule {rule.name}"),
        str(verdict.reason),
        parse_retry_after(retry_after),
        str(verdict.rule),
        bool(verdict.replay_unsafe),
    )


# --------------------------------------------------------------------------- built-in rules
#
# The built-in rules come in families, one module per kind of library (``_rules_*``). Each family
# reads signals from one link of the cause chain: a *static* verdict that depends on the class
# alone (computed once per class and cached weakly), and *dynamic* readers of what the instance
# carries (a SQLSTATE, a driver error number, an HTTP/gRPC status, an AWS error code, an AMQP
# reply code, a Redis reply, an errno). Every verdict has a tier (``_categories.CODE`` < ``CLASS`` <
# ``GENERIC`` < ``WRAPPER``): the most specific signal anywhere in the chain wins, the outermost
# link on a tie. Third-party libraries are recognised by the modules their classes come from:
# nothing is imported, so a library that is not imported costs nothing.

Reader: TypeAlias = Callable[[BaseException], "Hit | None"]


@dataclass(frozen=True, slots=True)
class _Family:
    name: str
    prefixes: tuple[str, ...]
    static: Callable[[type], Hit | None]
    dynamic: tuple[Reader, ...]


_FAMILIES: tuple[_Family, ...] = (
    _Family("sdk", _rules_sdk.PREFIXES, _rules_sdk.static, _rules_sdk.DYNAMIC),  # before http: x-should-retry
    _Family("http", _rules_http.PREFIXES, _rules_http.static, _rules_http.DYNAMIC),
    _Family("db", _rules_db.PREFIXES, _rules_db.static, _rules_db.DYNAMIC),
    _Family("redis", _rules_redis.PREFIXES, _rules_redis.static, _rules_redis.DYNAMIC),
    _Family("grpc", _rules_grpc.PREFIXES, _rules_grpc.static, _rules_grpc.DYNAMIC),
    _Family("aws", _rules_aws.PREFIXES, _rules_aws.static, _rules_aws.DYNAMIC),
    _Family("amqp", _rules_amqp.PREFIXES, _rules_amqp.static, _rules_amqp.DYNAMIC),
)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to read from an exception of one class: the class's own verdict, then readers."""

    static: Hit | None
    dynamic: tuple[Reader, ...]
    duck: bool  # not a builtin-only class: look for .reason/.orig links and wait hints
    http: bool  # an HTTP client's class: check replay safety
    fallback: tuple[Reader, ...] = ()  # read only when nothing else in the chain spoke


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _compute_plan(cls: type) -> _Plan:
    modules = {module_of(k) for k in cls.__mro__}
    duck = modules != {"builtins"}
    statics: list[Hit | None] = [_rules_std.static(cls)]
    dynamic: list[Reader] = []
    if cls is OSError:  # a plain OSError: a client's transport may say more than its errno
        dynamic.extend(_rules_amqp.OS_ERROR)
    if issubclass(cls, OSError):
        dynamic.append(_rules_std.os_error)
    if "sqlite3" in modules:
        dynamic.append(_rules_std.sqlite)
    if issubclass(cls, EOFError):
        dynamic.append(_rules_std.truncated_stream)
    http = known = False
    for family in _FAMILIES:
        if any(_in(m, family.prefixes) for m in modules):
            known = True
            http = http or family.name == "http"
            statics.append(family.static(cls))
            dynamic.extend(r for r in family.dynamic if r not in dynamic)
    if duck and not known:  # a library without rules: the generic signals (_rules_generic)
        statics.append(_rules_generic.name_static(cls))
        dynamic.extend(_rules_generic.readers(cls))
    if duck:
        statics.append(_rules_std.db_wrapper_static(cls))
        for reader in (_rules_http.status, _rules_db.sqlstate):
            if reader not in dynamic:
                dynamic.append(reader)
    best: Hit | None = None
    for candidate in statics:
        if candidate is not None and (best is None or candidate[0] < best[0]):
            best = candidate
    if best is None or best[0] > GENERIC:
        dynamic.append(_rules_std.rate_limit_message)
    fallback = _rules_generic.FALLBACK if not known and (best is None or best[0] == WRAPPER) else ()
    return _Plan(best, tuple(dynamic), duck, http, fallback)


# Builtin classes live for ever: a plain dict. Others (including classes made at run time) are
# held weakly, so a program that creates exception classes dynamically does not leak them.
_BUILTIN_PLANS: dict[type, _Plan] = {}
_PLANS: weakref.WeakKeyDictionary[type, _Plan] = weakref.WeakKeyDictionary()


def _plan(cls: type) -> _Plan:
    plan = _BUILTIN_PLANS.get(cls)
    if plan is not None:
        return plan
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _compute_plan(cls)
        if plan.duck:
            _PLANS[cls] = plan
        else:
            _BUILTIN_PLANS[cls] = plan
    return plan


# Classifications of plain builtin exceptions, by what alone decides them (see ``cache_key``):
# a retried failure is classified by one dict lookup. Bounded; cleared when full.
_CLASSIFIED: dict[tuple[Any, ...], Classification] = {}
_CLASSIFIED_SIZE = 512
# Builtin classes whose message or signals read attributes set apart from ``args``.
_UNCACHED = (UnicodeError, SyntaxError, BaseExceptionGroup)


def cache_key(exc: BaseException, classifier: Classifier) -> tuple[Any, ...] | None:
    """
    What alone decides the built-in rules' verdict on *exc*, when that is its class and its
    ``args``: a builtin-only class (no duck-typed attributes, no library module), not a plain
    ``OSError`` (read with its traceback), no cause or context, nothing in its ``__dict__``,
    hashable ``args`` that wrap no exception; with what of *classifier* decides it too (a
    classifier with rules of its own has no key). ``None``: classify it in full.
    """
    if classifier.rules:
        return None
    cls = type(exc)
    kind = _CACHEABLE.get(cls)
    if kind is None:
        if cls not in _BUILTIN_PLANS:
            return None  # (a class seen for the first time is planned by the full walk)
        kind = _CACHEABLE[cls] = (
            _NOT_CACHED
            if cls is OSError or issubclass(cls, _UNCACHED)
            else _OS_ERROR
            if issubclass(cls, OSError)
            else _BY_ARGS
        )
    if kind == _NOT_CACHED or exc.__cause__ is not None or exc.__context__ is not None:
        return None
    try:
        if object.__getattribute__(exc, "__dict__"):
            return None
        args = exc.args
        if args and isinstance(args[0], BaseException):
            return None
        if kind == _OS_ERROR:
            assert isinstance(exc, OSError)
            args = (args, exc.errno, exc.strerror, exc.filename, exc.filename2)
        key = (cls, args, classifier.builtin, classifier.default_given, classifier.default)
        hash(key)
    except Exception:
        return None
    return key


_NOT_CACHED, _BY_ARGS, _OS_ERROR = range(3)
_CACHEABLE: dict[type, int] = {}  # builtin classes only: they live for ever


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
    if isinstance(rule, (Rule, _CallableRule)):
        return rule
    if hasattr(rule, "match") and hasattr(rule, "name"):
        return rule  # type: ignore[no-any-return]
    if callable(rule):
        return _CallableRule(rule, callable_name(rule))
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

    User *rules* run before the built-in ones (unless ``builtin=False``); the first match wins.
    An exception no rule or signal recognises is *unrecognised*: ``temporary_error`` under the rule
    name ``"unrecognised"``, which a policy retries at most ``UNRECOGNISED_RETRIES`` times (once),
    and which the statistics count by type so that ``analyze()`` suggests a rule. Given a
    *default* category, such exceptions get it under the rule name ``"default"`` and the
    category's whole strategy: you said what they are.

    Args:
        rules: ``Rule`` objects, or functions taking the exception and returning a category, a
            ``Classification`` or ``None`` (no opinion). A function that raises is skipped and
            reported as a ``RuleFailed`` event.
        default: The category of failures no rule recognises (None: *unrecognised*, as above).
        builtin: Whether the built-in rules (HTTP, databases, Redis, gRPC, AWS, AMQP, API SDKs,
            the standard library, generic signals) run after yours.

    Raises:
        ConfigError: Something that is not a rule, naming it and the fix.
    """

    rules: tuple[ClassifierRule, ...] = ()
    default: ErrorCategory = ErrorCategory.TEMPORARY_ERROR
    builtin: bool = True
    default_given: bool = field(default=False, repr=False)

    def __init__(
        self,
        rules: Iterable[RuleLike] = (),
        *,
        default: CategoryKey | None = None,
        builtin: bool = True,
    ) -> None:
        given = cast(object, rules)
        if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
            raise ConfigError("rules", rules, "must be an iterable of rules", "pass rules=[Rule(...)]")
        own = tuple(_as_rule(r) for r in rules)
        object.__setattr__(self, "rules", own)
        given_default = default is not None
        category = (
            ErrorCategory.TEMPORARY_ERROR if default is None else ErrorCategory.parse(default, "default")
        )
        object.__setattr__(self, "default", category)
        object.__setattr__(self, "default_given", given_default)
        if not isinstance(builtin, bool):
            raise ConfigError(
                "builtin", builtin, "must be True or False", "pass builtin=False to use only your rules"
            )
        object.__setattr__(self, "builtin", builtin)

    def with_rules(self, *rules: RuleLike) -> Classifier:
        """A copy with *rules* placed before this classifier's own rules."""
        default = self.default if self.default_given else None
        return Classifier((*rules, *self.rules), default=default, builtin=self.builtin)

    def classify(self, exc: BaseException) -> Classification:
        """Classify *exc*; never raises."""
        key = cache_key(exc, self)
        if key is None:
            return self._classification(exc, None)
        found = _CLASSIFIED.get(key)
        if found is None:
            found = self._classification(exc, None)
            if len(_CLASSIFIED) >= _CLASSIFIED_SIZE:
                _CLASSIFIED.clear()
            _CLASSIFIED[key] = found
        return found

    def explain(self, exc: BaseException) -> Explanation:
        """How *exc* is classified: each link of its chain, the signals read, and the decision."""
        trace: list[_Step] = []
        verdict = _layers.attach(
            self._classification(exc, trace), exc
        )  # and the client inside, if it retried
        return Explanation(_describe_exc(exc), tuple(trace), verdict)

    def _classification(self, exc: BaseException, trace: list[_Step] | None) -> Classification:
        try:
            found = self._walk(exc, set(), trace)
        except Exception as err:  # pragma: no cover - defensive: _walk guards every rule
            found = None
            _events.emit(_events.RuleFailed("<classifier>", type(exc).__name__, type(err).__name__))
        if found is not None:
            return found[1]
        if self.default_given:
            return Classification(
                self.default, f"{type(exc).__name__} matched no rule; default category", None
            )
        return Classification(
            self.default,
            f"{type(exc).__name__} matched no rule or signal: unrecognised, retried at most "
            f"{UNRECOGNISED_RETRIES} time(s); add a rule saying what it is",
            None,
            UNRECOGNISED,
        )

    def _walk(
        self,
        exc: BaseException,
        seen: set[int],
        trace: list[_Step] | None,
        depth: int = 0,
        budget: list[int] | None = None,
    ) -> Hit | None:
        """
        The verdict on *exc*: the first user rule matching a link of its chain, else the most
        specific built-in signal of the chain and of its groups' members, completed by ``_finish``.
        """
        links = _links(exc, seen)
        if self.rules:
            mine = self._by_rules(links, trace)
            if mine is not None:
                return mine
        best, duck, http = self._by_signals(links, seen, trace, depth, budget)
        if (best is None or best[0] == WRAPPER) and self.builtin:
            best = _fallback(links, best, trace)
        if best is None:
            return None
        return _finish(best, links, duck, http)

    def _by_rules(self, links: list[BaseException], trace: list[_Step] | None) -> Hit | None:
        """The first user rule's verdict on a link, outer links first (a rule that raises is skipped)."""
        for index, link in enumerate(links):
            for rule in self.rules:
                began = _clock()
                try:
                    verdict = _checked(rule.match(link), rule)
                except Exception as err:
                    _events.emit(_events.RuleFailed(rule.name, type(link).__name__, type(err).__name__))
                    continue
                finally:
                    if _clock() - began > SLOW_RULE:
                        _slow(rule)
                if verdict is not None:
                    if trace is not None:
                        trace.append(_Step(index, _describe_exc(link), _USER, verdict))
                    return _USER, verdict
        return None

    def _by_signals(
        self,
        links: list[BaseException],
        seen: set[int],
        trace: list[_Step] | None,
        depth: int,
        budget: list[int] | None,
    ) -> tuple[Hit | None, bool, bool]:
        """
        The most specific built-in signal of the chain (the outer link on a tie), an exception
        group counting as its most severe member; and whether a link is duck-typed, an HTTP client's.
        """
        best: Hit | None = None
        duck = http = False
        for index, link in enumerate(links):
            if best is not None and best[0] == CODE:
                break  # nothing deeper can be more specific; on a tie the outer link wins
            plan = _plan(type(link))
            if trace is not None:
                trace.append(_Step(index, _describe_exc(link), _VISIT, None))
            duck = duck or plan.duck
            http = http or plan.http
            if self.builtin:
                found = plan.static
                if found is not None:
                    if trace is not None:
                        trace.append(_Step(index, _describe_exc(link), found[0], found[1]))
                    if best is None or found[0] < best[0]:
                        best = found
                best = _read(plan.dynamic, index, link, best, trace)
            if _is_group(link) and depth < GROUP_DEPTH:
                if budget is None:
                    budget = [GROUP_MEMBERS]
                worst = self._group(link, seen, trace, depth, budget)
                if worst is not None and (best is None or worst[0] <= best[0]):
                    best = worst
        return best, duck, http

    def _group(
        self, group: BaseException, seen: set[int], trace: list[_Step] | None, depth: int, budget: list[int]
    ) -> Hit | None:
        """
        The most severe member of an exception group, nested groups walked iteratively (no
        recursion, whatever the depth), at most ``GROUP_MEMBERS`` members in all: when the bound
        is reached, the most severe member seen so far wins.
        """
        worst: Hit | None = None
        stack: list[object] = list(reversed(tuple(itertools.islice(_members(group), budget[0]))))
        while stack and budget[0] > 0:
            member = stack.pop()
            budget[0] -= 1
            if not isinstance(member, BaseException):
                continue
            if _is_group(member):
                stack.extend(reversed(tuple(itertools.islice(_members(member), budget[0]))))
                continue
            hit = self._walk(member, seen, trace, GROUP_DEPTH, budget)  # its chain, no groups
            if hit is not None and (worst is None or _rank(hit) < _rank(worst)):
                worst = hit
        return worst


def _fallback(links: list[BaseException], best: Hit | None, trace: list[_Step] | None) -> Hit | None:
    """The last-resort signals (messages, hidden causes), read only when nothing else spoke."""
    if best is not None and best[1].rule not in _rules_generic.WEAK:
        return best
    for index, link in enumerate(links):
        best = _read(_plan(type(link)).fallback, index, link, best, trace)
    return best


def _read(
    readers: tuple[Reader, ...], index: int, link: BaseException, best: Hit | None, trace: list[_Step] | None
) -> Hit | None:
    """
    The most specific of *best* and what *readers* find on *link*, the *index*-th link of the
    chain (each finding recorded in *trace*); a reader that raises is reported and skipped.
    """
    for reader in readers:
        try:
            found = reader(link)
        except Exception as err:
            _events.emit(_events.RuleFailed(_reader_name(reader), type(link).__name__, type(err).__name__))
            continue
        if found is not None:
            if trace is not None:
                trace.append(_Step(index, _describe_exc(link), found[0], found[1]))
            if best is None or found[0] < best[0]:
                best = found
    return best


def _members(group: BaseException) -> Iterator[object]:
    try:
        members = getattr(group, "exceptions", ())
        return iter(members)
    except Exception:  # a hostile group
        return iter(())


UNRECOGNISED = "unrecognised"
"""The rule name of a classification no rule or signal made (the classifier was given no default)."""
UNRECOGNISED_RETRIES = 1
"""How many times a call retries an unrecognised failure (counted with its temporary failures)."""

SLOW_RULE = 0.1
"""A rule taking longer than this (seconds) to answer is reported, once: rules run on every failure."""
_clock = time.perf_counter
_slow_rules: set[str] = set()
_log = logging.getLogger("retrykit")


def _slow(rule: ClassifierRule) -> None:
    name = str(getattr(rule, "name", "?"))
    if name not in _slow_rules and len(_slow_rules) < 1000:
        _slow_rules.add(name)
        _log.warning(
            "retrykit: classifier rule %s took over %gs to answer; rules run on every failure, "
            "keep them fast (reported once)",
            name,
            SLOW_RULE,
        )


GROUP_MEMBERS = 1000
"""At most this many members of (nested) exception groups are classified per failure."""
GROUP_DEPTH = 1
"""Groups are looked into from the top-level chain only; nested groups are walked by ``_group``."""


def _rank(hit: Hit) -> int:
    return _SEVERITY.index(hit[1].category)


_USER = -1  # user rules outrank every built-in signal
_VISIT = -2  # explain(): a link was looked at
_RETRYABLE = frozenset(
    {ErrorCategory.NETWORK_ERROR, ErrorCategory.TEMPORARY_ERROR, ErrorCategory.API_RATE_LIMIT}
)


def _finish(best: Hit, links: list[BaseException], duck: bool, http: bool) -> Hit:
    """Add what the winning link may not carry itself: the server's wait hint, replay safety."""
    verdict = best[1]
    if not duck or verdict.category not in _RETRYABLE:
        return best
    changes: dict[str, Any] = {}
    if verdict.retry_after is None:
        for link in links:
            wait = retry_after_of(link)
            if wait is not None:
                changes["retry_after"] = wait
                break
    if http and verdict.category is not ErrorCategory.API_RATE_LIMIT and _rules_http.replay_unsafe(links):
        changes["replay_unsafe"] = True
        changes["reason"] = verdict.reason + "; the non-idempotent request may have been applied"
    return (best[0], replace(verdict, **changes)) if changes else best


def _reader_name(reader: Reader) -> str:
    return f"{getattr(reader, '__module__', '?')}.{getattr(reader, '__name__', '?')}"


def _describe_exc(exc: BaseException) -> str:
    cls = type(exc)
    module = module_of(cls)
    name = cls.__qualname__ if module in ("builtins", "") else f"{module}.{cls.__qualname__}"
    try:
        text = str(exc)
    except Exception:
        text = "<str() failed>"
    text = text.replace("\n", " ")
    return f"{name}({text[:100]!r})" if text else name


@dataclass(frozen=True, slots=True)
class _Step:
    """One signal read from one link of the chain."""

    link: int
    exception: str
    tier: int
    verdict: Classification | None

    def __str__(self) -> str:
        v = self.verdict
        if v is None:
            return "no signal"
        tier = "user rule" if self.tier == _USER else TIER_NAMES[self.tier]
        return f"{tier}: {v.reason} -> {v.category.value} [rule {v.rule}]"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an exception got its classification: what each link of its cause chain said."""

    exception: str
    steps: tuple[_Step, ...]
    classification: Classification

    def __str__(self) -> str:
        lines = [f"classifying {self.exception}"]
        order: list[int] = []
        names: dict[int, str] = {}
        said: dict[int, list[str]] = {}
        for step in self.steps:
            if step.link not in names:
                order.append(step.link)
                names[step.link] = step.exception
            if step.verdict is not None:
                said.setdefault(step.link, []).append(str(step))
        for link in order:
            lines.append(f"  link {link}: {names[link]}")
            lines.extend(f"    {line}" for line in said.get(link, ["no signal"]))
        c = self.classification
        lines.append(
            f"decision: {c.category.value} by rule {c.rule!r} ({c.reason})"
            + (f"; retry after {c.retry_after:g}s" if c.retry_after is not None else "")
            + ("; replay unsafe" if c.replay_unsafe else "")
        )
        if c.inner is not None:
            lines.append(f"inner layer: {c.inner.describe()}")
        lines.append(
            "precedence: user rules, then protocol code > specific class > generic type > "
            "wrapper class name; the outer link wins a tie"
        )
        return "\n".join(lines)


__all__ = [
    "Classification",
    "Classifier",
    "ClassifierRule",
    "ErrorCategory",
    "Explanation",
    "Rule",
    "http_status",
    "parse_retry_after",
    "retry_after_of",
]


def _is_group(exc: BaseException) -> bool:
    """An exception group (``ExceptionGroup`` or ``BaseExceptionGroup``)."""
    return isinstance(exc, BaseExceptionGroup)


def _next_link(current: BaseException, duck: bool) -> BaseException | None:
    nxt = current.__cause__
    if nxt is None and not current.__suppress_context__:
        nxt = current.__context__
    if nxt is None and duck:
        for name in ("reason", "orig", "cause"):  # urllib3's .reason, SQLAlchemy's .orig, google's .cause
            try:
                candidate = getattr(current, name, None)
            except Exception:
                continue
            if isinstance(candidate, BaseException):
                return candidate
    if nxt is None:
        args = current.args
        if args and isinstance(args[0], BaseException):  # requests/urllib3 wrap the cause as args[0]
            return args[0]
    return nxt


def _links(exc: BaseException, seen: set[int]) -> list[BaseException]:
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(links) < _MAX_CHAIN:
        seen.add(id(current))
        links.append(current)
        current = _next_link(current, _plan(type(current)).duck)
    return links
