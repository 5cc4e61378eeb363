"""
retrykit-http: HTTP clients that retry under a retrykit policy.

- httpx: ``RetryTransport`` / ``AsyncRetryTransport`` (``httpx.Client(transport=...)``);
- requests: ``RetryAdapter`` (``session.mount("https://", ...)``);
- aiohttp (3.12+): ``RetryMiddleware`` (``ClientSession(middlewares=(...,))``).

Each is imported on first use, so only the client you use needs to be installed. Every request
is a retrying call of its own under the policy (classification, strategies, Retry-After,
deadlines, budgets and breakers per host, events and statistics); a POST is not resent after it
may have reached the server unless it carries an ``Idempotency-Key``; a body that cannot be
replayed is sent once; the responses of failed attempts are closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._request import (
    DEFAULT_STATUSES,
    IDEMPOTENCY_HEADER,
    IDEMPOTENT_METHODS,
    REFUSED_STATUSES,
    RESEND_COUNT,
    RequestInfo,
    resend_count,
    retry_after,
)

if TYPE_CHECKING:
    from ._aiohttp import RetryMiddleware
    from ._httpx import AsyncRetryTransport, RetryTransport
    from ._requests import RetryAdapter

__all__ = [
    "DEFAULT_STATUSES",
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENT_METHODS",
    "REFUSED_STATUSES",
    "RESEND_COUNT",
    "AsyncRetryTransport",
    "RequestInfo",
    "RetryAdapter",
    "RetryMiddleware",
    "RetryTransport",
    "resend_count",
    "retry_after",
]

_LAZY = {
    "RetryTransport": ("._httpx", "httpx"),
    "AsyncRetryTransport": ("._httpx", "httpx"),
    "RetryAdapter": ("._requests", "requests"),
    "RetryMiddleware": ("._aiohttp", "aiohttp"),
}


def __getattr__(name: str) -> Any:
    found = _LAZY.get(name)
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, client = found
    import importlib

    try:
        loaded = importlib.import_module(module, __name__)
    except ImportError as err:
        if err.name != client:
            raise
        raise ImportError(
            f"retrykit_http.{name} needs {client}: pip install 'retrykit-http[{client}]'", name=client
        ) from err
    value = getattr(loaded, name)
    globals()[name] = value
    return value
