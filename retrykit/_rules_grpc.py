"""
Rule family: gRPC (``grpc`` sync and ``grpc.aio``) and google-api-core's exceptions. The status
code decides, following gRPC's own guidance (grpc.io "Status codes and their use in gRPC"): only
``UNAVAILABLE`` says the call can simply be sent again (the network), ``DEADLINE_EXCEEDED``,
``ABORTED``, ``INTERNAL`` and ``UNKNOWN`` are transient server conditions, ``RESOURCE_EXHAUSTED``
is a quota (rate limit) unless it is a message-size limit, and every code about the request itself
(``INVALID_ARGUMENT``, ``NOT_FOUND``, ``PERMISSION_DENIED``, ...) repeats unchanged. The server's
``grpc-retry-pushback-ms`` trailing metadata is the wait hint.
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
)

PREFIXES = ("grpc", "google.api_core")

# gRPC status code name -> category.
STATUS: dict[str, ErrorCategory] = {
    "UNAVAILABLE": NET,  # the server cannot be reached or is shutting down: send it again
    "DEADLINE_EXCEEDED": TEMP,  # the call took too long; it may have completed on the server
    "ABORTED": TEMP,  # concurrency conflict: retry the read-modify-write sequence
    "INTERNAL": TEMP,  # a broken invariant on the server (gRPC: the server's own failure)
    "UNKNOWN": TEMP,  # an exception in the server's handler, the gRPC analogue of HTTP 500
    "RESOURCE_EXHAUSTED": RATE,  # a quota; a message-size limit is told apart below
    "INVALID_ARGUMENT": DATA,
    "OUT_OF_RANGE": DATA,
    "NOT_FOUND": PERM,
    "ALREADY_EXISTS": PERM,
    "PERMISSION_DENIED": PERM,
    "UNAUTHENTICATED": PERM,
    "FAILED_PRECONDITION": PERM,  # gRPC: "do not retry until the system state has been fixed"
    "UNIMPLEMENTED": PERM,
    "DATA_LOSS": PERM,
    "CANCELLED": PERM,  # cancelled by the caller: retrying would undo the caller's decision
}

# RESOURCE_EXHAUSTED raised by a message-size limit (either side's max_send/max_receive length):
# the same message is too large next time as well.
_MESSAGE_SIZE = re.compile(
    r"message larger than max|message too large|max(imum)?[ _]message[ _](size|length)", re.IGNORECASE
)


def _name(code: Any) -> str | None:
    """The name of a status code: a ``grpc.StatusCode`` member, its name, or its number."""
    name = attr(code, "name")
    if isinstance(name, str):
        return name
    if isinstance(code, str):
        return code.upper()
    if isinstance(code, int) and not isinstance(code, bool):
        return _BY_NUMBER.get(code)
    return None


_BY_NUMBER = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}  # fmt: skip


def pushback(call: Any) -> float | None:
    """``grpc-retry-pushback-ms`` from a call's trailing metadata (sync tuples or aio ``Metadata``)."""
    getter = attr(call, "trailing_metadata")
    if not callable(getter):
        return None
    metadata = getter()
    if metadata is None:
        return None
    raw = header(metadata, "grpc-retry-pushback-ms") if attr(metadata, "get") is not None else None
    if raw is None and attr(metadata, "get") is None:
        for item in metadata:
            if isinstance(item, tuple) and len(item) == 2 and item[0] == "grpc-retry-pushback-ms":
                raw = item[1]
                break
    seconds = parse_retry_after(raw)
    return None if seconds is None else seconds / 1000.0


def _status_hit(name: str, text: str, wait: float | None, source: str) -> Hit | None:
    category = STATUS.get(name)
    if category is None:
        return None
    if name == "RESOURCE_EXHAUSTED" and _MESSAGE_SIZE.search(text):
        return hit(CODE, DATA, f"{source} RESOURCE_EXHAUSTED: a message-size limit", "grpc_status")
    return hit(CODE, category, f"{source} {name}", "grpc_status", wait)


def _details(exc: BaseException) -> str:
    details = attr(exc, "details")
    if callable(details):
        details = details()
    return details if isinstance(details, str) else str(exc)


def status(exc: BaseException) -> Hit | None:
    """The gRPC status of a ``grpc.RpcError``/``grpc.aio.AioRpcError`` (``.code()``)."""
    module = module_of(type(exc))
    if module.startswith("google.api_core"):
        return _api_core(exc)
    code = attr(exc, "code")
    if not callable(code):
        return None
    name = _name(code())
    if name is None:
        return None
    return _status_hit(name, _details(exc), pushback(exc), "gRPC")


# google-api-core's classes (exceptions.py) for errors that carry no gRPC status (REST transport,
# an older grpcio): the HTTP status its class stands for says the same.
_API_CORE: dict[str, str] = {
    "ServiceUnavailable": "UNAVAILABLE",
    "DeadlineExceeded": "DEADLINE_EXCEEDED",
    "Aborted": "ABORTED",
    "InternalServerError": "INTERNAL",
    "Unknown": "UNKNOWN",
    "ResourceExhausted": "RESOURCE_EXHAUSTED",
    "TooManyRequests": "RESOURCE_EXHAUSTED",
    "InvalidArgument": "INVALID_ARGUMENT",
    "OutOfRange": "OUT_OF_RANGE",
    "NotFound": "NOT_FOUND",
    "AlreadyExists": "ALREADY_EXISTS",
    "PermissionDenied": "PERMISSION_DENIED",
    "Unauthenticated": "UNAUTHENTICATED",
    "FailedPrecondition": "FAILED_PRECONDITION",
    "MethodNotImplemented": "UNIMPLEMENTED",
    "DataLoss": "DATA_LOSS",
    "Cancelled": "CANCELLED",
}


def _api_core(exc: BaseException) -> Hit | None:
    """google-api-core: ``grpc_status_code`` first, else the class (its HTTP ``code`` is coarser)."""
    name = _name(attr(exc, "grpc_status_code"))
    if name is None:
        for klass in type(exc).__mro__:
            name = _API_CORE.get(klass.__name__)
            if name is not None:
                break
    if name is None:
        return None
    wait = pushback(attr(exc, "response"))
    message = attr(exc, "message")
    return _status_hit(name, message if isinstance(message, str) else str(exc), wait, "google-api-core")


_CLASSES: dict[tuple[str, str], tuple[int, ErrorCategory, str]] = {
    ("grpc", "FutureTimeoutError"): (GENERIC, NET, "channel not ready in time"),
    ("grpc", "UsageError"): (CLASS, PERM, "the gRPC API was misused"),
    ("grpc", "AbortError"): (CLASS, PERM, "the handler aborted twice"),
    ("grpc", "InternalError"): (CLASS, TEMP, "gRPC internal error"),
    ("grpc", "RpcError"): (WRAPPER, TEMP, "an RPC failed with no status"),
    ("google.api_core", "RetryError"): (WRAPPER, TEMP, "google-api-core's retry gave up"),
    ("google.api_core", "DuplicateCredentialArgs"): (CLASS, PERM, "conflicting credential arguments"),
}


def static(cls: type) -> Hit | None:
    """gRPC and google-api-core classes that carry no status to read."""
    return by_class(_CLASSES, cls, "grpc", _grpc_top)


def _grpc_top(module: str) -> str:
    return "google.api_core" if module.startswith("google.api_core") else top_module(module)


DYNAMIC = (status,)
