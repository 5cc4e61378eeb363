"""
Rule family: HTTP clients (httpx, requests, urllib3, aiohttp, urllib). Every status is mapped;
client-side failures that repeat (bad URL, unsupported scheme, redirect loop) are permanent; the
server's wait hint is read wherever the client keeps its headers; and a failure after which the
server may already have applied a non-idempotent request is flagged ``replay_unsafe``.
"""

from __future__ import annotations

import re
from typing import Any

from ._categories import (
    CLASS,
    CODE,
    DATA,
    GENERIC,
    NET,
    PERM,
    RATE,
    TEMP,
    WRAPPER,
    ErrorCategory,
    Hit,
    attr,
    by_class,
    header,
    hit,
    module_of,
    parse_retry_after,
    top_module,
    wait_from_headers,
)

PREFIXES = ("httpx", "httpcore", "httpx2", "httpcore2", "requests", "urllib3", "aiohttp", "urllib.error")
# httpx2/httpcore2 (the fork openai's SDK sends with) raise the same classes as httpx/httpcore
_SAME_AS = {"httpx2": "httpx", "httpcore2": "httpcore", "urllib": "urllib.error"}

# RFC 9110 section 15: only 408 (request timeout), 425 (too early), 429 (too many requests) and
# 5xx other than 501 (not implemented) and 505 (version not supported) can succeed unchanged; this
# is also urllib3's Retry.RETRY_AFTER_STATUS_CODES plus the 5xx that proxies emit.
_DATA_STATUSES = frozenset({400, 413, 414, 415, 416, 422, 431})


def status_category(code: int) -> ErrorCategory:
    """The category of an HTTP status."""
    if code == 429:
        return RATE
    if code in (408, 425) or (500 <= code <= 599 and code not in (501, 505)):
        return TEMP
    if code in _DATA_STATUSES:
        return DATA
    return PERM


def _as_status(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


_URLLIB3_TOO_MANY = re.compile(r"too many (\d{3}) error responses")


def http_status(exc: BaseException) -> int | None:
    """
    The HTTP status an exception carries, found by duck typing.

    ``exc.response.status_code`` (httpx, requests), ``exc.response.status``, ``exc.status``
    (aiohttp), ``exc.status_code``, ``exc.code`` on urllib's ``HTTPError`` and google-api-core's
    errors, botocore's ``response["ResponseMetadata"]["HTTPStatusCode"]``.
    """
    response = attr(exc, "response")
    if response is not None:
        if isinstance(response, dict):
            meta = response.get("ResponseMetadata")
            if isinstance(meta, dict):
                return _as_status(meta.get("HTTPStatusCode"))
            return None
        for name in ("status_code", "status"):
            code = _as_status(attr(response, name))
            if code is not None:
                return code
    for name in ("status", "status_code"):
        code = _as_status(attr(exc, name))
        if code is not None:
            return code
    module = module_of(type(exc))
    if module.startswith(("urllib.error", "google.api_core")):
        return _as_status(attr(exc, "code"))
    return None


def headers_of(exc: BaseException) -> Any:
    """Where the client keeps the response headers."""
    response = attr(exc, "response")
    if isinstance(response, dict):
        meta = response.get("ResponseMetadata")
        return meta.get("HTTPHeaders") if isinstance(meta, dict) else None
    found = attr(response, "headers") if response is not None else None
    return found if found is not None else attr(exc, "headers")


def retry_after_of(exc: BaseException) -> float | None:
    """The server's wait hint: a ``retry_after`` attribute, or ``Retry-After`` and friends."""
    own = attr(exc, "retry_after")
    if own is not None and not callable(own):
        return parse_retry_after(own)
    return wait_from_headers(headers_of(exc))


def status(exc: BaseException) -> Hit | None:
    """An HTTP status on the exception or its response (any client, and user errors alike)."""
    code = http_status(exc)
    if code is None:
        message = _URLLIB3_TOO_MANY.search(str(exc)) if module_of(type(exc)).startswith("urllib3") else None
        if message is None:
            return None
        code = int(message.group(1))
    if 200 <= code <= 299:  # the server answered; what failed was the client's reading of it
        return None
    return hit(CODE, status_category(code), f"HTTP {code}", "http_status", retry_after_of(exc))


# Client-side failures by class (module prefix, class name): the most derived match wins.
_CLASSES: dict[tuple[str, str], tuple[int, ErrorCategory, str]] = {
    # permanent: the URL, scheme or redirect chain will be the same next time
    ("httpx", "UnsupportedProtocol"): (CLASS, PERM, "unsupported URL scheme"),
    ("httpx", "InvalidURL"): (CLASS, PERM, "invalid URL"),
    ("httpx", "TooManyRedirects"): (CLASS, PERM, "redirect loop"),
    ("httpx", "LocalProtocolError"): (CLASS, PERM, "the client built an invalid request"),
    ("httpx", "DecodingError"): (CLASS, DATA, "undecodable response body"),
    ("httpx", "StreamError"): (CLASS, PERM, "stream misuse"),
    ("httpcore", "UnsupportedProtocol"): (CLASS, PERM, "unsupported URL scheme"),
    ("httpcore", "LocalProtocolError"): (CLASS, PERM, "the client built an invalid request"),
    ("requests", "InvalidURL"): (CLASS, PERM, "invalid URL"),
    ("requests", "InvalidSchema"): (CLASS, PERM, "unsupported URL scheme"),
    ("requests", "MissingSchema"): (CLASS, PERM, "URL has no scheme"),
    ("requests", "URLRequired"): (CLASS, PERM, "no URL"),
    ("requests", "TooManyRedirects"): (CLASS, PERM, "redirect loop"),
    ("requests", "InvalidHeader"): (CLASS, PERM, "invalid header"),
    ("requests", "InvalidJSONError"): (CLASS, DATA, "body is not JSON"),
    ("requests", "ContentDecodingError"): (CLASS, DATA, "undecodable response body"),
    ("urllib3", "LocationParseError"): (CLASS, PERM, "invalid URL"),
    ("urllib3", "LocationValueError"): (CLASS, PERM, "invalid URL"),
    ("urllib3", "URLSchemeUnknown"): (CLASS, PERM, "unsupported URL scheme"),
    ("urllib3", "ProxySchemeUnknown"): (CLASS, PERM, "unsupported proxy scheme"),
    ("urllib3", "DecodeError"): (CLASS, DATA, "undecodable response body"),
    ("aiohttp", "InvalidURL"): (CLASS, PERM, "invalid URL"),
    ("aiohttp", "NonHttpUrlClientError"): (CLASS, PERM, "unsupported URL scheme"),
    ("aiohttp", "InvalidUrlClientError"): (CLASS, PERM, "invalid URL"),
    ("aiohttp", "TooManyRedirects"): (CLASS, PERM, "redirect loop"),
    ("aiohttp", "ClientConnectorCertificateError"): (CLASS, PERM, "TLS certificate verification failed"),
    ("aiohttp", "ContentTypeError"): (CLASS, DATA, "unexpected content type"),
    # the network: the request may not have been served
    ("httpx", "TimeoutException"): (GENERIC, NET, "timed out"),
    ("httpx", "NetworkError"): (GENERIC, NET, "network failure"),
    ("httpx", "RemoteProtocolError"): (GENERIC, NET, "server broke the protocol or closed early"),
    ("httpx", "ProxyError"): (GENERIC, NET, "proxy failure"),
    ("httpcore", "TimeoutException"): (GENERIC, NET, "timed out"),
    ("httpcore", "NetworkError"): (GENERIC, NET, "network failure"),
    ("httpcore", "RemoteProtocolError"): (GENERIC, NET, "server broke the protocol or closed early"),
    ("requests", "ConnectionError"): (GENERIC, NET, "network failure"),
    ("requests", "Timeout"): (GENERIC, NET, "timed out"),
    ("requests", "ChunkedEncodingError"): (GENERIC, NET, "response cut short"),
    ("urllib3", "TimeoutError"): (GENERIC, NET, "timed out"),
    ("urllib3", "ProtocolError"): (GENERIC, NET, "connection broken"),
    ("urllib3", "NewConnectionError"): (GENERIC, NET, "cannot connect"),
    ("urllib3", "MaxRetryError"): (WRAPPER, NET, "urllib3 gave up"),
    ("aiohttp", "ClientConnectionError"): (GENERIC, NET, "network failure"),
    ("aiohttp", "ClientPayloadError"): (GENERIC, NET, "response cut short"),
    ("aiohttp", "ServerTimeoutError"): (GENERIC, NET, "timed out"),
    ("urllib.error", "URLError"): (WRAPPER, NET, "URL could not be fetched"),
}


def static(cls: type) -> Hit | None:
    """HTTP client failures that depend on the class alone."""
    return by_class(_CLASSES, cls, "http_client", _http_top)


def _http_top(module: str) -> str:
    top = top_module(module)
    return _SAME_AS.get(top, top)


# ------------------------------------------------------------------ replay safety

_NON_IDEMPOTENT = frozenset({"POST", "PATCH"})
# Failures before the request left: nothing reached the server, a retry is always safe.
_BEFORE_SEND = frozenset(
    {
        "ConnectError",
        "ConnectTimeout",
        "PoolTimeout",
        "NewConnectionError",
        "ConnectTimeoutError",
        "NameResolutionError",
        "ConnectionRefusedError",
        "ClientConnectorError",
        "gaierror",
        "UnsupportedProtocol",
        "InvalidURL",
        "SSLCertVerificationError",
    }
)
# Failures after (part of) the request was sent: the server may have acted on it.
_AFTER_SEND = frozenset(
    {
        "ReadTimeout",
        "ReadError",
        "WriteTimeout",
        "WriteError",
        "RemoteProtocolError",
        "ReadTimeoutError",
        "ProtocolError",
        "ChunkedEncodingError",
        "RemoteDisconnected",
        "IncompleteRead",
        "ConnectionResetError",
        "BrokenPipeError",
        "ServerDisconnectedError",
        "ClientPayloadError",
        "ServerTimeoutError",
    }
)


def _request_of(exc: BaseException) -> Any:
    try:
        return exc.request  # type: ignore[attr-defined]  # httpx's property raises when unset
    except Exception:
        return None


def replay_unsafe(links: list[BaseException]) -> bool:
    """Whether a request carried by the chain may have been applied and is not idempotent."""
    method = None
    headers = None
    for link in links:
        request = _request_of(link)
        if request is not None:
            method = attr(request, "method")
            headers = attr(request, "headers")
            break
    if isinstance(method, bytes):
        method = method.decode("ascii", "replace")
    if not isinstance(method, str) or method.upper() not in _NON_IDEMPOTENT:
        return False
    if headers is not None and header(headers, "Idempotency-Key"):
        return False
    names = {klass.__name__ for link in links for klass in type(link).__mro__}
    if names & _BEFORE_SEND:
        return False
    return bool(names & _AFTER_SEND)


_URLLIB_PERMANENT = re.compile(r"unknown url type|no host given|nonnumeric port", re.I)


def urllib_reason(exc: BaseException) -> Hit | None:
    """urllib's ``URLError`` with a text reason that will not change (unknown scheme, no host)."""
    if module_of(type(exc)) != "urllib.error":
        return None
    reason = attr(exc, "reason")
    if isinstance(reason, str) and _URLLIB_PERMANENT.search(reason):
        return hit(CLASS, PERM, f"URLError: {reason}", "http_client")
    return None


DYNAMIC = (status, urllib_reason)
