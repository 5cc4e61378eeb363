"""Classification: built-in rules, third-party errors by duck typing, chains, and safety."""

from __future__ import annotations

import builtins
import errno
import json
import socket
import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

import retrykit
from retrykit import Classification, Classifier, ErrorCategory, Rule, _events
from retrykit._categories import header, module_of
from retrykit._classify import _VISIT, _Step, parse_retry_after
from retrykit.testing import record

NET = ErrorCategory.NETWORK_ERROR
RATE = ErrorCategory.API_RATE_LIMIT
DATA = ErrorCategory.DATA_ERROR
SYS = ErrorCategory.SYSTEM_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR


class _Response:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.headers = headers or {}


class HTTPishError(Exception):
    """An error carrying a response, as httpx and requests errors do."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = _Response(status, headers)


class StatusError(Exception):
    """An error with a bare status attribute, as aiohttp's ClientResponseError has."""

    def __init__(self, status: int) -> None:
        super().__init__("status")
        self.status = status


class PgError(Exception):
    """A database driver error carrying a SQLSTATE."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.pgcode = code


def _json_error() -> json.JSONDecodeError:
    try:
        json.loads("{")
    except json.JSONDecodeError as err:
        return err
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (ConnectionResetError(), NET),
        (ConnectionRefusedError(), NET),
        (BrokenPipeError(), NET),
        (TimeoutError(), NET),
        (socket.gaierror(-2, "Name or service not known"), NET),
        (ssl.SSLError(), NET),
        (EOFError(), NET),
        (ssl.SSLCertVerificationError("certificate verify failed"), PERM),
        (HTTPishError(429), RATE),
        (StatusError(429), RATE),
        *[(HTTPishError(code), TEMP) for code in (408, 425, 500, 502, 503, 504)],
        *[(HTTPishError(code), DATA) for code in (400, 422)],
        *[(HTTPishError(code), PERM) for code in (401, 403, 404, 405, 410)],
        (PgError("40001"), TEMP),
        (PgError("40P01"), TEMP),
        (PgError("08006"), NET),
        (PgError("57P01"), NET),
        (PgError("53100"), SYS),
        (PgError("23505"), DATA),
        (PgError("42P01"), PERM),
        (MemoryError(), SYS),
        *[(OSError(code, "x"), SYS) for code in (errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM)],
        (ValueError("bad"), DATA),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid"), DATA),
        (_json_error(), DATA),
        (KeyError("field"), DATA),
        (TypeError(), PERM),
        (AttributeError(), PERM),
        (NameError(), PERM),
        (NotImplementedError(), PERM),
        (AssertionError(), PERM),
        (ImportError(), PERM),
        (RuntimeError("API rate limit exceeded"), RATE),
        (RuntimeError("something odd"), TEMP),
        (OSError(errno.EACCES, "denied"), PERM),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_builtin_rules(exc: BaseException, category: ErrorCategory) -> None:
    """Each built-in rule maps its failures to the category the issue names."""
    assert category == retrykit.classify(exc).category


def test_httpx_errors_are_recognised() -> None:
    """httpx's transport errors are network errors; its 429 is a rate limit with Retry-After."""
    httpx = pytest.importorskip("httpx")
    request = httpx.Request("GET", "http://127.0.0.1/")
    for exc in (
        httpx.ConnectError("x", request=request),
        httpx.ReadTimeout("x", request=request),
        httpx.RemoteProtocolError("x", request=request),
    ):
        assert NET == retrykit.classify(exc).category
    response = httpx.Response(429, headers={"Retry-After": "7"}, request=request)
    err = httpx.HTTPStatusError("429", request=request, response=response)
    verdict = retrykit.classify(err)
    assert (RATE, 7.0) == (verdict.category, verdict.retry_after)


def test_requests_and_urllib3_errors_are_recognised() -> None:
    """requests' ConnectionError/Timeout (not builtin subclasses) and urllib3's are network."""
    requests = pytest.importorskip("requests")
    urllib3 = pytest.importorskip("urllib3")
    for exc in (
        requests.exceptions.ConnectionError("x"),
        requests.exceptions.ReadTimeout("x"),
        urllib3.exceptions.ProtocolError("x"),
        urllib3.exceptions.ReadTimeoutError(None, "/", "x"),
    ):
        assert NET == retrykit.classify(exc).category
    response = requests.Response()
    response.status_code = 503
    response.headers["Retry-After"] = "3"
    verdict = retrykit.classify(requests.exceptions.HTTPError(response=response))
    assert (TEMP, 3.0) == (verdict.category, verdict.retry_after)


def test_aiohttp_errors_are_recognised() -> None:
    """aiohttp's connection errors are network errors; ClientResponseError 429 is a rate limit."""
    aiohttp = pytest.importorskip("aiohttp")
    assert NET == retrykit.classify(aiohttp.ServerDisconnectedError()).category
    err = aiohttp.ClientResponseError(None, (), status=429, headers={"Retry-After": "4"})  # type: ignore[arg-type]
    verdict = retrykit.classify(err)
    assert (RATE, 4.0) == (verdict.category, verdict.retry_after)


def test_urllib_http_error_is_recognised() -> None:
    """The stdlib's urllib HTTPError is classified by its code and headers."""
    import email.message
    import urllib.error

    headers = email.message.Message()
    headers["Retry-After"] = "9"
    err = urllib.error.HTTPError("http://x", 503, "unavailable", headers, None)
    verdict = retrykit.classify(err)
    assert (TEMP, 9.0) == (verdict.category, verdict.retry_after)


def test_import_does_not_import_http_libraries() -> None:
    """``import retrykit`` imports none of the client libraries whose errors it recognises."""
    code = (
        "import sys, retrykit; "
        "print(sorted(m for m in ('httpx','requests','aiohttp','urllib3','celery','redis', "
        "'grpc','google.api_core','botocore','pika','amqp','kombu','aiormq','aio_pika') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[]" == out.stdout.strip()


_NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        (30, 30.0),
        (timedelta(seconds=12), 12.0),
        (format_datetime(datetime.fromtimestamp(_NOW + 90, UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(_NOW - 90, UTC), usegmt=True), None),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_retry_after_parsing(value: Any, expected: float | None) -> None:
    """Retry-After takes delta-seconds or an HTTP-date; past dates and garbage give None."""
    result = parse_retry_after(value, now=_NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1.0)


def test_chain_is_walked() -> None:
    """A wrapper no rule knows is classified by its cause (``raise ... from ...``)."""

    class WrapperError(Exception):
        pass

    def fail() -> None:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as inner:
            raise WrapperError("failed") from inner

    with pytest.raises(WrapperError) as info:
        fail()
    assert NET == retrykit.classify(info.value).category


def test_implicit_context_and_reason_are_walked() -> None:
    """``__context__`` and a urllib-style ``.reason`` lead to the real failure."""
    import urllib.error

    assert NET == retrykit.classify(urllib.error.URLError(ConnectionRefusedError())).category

    class Opaque(Exception):
        pass

    err = Opaque()
    err.__context__ = TimeoutError()
    assert NET == retrykit.classify(err).category


def test_cycles_terminate() -> None:
    """A cause cycle does not loop forever."""

    class Opaque(Exception):
        pass

    a, b = Opaque("a"), Opaque("b")
    a.__cause__, b.__cause__ = b, a
    assert TEMP == retrykit.classify(a).category


def test_exception_group_takes_most_severe_member() -> None:
    """An exception group is classified by its most severe member."""
    group = builtins.ExceptionGroup
    many = group("many", [ConnectionResetError(), KeyError("x"), TimeoutError()])
    assert DATA == retrykit.classify(many).category
    assert NET == retrykit.classify(group("n", [ConnectionResetError()])).category


def test_raising_rule_is_skipped_and_reported() -> None:
    """A rule that raises is skipped, the next rule decides, and a RuleFailed event says so."""

    def broken(exc: BaseException) -> ErrorCategory:
        raise RuntimeError("rule bug")

    classifier = Classifier([broken, Rule(DATA, types=LookupError)])
    with record() as rec:
        verdict = classifier.classify(IndexError())
    assert DATA == verdict.category
    assert ["broken"] == [e.rule.rsplit(".", 1)[-1] for e in rec.events]  # type: ignore[union-attr]


def test_user_rules_come_first() -> None:
    """User rules run before the built-in ones, in order."""
    classifier = Classifier(
        [
            Rule(PERM, types=ValueError, message="fatal"),
            Rule(TEMP, types=ValueError),
        ]
    )
    assert PERM == classifier.classify(ValueError("fatal input")).category
    assert TEMP == classifier.classify(ValueError("other")).category
    assert NET == classifier.classify(ConnectionResetError()).category


@pytest.mark.parametrize(
    ("rule", "exc", "matches"),
    [
        (Rule(RATE, status=429), HTTPishError(429), True),
        (Rule(RATE, status=[429, 420]), HTTPishError(503), False),
        (Rule(TEMP, message=r"try again"), RuntimeError("please TRY AGAIN later"), True),
        (Rule(PERM, when=lambda e: getattr(e, "code", None) == "CLOSED"), RuntimeError(), False),
        (Rule(DATA, types=(KeyError, IndexError), message="x"), IndexError("x"), True),
    ],
)
def test_rule_criteria(rule: Rule, exc: BaseException, matches: bool) -> None:
    """A rule matches only when every criterion it has holds."""
    assert matches == (rule.match(exc) is not None)


def test_callable_rule_may_return_a_category_name() -> None:
    """A plain function rule (a custom_classify_error function) may return a category or its name."""
    classifier = Classifier([lambda e: "data_error" if "custom_error" in str(e) else None])
    assert DATA == classifier.classify(RuntimeError("custom_error here")).category


def test_builtin_rules_can_be_switched_off() -> None:
    """``builtin=False`` leaves only the user's rules and the default."""
    classifier = Classifier(builtin=False, default="permanent_error")
    assert PERM == classifier.classify(ConnectionResetError()).category


def test_default_category_is_configurable() -> None:
    """``configure(default_category=...)`` changes what unknown failures become."""
    retrykit.configure(default_category="permanent_error")
    assert PERM == retrykit.classify(RuntimeError("odd")).category


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"types": int}, "types"),
        ({"status": 99}, "status"),
        ({"message": "("}, "message"),
        ({"when": 3}, "when"),
        ({}, "Rule"),
    ],
)
def test_bad_rules_fail_at_construction(kwargs: dict[str, Any], argument: str) -> None:
    """A malformed rule is refused when built, naming the argument."""
    with pytest.raises(retrykit.ConfigError) as info:
        Rule(DATA, **kwargs)
    assert argument == info.value.argument


def test_unknown_category_lists_known_ones() -> None:
    """An unknown category name is refused with the list of known ones."""
    with pytest.raises(retrykit.ConfigError, match="network_error, api_rate_limit"):
        Rule("networkish", types=ValueError)


def test_classify_never_raises_even_on_hostile_exceptions() -> None:
    """An exception whose attributes and str() raise is still classified."""

    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

        @property
        def response(self) -> Any:
            raise RuntimeError("no response")

    assert TEMP == retrykit.classify(Hostile()).category


def test_class_cache_holds_classes_weakly() -> None:
    """5,000 exception classes made at run time and classified do not stay alive."""
    import gc
    import weakref

    refs = []
    for i in range(5000):
        cls = type(f"Dynamic{i}Error", (RuntimeError,), {})
        retrykit.classify(cls("odd"))
        refs.append(weakref.ref(cls))
        del cls
    gc.collect()
    assert 0 == sum(r() is not None for r in refs)


def test_explain_shows_links_signals_rule_and_decision() -> None:
    """``explain`` shows each link, the signal read, the rule that matched and the category."""

    class WrapperError(Exception):
        pass

    try:
        try:
            raise PgError("53300")
        except PgError as inner:
            raise WrapperError("boom") from inner
    except WrapperError as err:
        text = str(retrykit.explain(err))
        verdict = retrykit.classify(err)
    assert (TEMP, "sqlstate") == (verdict.category, verdict.rule)
    assert "link 0" in text
    assert "link 1" in text
    assert "SQLSTATE 53300" in text
    assert "rule sqlstate" in text
    assert "decision: temporary_error" in text


def _library_error(module: str, name: str, base: type[BaseException] = Exception) -> type[BaseException]:
    """An exception class that says it comes from *module* (as the real library's classes do)."""
    return type(name, (base,), {"__module__": module})


def test_amqp_message_above_max_size_is_data() -> None:
    """RabbitMQ's 406 for a message above max_message_size is the payload's fault, not the declaration's."""
    cls = _library_error("amqp.exceptions", "PreconditionFailed")
    too_large = cls("PRECONDITION_FAILED - message size 200000000 is larger than configured max size 134217")
    too_large.reply_code = 406  # type: ignore[attr-defined]
    other = cls("PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q'")
    other.reply_code = 406  # type: ignore[attr-defined]
    assert (DATA, PERM) == (retrykit.classify(too_large).category, retrykit.classify(other).category)


def test_plain_einval_is_still_permanent_outside_py_amqp() -> None:
    """Only py-amqp's transport turns EINVAL into a lost connection; elsewhere it stays a bad argument."""
    try:
        raise OSError(errno.EINVAL, "Invalid argument")
    except OSError as err:
        verdict = retrykit.classify(err)
    assert (PERM, "errno") == (verdict.category, verdict.rule)


def test_aws_code_outranks_status_and_grpc_status_outranks_http_code() -> None:
    """A throttling code on a 400 is a rate limit; api-core's UNAVAILABLE is the network, not its 503."""
    client_error = _library_error("botocore.exceptions", "ClientError")
    throttled = client_error()
    throttled.response = {  # type: ignore[attr-defined]
        "Error": {"Code": "ProvisionedThroughputExceededException"},
        "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {"x-amz-retry-after": "2500"}},
    }
    unavailable = _library_error("google.api_core.exceptions", "ServiceUnavailable")("down")
    unavailable.code = 503  # type: ignore[attr-defined]
    got = retrykit.classify(throttled)
    assert (RATE, 2.5) == (got.category, got.retry_after)
    assert NET == retrykit.classify(unavailable).category


# --------------------------------------------------------------------------- the classifier at its edges


ExceptionGroup: Any = getattr(builtins, "ExceptionGroup", None)


needs_groups = pytest.mark.skipif(ExceptionGroup is None, reason="exception groups need Python 3.11+")


class _ObjectRule:
    """A rule object (name and match) that answers *answer* for every exception."""

    def __init__(self, answer: Any) -> None:
        self.name = "object-rule"
        self.answer = answer

    def match(self, exc: BaseException) -> Any:
        return self.answer


@pytest.fixture
def failures() -> Any:
    """The RuleFailed events emitted during the test."""
    with record() as recorder:
        yield recorder


def test_a_rule_object_is_used_as_it_is() -> None:
    """An object with name and match() is a rule: its classification decides."""
    verdict = Classification(ErrorCategory.DATA_ERROR, "mine")
    assert verdict is Classifier([_ObjectRule(verdict)]).classify(OSError())


@pytest.mark.parametrize("answer", ["data_error", 3, ErrorCategory.DATA_ERROR])
def test_a_rule_object_answering_other_than_a_classification_has_failed(answer: Any, failures: Any) -> None:
    """A rule object answering other than a Classification or None has failed: the built-ins decide."""
    found = Classifier([_ObjectRule(answer)]).classify(ConnectionResetError())
    assert ErrorCategory.NETWORK_ERROR == found.category
    said = [(e.rule, e.rule_error) for e in failures.events if isinstance(e, _events.RuleFailed)]
    assert [("object-rule", "TypeError")] == said


def test_rules_added_with_with_rules_come_first() -> None:
    """with_rules() puts its rules before the classifier's own, keeping its default and built-ins."""
    base = Classifier([Rule("data_error", types=KeyError)], default="permanent_error")
    both = base.with_rules(Rule("system_error", types=KeyError))
    assert (ErrorCategory.SYSTEM_ERROR, ErrorCategory.DATA_ERROR) == (
        both.classify(KeyError()).category,
        base.classify(KeyError()).category,
    )
    assert (ErrorCategory.PERMANENT_ERROR, True) == (both.default, both.builtin)


def test_explain_names_the_user_rule_that_decided() -> None:
    """explain() shows a user rule's verdict as a 'user rule' step on its link."""
    text = str(Classifier([Rule("data_error", types=KeyError, name="keys")]).explain(KeyError("k")))
    assert "user rule: " in text
    assert "[rule keys]" in text


def test_a_link_with_no_signal_reads_so() -> None:
    """A step that only records a visited link reads 'no signal'."""
    assert "no signal" == str(_Step(0, "KeyError", _VISIT, None))


class _Unprintable(ConnectionError):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_explain_survives_an_exception_whose_str_fails() -> None:
    """An exception whose str() raises is described by its class, with a placeholder for its text."""
    explanation = Classifier().explain(_Unprintable())
    assert "<str() failed>" in explanation.exception
    assert ErrorCategory.NETWORK_ERROR == explanation.classification.category


class _Hinted(Exception):
    retry_after = 2.5


def test_a_wait_hint_deeper_in_the_chain_is_kept() -> None:
    """A retryable verdict without a wait hint takes the first hint found further down the chain."""
    err = ConnectionResetError("reset")
    err.__cause__ = _Hinted("slow down")
    found = Classifier().classify(err)
    assert (ErrorCategory.NETWORK_ERROR, 2.5) == (found.category, found.retry_after)


def _odd_group(members: Any) -> BaseException:
    """A group whose members are not all exceptions (or, with None, cannot be listed)."""

    class OddGroup(ExceptionGroup):
        @property
        def exceptions(self) -> Any:  # type: ignore[override]
            if members is None:
                raise RuntimeError("hostile")
            return members

    return OddGroup("odd", [ValueError()])


@needs_groups
@pytest.mark.parametrize(
    ("members", "category"),
    [
        ([1, "x", KeyError()], ErrorCategory.DATA_ERROR),
        (None, ErrorCategory.TEMPORARY_ERROR),
    ],
    ids=["non-exception-members", "members-raise"],
)
def test_odd_groups_are_read_for_what_they_hold(members: Any, category: ErrorCategory) -> None:
    """Members that are not exceptions are skipped; a group whose members cannot be read counts as empty."""
    assert category == Classifier().classify(_odd_group(members)).category


@needs_groups
def test_two_groups_in_one_chain_share_one_member_bound() -> None:
    """A group caused by another group: both are looked into, the most severe member anywhere wins."""
    err = ExceptionGroup("outer", [ConnectionResetError()])
    err.__cause__ = ExceptionGroup("inner", [TypeError("bug")])
    found = Classifier().classify(err)
    assert ErrorCategory.PERMANENT_ERROR == found.category


# --------------------------------------------------------------------------- signals read from values


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"7", 7.0), (b" 2.5 ", 2.5), (["7"], None), (object(), None), ("Wed, 21 Oct 2015 07:28:00", None)],
    ids=["bytes", "bytes-padded", "a-list", "an-object", "a-date-without-zone"],
)
def test_retry_after_takes_bytes_and_refuses_other_objects_and_zoneless_dates(
    value: Any, seconds: Any
) -> None:
    """Retry-After may come as bytes; other objects, and HTTP-dates without a zone, give no hint."""
    assert seconds == parse_retry_after(value, now=0.0)


def test_headers_without_a_get_give_nothing() -> None:
    """A header read from an object with no get() is None."""
    assert header(["Retry-After: 3"], "Retry-After") is None


class _NoModule(type):
    @property
    def __module__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("hostile")


def test_a_class_whose_module_cannot_be_read_has_none() -> None:
    """module_of() of a class whose __module__ raises is the empty string."""
    assert "" == module_of(_NoModule("Odd", (), {}))


def _carrying(
    exc: BaseException, *, errno_: int | None = None, cause: BaseException | None = None
) -> BaseException:
    """*exc* with an errno set after it was made, or raised from *cause*."""
    if errno_ is not None:
        assert isinstance(exc, OSError)
        exc.errno = errno_
    if cause is not None:
        exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("first", "second", "category"),
    [
        (
            ConnectionError("down"),
            _carrying(ConnectionError("down"), errno_=errno.EACCES),
            ErrorCategory.PERMANENT_ERROR,
        ),
        (
            RuntimeError("failed"),
            _carrying(RuntimeError("failed"), cause=ConnectionResetError("reset")),
            ErrorCategory.NETWORK_ERROR,
        ),
        (RuntimeError("failed"), RuntimeError("too many requests"), ErrorCategory.API_RATE_LIMIT),
        (ConnectionError("down"), ConnectionError("down"), ErrorCategory.NETWORK_ERROR),
    ],
    ids=["errno set later", "a cause", "another message", "the same"],
)
def test_an_exception_like_one_classified_before_is_classified_by_what_it_carries(
    first: BaseException, second: BaseException, category: ErrorCategory
) -> None:
    """An exception like one classified before is classified by its own errno, cause and message."""
    classifier = Classifier()
    classifier.classify(first)
    assert category == classifier.classify(second).category
