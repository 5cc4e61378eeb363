"""
The layer inside: clients that retry inside one call (an SDK, an HTTP client's ``Retry``).

``inner_retries(outcome)`` tells whether the client that raised a failure (or returned a retried
response) already retried inside the call, how many requests it sent and how to switch its retries
off. It reads, in this order of trust:

1. a counter the client leaves on what reaches the caller: a request header (Stainless SDKs'
   ``x-stainless-retry-count``), a response attribute (botocore's ``RetryAttempts``,
   httpx-retries' ``extensions["retry"]``, urllib3's ``retries.history``), a "gave up" container
   (elastic-transport's ``TransportError.errors``);
2. the frames of the client's retry loop in the traceback of every exception of the cause chain
   (redis-py's ``call_with_retry``, google-api-core's ``retry_target``, ...): the locals that count;
3. the client's configuration, reached from such a frame, where nothing travels with the error
   (Elasticsearch status errors, stripe status errors).

A miss is "unknown" (retrykit decides as if nothing retried inside), never an error: nothing here
can raise into the caller. The private names read are the clients' own (see the table of
``docs/one-layer.md``), keyed by module, function and local name.
"""

from __future__ import annotations

import re
import sys
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from types import CodeType, FrameType, TracebackType
from typing import Any, TypeAlias

from ._categories import Classification, attr, header, module_of
from ._errors import ConfigError, callable_name

_MAX_LINKS = 16
_MAX_FRAMES = 200


@dataclass(frozen=True, slots=True)
class InnerRetries:
    """
    A client retried inside the call: which, how many requests it sent, how to switch it off.

    ``Classification.inner`` holds one when retrykit recognised such a client (see the one-layer
    rule); the note, the log line and ``retrykit.explain()`` say it too.

    Args:
        client: The client that retried (``"openai"``, ``"botocore"``, ``"redis-py"``, ...).
        attempts: Requests the client sent in this call (1: it did not retry).
        evidence: Where the count was read (a header, an attribute, a frame's local, the
            configuration).
        switch_off: How to hand retrying to retrykit: the client option that turns its
            retries off.
    """

    client: str
    """The client that retried (``"openai"``, ``"botocore"``, ``"redis-py"``, ...)."""
    attempts: int
    """Requests the client sent in this call (1: it did not retry)."""
    evidence: str
    """Where the count was read (a header, an attribute, a frame's local, the configuration)."""
    switch_off: str
    """How to hand retrying to retrykit: the client option that turns its retries off."""

    def describe(self) -> str:
        """One phrase for notes, logs and ``explain()``."""
        return (
            f"{self.client} retried inside the call: {self.attempts} requests "
            f"(from {self.evidence}); to let retrykit retry instead: {self.switch_off}"
        )


Counter: TypeAlias = Callable[[BaseException], "int | None"]
"""Reads the requests a client sent from its exception (None: it cannot tell)."""
FrameCounter: TypeAlias = Callable[[FrameType, TracebackType], "int | None"]


@dataclass(frozen=True, slots=True)
class InnerRetrier:
    """
    A client that retries inside a call, declared by the user (``retrykit.inner_retrier``).

    An exception of one of *types* (or with the client's frame *frame* in its traceback) came out
    of the client's retry loop; *attempts* reads how many requests it sent, else
    *attempts_per_call* is assumed (the client spent its retries).
    """

    client: str
    switch_off: str
    types: tuple[type[BaseException], ...] = ()
    attempts: Counter | None = None
    frame: tuple[str, str, str] | None = None
    attempts_per_call: int | None = None


_user: tuple[InnerRetrier, ...] = ()


def inner_retrier(
    client: str,
    *,
    switch_off: str,
    types: type[BaseException] | Iterable[type[BaseException]] = (),
    attempts: Counter | None = None,
    frame: tuple[str, str, str] | None = None,
    attempts_per_call: int | None = None,
) -> InnerRetrier:
    """
    Declare a client that retries inside a call, so retrykit counts its requests (one layer).

    Args:
        client: The client's name, as notes, logs and ``explain()`` will say it.
        switch_off: How to turn its retries off (e.g. ``"MyClient(retries=0)"``), said once
            per operation when retrykit sees it retry.
        types: The exceptions it raises after retrying (its "gave up" errors).
        attempts: Reads the requests it sent from such an exception (None: it cannot tell).
        frame: ``(module, function, local)``: a frame of its retry loop found in the traceback,
            whose *local* holds the number of requests sent so far.
        attempts_per_call: The requests it sends at most per call, assumed when the count
            cannot be read.

    Returns:
        The declaration, registered for every policy (in this process).

    Raises:
        ConfigError: a wrong type or a missing field, naming the argument and the fix.
    """
    found = _checked(client, switch_off, types, attempts, frame, attempts_per_call)
    declared = InnerRetrier(client, switch_off, found, attempts, frame, attempts_per_call)
    global _user
    _user = (*_user, declared)
    _rebuild_frames()
    return declared


def _checked(
    client: str,
    switch_off: str,
    types: type[BaseException] | Iterable[type[BaseException]],
    attempts: Counter | None,
    frame: tuple[str, str, str] | None,
    attempts_per_call: int | None,
) -> tuple[type[BaseException], ...]:
    """``inner_retrier``'s arguments checked (a ``ConfigError`` names the wrong one); the types."""
    _text("client", client, "e.g. client='mysdk'")
    _text("switch_off", switch_off, "e.g. switch_off='MySDK(max_retries=0)'")
    found = _exception_classes(types)
    if attempts is not None and not callable(attempts):
        raise ConfigError("attempts", attempts, "must be callable", "pass a function exc -> int | None")
    _check_frame(frame)
    if attempts_per_call is not None and (
        isinstance(attempts_per_call, bool) or not isinstance(attempts_per_call, int) or attempts_per_call < 1
    ):
        raise ConfigError(
            "attempts_per_call",
            attempts_per_call,
            "must be a whole number >= 1",
            "pass e.g. attempts_per_call=3",
        )
    _check_recognisable(client, found, frame, attempts, attempts_per_call)
    return found


def _exception_classes(types: object) -> tuple[type[BaseException], ...]:
    """``inner_retrier``'s *types*: one exception class or several, as a tuple."""
    kinds = (types,) if isinstance(types, type) else types
    if isinstance(kinds, (str, bytes)) or not isinstance(kinds, Iterable):
        raise ConfigError("types", types, "must be exception classes", "pass e.g. types=(MySDKGaveUp,)")
    found = tuple(kinds)
    for kind in found:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise ConfigError("types", types, "must be exception classes", "pass e.g. types=(MySDKGaveUp,)")
    return found


def _check_frame(frame: object) -> None:
    """``inner_retrier``'s *frame*, if given, names a module, a function and one of its locals."""
    if frame is not None and not (
        isinstance(frame, tuple) and len(frame) == 3 and all(isinstance(p, str) and p for p in frame)
    ):
        raise ConfigError(
            "frame",
            frame,
            "must be a (module, function, local) tuple of names",
            "pass e.g. frame=('mysdk._http', 'send', 'attempt')",
        )


def _check_recognisable(
    client: str,
    found: tuple[type[BaseException], ...],
    frame: tuple[str, str, str] | None,
    attempts: Counter | None,
    attempts_per_call: int | None,
) -> None:
    """The declaration can recognise the client's failures, and count the requests behind them."""
    if not found and frame is None:
        raise ConfigError(
            "inner_retrier",
            client,
            "needs types= or frame= to recognise the client's failures",
            "pass types=(TheErrorItRaisesAfterRetrying,) or frame=(module, function, local)",
        )
    if found and attempts is None and attempts_per_call is None:
        raise ConfigError(
            "attempts_per_call",
            None,
            "is needed when types= is given without attempts=: how many requests did it send?",
            "pass attempts=lambda exc: exc.tries, or attempts_per_call=3",
        )


def forget_inner_retriers() -> None:
    """Remove every declaration made with ``inner_retrier`` (tests)."""
    global _user
    _user = ()
    _rebuild_frames()


def _text(argument: str, value: object, example: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(argument, value, "must be a non-empty str", f"pass {example}")


# --------------------------------------------------------------------------- reading values


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        text = text.strip()
        if text.isdigit() and len(text) < 7:
            return int(text)
    return None


def _len(value: object) -> int | None:
    if isinstance(value, (list, tuple)):
        return len(value)
    return None


def _local(frame: FrameType, name: str) -> Any:
    try:
        return frame.f_locals.get(name)
    except Exception:
        return None


def _default(value: object) -> bool:
    """elastic-transport's DEFAULT sentinel (a per-call option left unset)."""
    return type(value).__name__ == "DefaultType"


# --------------------------------------------------------------------------- built-in clients

_STAINLESS = re.compile(r"^(openai|anthropic)\b")
_SWITCH = {
    "openai": "OpenAI(max_retries=0), or client.with_options(max_retries=0) for one call",
    "anthropic": "Anthropic(max_retries=0), or client.with_options(max_retries=0) for one call",
    "botocore": 'botocore.config.Config(retries={"total_max_attempts": 1}) (or AWS_MAX_ATTEMPTS=1)',
    "urllib3": "urllib3.PoolManager(retries=False), or HTTPAdapter() without max_retries in requests",
    "httpx-retries": "httpx_retries.Retry(total=0), or drop the RetryTransport",
    "httpx": "httpx.HTTPTransport(retries=0) (the default)",
    "aiohttp-retry": "ExponentialRetry(attempts=1), or a plain aiohttp.ClientSession",
    "redis-py": "Redis(retry=None), or retry=Retry(NoBackoff(), 0)",
    "elasticsearch": "Elasticsearch(max_retries=0, retry_on_status=()), or es.options(max_retries=0)",
    "stripe": 'StripeClient(max_network_retries=0), or options={"max_network_retries": 0}',
    "google-api-core": "retry=None on the call",
    "azure-core": "retry_total=0 on the call, or RetryPolicy.no_retries()",
    "kombu": "max_retries=0 on ensure_connection()/ensure()",
    "pika": "ConnectionParameters(connection_attempts=1) (the default)",
}


def _stainless(exc: BaseException) -> InnerRetries | None:
    """openai, anthropic (and their async clients): the retry count header on the last request."""
    match = _STAINLESS.match(module_of(type(exc)))
    if match is None:
        return None
    try:
        request = exc.request  # type: ignore[attr-defined]
    except Exception:
        return None
    count = _int(header(attr(request, "headers"), "x-stainless-retry-count"))
    if count is None:
        return None
    client = match.group(1)
    return InnerRetries(client, count + 1, "the x-stainless-retry-count request header", _SWITCH[client])


def _botocore(exc: BaseException) -> InnerRetries | None:
    """botocore's ``ClientError``: ``response["ResponseMetadata"]["RetryAttempts"]``."""
    if not module_of(type(exc)).startswith("botocore"):
        return None
    response = attr(exc, "response")
    meta = response.get("ResponseMetadata") if isinstance(response, dict) else None
    count = _int(meta.get("RetryAttempts")) if isinstance(meta, dict) else None
    if count is None:
        return None
    return InnerRetries("botocore", count + 1, 'ResponseMetadata["RetryAttempts"]', _SWITCH["botocore"])


def _elastic(exc: BaseException) -> InnerRetries | None:
    """elastic-transport's ``TransportError.errors``: the earlier attempts' errors."""
    if not module_of(type(exc)).startswith("elastic_transport"):
        return None
    count = _len(attr(exc, "errors"))
    if count is None:
        return None
    return InnerRetries("elasticsearch", count + 1, "TransportError.errors", _SWITCH["elasticsearch"])


def _response_count(response: Any) -> tuple[str, int, str] | None:
    """The retries recorded on an HTTP response: (client, requests, where)."""
    extensions = attr(response, "extensions")
    if isinstance(extensions, dict):
        retry = extensions.get("retry")
        made = _int(attr(retry, "attempts_made")) if retry is not None else None
        if made is not None:
            return "httpx-retries", made + 1, 'response.extensions["retry"].attempts_made'
    retries = attr(response, "retries")  # urllib3's HTTPResponse
    if retries is None:
        raw = attr(response, "raw")  # requests' Response
        retries = attr(raw, "retries") if raw is not None else None
    history = _len(attr(retries, "history")) if retries is not None else None
    if history:
        return "urllib3", history + 1, "response.retries.history"
    return None


def _status_response(exc: BaseException) -> InnerRetries | None:
    """An HTTP status error whose response recorded the retries (httpx-retries, urllib3)."""
    found = _response_count(attr(exc, "response"))
    if found is None:
        return None
    client, attempts, where = found
    return InnerRetries(client, attempts, where, _SWITCH[client])


Reader: TypeAlias = Callable[[BaseException], "InnerRetries | None"]
_BY_MODULE: tuple[tuple[tuple[str, ...], Reader], ...] = (
    (("openai", "anthropic"), _stainless),
    (("botocore",), _botocore),
    (("elastic_transport",), _elastic),
)
_NONE: tuple[Reader, ...] = ()
_readers_by_class: weakref.WeakKeyDictionary[type, tuple[Reader, ...]] = weakref.WeakKeyDictionary()


def _readers(cls: type) -> tuple[Reader, ...]:
    """The attribute readers that apply to exceptions of *cls* (by the modules of its classes)."""
    if cls.__module__ == "builtins":
        return _NONE
    found = _readers_by_class.get(cls)
    if found is None:
        tops = {module_of(klass).split(".", 1)[0] for klass in cls.__mro__}
        found = tuple(reader for prefixes, reader in _BY_MODULE if tops.intersection(prefixes))
        found = (*found, _status_response)  # any library's status error may hold its response
        _readers_by_class[cls] = found
    return found


def _urllib3_frames(frame: FrameType, tb: TracebackType) -> int | None:
    """
    urllib3's ``urlopen`` calls itself once per retry: count its frames (each once: a frame that
    re-raises inside itself, as a TLS failure does, stands twice in the traceback).
    """
    frames: set[int] = set()
    node: TracebackType | None = tb
    while node is not None:
        each = node.tb_frame
        if each.f_code.co_name == "urlopen" and each.f_globals.get("__name__") == "urllib3.connectionpool":
            frames.add(id(each))
        node = node.tb_next
    return len(frames)


def _httpcore_connect(frame: FrameType, tb: TracebackType) -> int | None:
    left = _int(_local(frame, "retries_left"))
    total = _int(attr(_local(frame, "self"), "_retries"))
    return None if left is None or total is None else total - left + 1


def _plus_one(name: str) -> FrameCounter:
    def read(frame: FrameType, tb: TracebackType) -> int | None:
        value = _int(_local(frame, name))
        return None if value is None else value + 1

    return read


def _as_is(name: str) -> FrameCounter:
    def read(frame: FrameType, tb: TracebackType) -> int | None:
        return _int(_local(frame, name))

    return read


def _length(name: str) -> FrameCounter:
    def read(frame: FrameType, tb: TracebackType) -> int | None:
        return _len(_local(frame, name))

    return read


def _httpx_retries(frame: FrameType, tb: TracebackType) -> int | None:
    made = _int(attr(_local(frame, "retry"), "attempts_made"))
    return None if made is None else made + 1


def _azure(frame: FrameType, tb: TracebackType) -> int | None:
    settings = _local(frame, "retry_settings")
    return _len(settings.get("history")) if isinstance(settings, dict) else None


def _pika(frame: FrameType, tb: TracebackType) -> int | None:
    return _len(attr(_local(frame, "error"), "exceptions"))


def _elastic_config(frame: FrameType, tb: TracebackType) -> int | None:
    """Elasticsearch returned a status it retries: it spent max_retries (nothing else tells)."""
    client = _local(frame, "self")
    meta = _local(frame, "meta")
    status = _int(attr(meta, "status"))
    if client is None or status is None:
        return None
    transport = attr(client, "transport") or attr(client, "_transport")
    retries = attr(client, "_max_retries")
    if retries is None or _default(retries):
        retries = attr(transport, "max_retries")
    statuses = attr(client, "_retry_on_status")
    if statuses is None or _default(statuses):
        statuses = attr(transport, "retry_on_status")
    retries = _int(retries)
    try:
        retried = status in statuses
    except Exception:
        return None
    return retries + 1 if retries is not None and retried else None


def _stripe_config(frame: FrameType, tb: TracebackType) -> int | None:
    """stripe returned a status it retries (409, >= 500): it spent max_network_retries."""
    requestor = _local(frame, "requestor")
    code = _int(_local(frame, "rcode"))
    headers = _local(frame, "rheaders")
    if requestor is None or code is None or not (code == 409 or code >= 500):
        return None
    should = header(headers, "stripe-should-retry") if headers is not None else None
    if should == "false":
        return 1
    options = attr(requestor, "_options")
    retries = _int(attr(options, "max_network_retries"))
    if retries is None:
        import sys

        module = sys.modules.get("stripe")
        retries = _int(attr(module, "max_network_retries")) if module is not None else None
    return None if retries is None else retries + 1


# (module, function) -> (client, what it reads, counter)
_FRAME_TABLE: dict[tuple[str, str], tuple[str, str, FrameCounter]] = {
    ("openai._base_client", "request"): ("openai", "retries_taken", _plus_one("retries_taken")),
    ("anthropic._base_client", "_request"): ("anthropic", "retries_taken", _plus_one("retries_taken")),
    ("botocore.endpoint", "_send_request"): ("botocore", "attempts", _as_is("attempts")),
    ("urllib3.connectionpool", "urlopen"): ("urllib3", "urlopen frames", _urllib3_frames),
    ("httpcore._sync.connection", "_connect"): ("httpx", "retries_left", _httpcore_connect),
    ("httpcore._async.connection", "_connect"): ("httpx", "retries_left", _httpcore_connect),
    ("httpx_retries.transport", "_retry_operation"): ("httpx-retries", "retry", _httpx_retries),
    ("httpx_retries.transport", "_retry_operation_async"): ("httpx-retries", "retry", _httpx_retries),
    ("aiohttp_retry.client", "_do_request"): ("aiohttp-retry", "current_attempt", _as_is("current_attempt")),
    ("redis.retry", "call_with_retry"): ("redis-py", "failures", _as_is("failures")),
    ("redis.asyncio.retry", "call_with_retry"): ("redis-py", "failures", _as_is("failures")),
    ("elastic_transport._transport", "perform_request"): ("elasticsearch", "attempt", _plus_one("attempt")),
    ("elastic_transport._async_transport", "perform_request"): (
        "elasticsearch",
        "attempt",
        _plus_one("attempt"),
    ),
    ("elasticsearch._sync.client._base", "_perform_request"): (
        "elasticsearch",
        "the client's max_retries and retry_on_status",
        _elastic_config,
    ),
    ("elasticsearch._async.client._base", "_perform_request"): (
        "elasticsearch",
        "the client's max_retries and retry_on_status",
        _elastic_config,
    ),
    ("stripe._http_client", "_request_with_retries_internal"): (
        "stripe",
        "num_retries",
        _plus_one("num_retries"),
    ),
    ("stripe._http_client", "_request_with_retries_internal_async"): (
        "stripe",
        "num_retries",
        _plus_one("num_retries"),
    ),
    ("stripe._api_requestor", "request"): ("stripe", "the client's max_network_retries", _stripe_config),
    ("stripe._api_requestor", "request_async"): (
        "stripe",
        "the client's max_network_retries",
        _stripe_config,
    ),
    ("google.api_core.retry.retry_unary", "retry_target"): (
        "google-api-core",
        "error_list",
        _length("error_list"),
    ),
    ("google.api_core.retry.retry_unary_async", "retry_target"): (
        "google-api-core",
        "error_list",
        _length("error_list"),
    ),
    ("azure.core.pipeline.policies._retry", "send"): ("azure-core", "retry_settings", _azure),
    ("azure.core.pipeline.policies._retry_async", "send"): ("azure-core", "retry_settings", _azure),
    ("kombu.utils.functional", "retry_over_time"): ("kombu", "retries", _plus_one("retries")),
    ("pika.adapters.blocking_connection", "_create_connection"): ("pika", "error", _pika),
}
_frames: dict[tuple[str, str], tuple[str, str, FrameCounter, str]] = {}
# The frame table's entry for each code object seen in a traceback (None: not a retrying client's
# frame): a traceback of the caller's own frames is checked by one lookup per frame. Bounded.
_by_code: dict[CodeType, tuple[str, str, FrameCounter, str] | None] = {}
_BY_CODE_SIZE = 4096
_frame_modules: frozenset[str] = frozenset()


class _Loaded:
    """
    Whether a module of the frame table is imported, as last looked at: a frame runs in an
    imported module, so with none of them imported no traceback is walked.
    """

    __slots__ = ("imported", "modules")

    def __init__(self) -> None:
        self.modules: int = -1
        """``len(sys.modules)`` when last looked at (-1: look again)."""
        self.imported: bool = False
        """Whether a module of the frame table was imported then."""


_loaded = _Loaded()


def _table_imported() -> None:
    """Look again whether a module of the frame table is imported (``_loaded``)."""
    modules = sys.modules
    _loaded.modules = len(modules)
    _loaded.imported = not _frame_modules.isdisjoint(modules)


_UNSEEN: Any = object()


def _rebuild_frames() -> None:
    table = {
        key: (client, what, counter, _SWITCH[client]) for key, (client, what, counter) in _FRAME_TABLE.items()
    }
    for declared in _user:
        if declared.frame is not None:
            module, function, local = declared.frame
            table[(module, function)] = (declared.client, local, _as_is(local), declared.switch_off)
    global _frames, _frame_modules
    _frames = table
    _frame_modules = frozenset(module for module, _ in table)
    _by_code.clear()
    _loaded.modules = -1


_rebuild_frames()


# --------------------------------------------------------------------------- detection


def _links(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(links) < _MAX_LINKS and current not in links:
        links.append(current)
        nxt = current.__cause__
        if nxt is None and not current.__suppress_context__:
            nxt = current.__context__
        if nxt is None:
            args = current.args
            if args and isinstance(args[0], BaseException):  # requests wraps urllib3's error as args[0]
                nxt = args[0]
        current = nxt
    return links


def _better(found: InnerRetries | None, other: InnerRetries | None) -> InnerRetries | None:
    if other is None:
        return found
    if found is None or other.attempts > found.attempts:
        return other
    return found


def _from_user(link: BaseException) -> InnerRetries | None:
    best: InnerRetries | None = None
    for declared in _user:
        if declared.types and isinstance(link, declared.types):
            count: int | None = None
            if declared.attempts is not None:
                try:
                    count = _int(declared.attempts(link))
                except Exception:
                    count = None
            if count is None:
                count = declared.attempts_per_call
            if count is not None and count >= 1:
                reader = callable_name(declared.attempts) if declared.attempts else "attempts_per_call"
                best = _better(best, InnerRetries(declared.client, count, reader, declared.switch_off))
    return best


def _from_frames(link: BaseException) -> InnerRetries | None:
    if len(sys.modules) != _loaded.modules:
        _table_imported()
    if not _loaded.imported:
        return None  # no retrying client's module is imported: none of its frames can be here
    best: InnerRetries | None = None
    tb = link.__traceback__
    seen = 0
    table = _frames
    by_code = _by_code
    while tb is not None and seen < _MAX_FRAMES:
        seen += 1
        frame = tb.tb_frame
        code = frame.f_code
        entry = by_code.get(code, _UNSEEN)
        if entry is _UNSEEN:
            entry = table.get((frame.f_globals.get("__name__", ""), code.co_name))
            if len(by_code) >= _BY_CODE_SIZE:
                by_code.clear()
            by_code[code] = entry
        if entry is not None:
            client, what, counter, switch_off = entry
            count = counter(frame, tb)
            if count is not None and count >= 1:
                where = f"frame {frame.f_globals.get('__name__')}.{frame.f_code.co_name} ({what})"
                best = _better(best, InnerRetries(client, count, where, switch_off))
        tb = tb.tb_next
    return best


def inner_retries(outcome: Any, failed: bool = True) -> InnerRetries | None:
    """
    How the client inside the call retried before *outcome* reached retrykit (None: it did not
    say, or it did not retry). Never raises.
    """
    try:
        if not failed:
            found = _response_count(outcome)
            if found is None:
                return None
            client, attempts, where = found
            return InnerRetries(client, attempts, where, _SWITCH[client]) if attempts > 1 else None
        if (
            outcome.__cause__ is None
            and outcome.__context__ is None
            and not _user
            and type(outcome).__module__ == "builtins"
            and not (outcome.args and isinstance(outcome.args[0], BaseException))
        ):  # one plain link (the usual failure): only its traceback can tell
            framed = _from_frames(outcome)
            return framed if framed is not None and framed.attempts > 1 else None
        best: InnerRetries | None = None
        for link in _links(outcome):
            for reader in _readers(type(link)):
                best = _better(best, reader(link))
            if _user:
                best = _better(best, _from_user(link))
            best = _better(best, _from_frames(link))
    except Exception:
        return None
    return best if best is not None and best.attempts > 1 else None


def attach(classification: Classification, outcome: Any, failed: bool = True) -> Classification:
    """*classification*, with the client that retried inside the call if one did."""
    inner = inner_retries(outcome, failed)
    return classification if inner is None else replace(classification, inner=inner)
