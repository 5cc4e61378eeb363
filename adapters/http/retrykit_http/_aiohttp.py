"""
aiohttp: client middleware that retries under a policy (aiohttp 3.12 and later, whose
``ClientSession(middlewares=...)`` this uses; older versions have no client middleware).
"""

from __future__ import annotations

from typing import Any, Unpack

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from aiohttp.payload import AsyncIterablePayload

from retrykit import Policy

from ._request import (
    Attempt,
    Options,
    RequestInfo,
    Settings,
    asend_request,
    host_of,
    mark_attribute,
)


def _before_sending() -> tuple[type[BaseException], ...]:
    """The errors raised before anything of a request was sent (connect, TLS, connect timeout)."""
    found: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError, aiohttp.ClientSSLError)
    timeout: object = getattr(aiohttp, "ConnectionTimeoutError", None)  # aiohttp 3.10+
    if isinstance(timeout, type) and issubclass(timeout, BaseException):
        found = (*found, timeout)
    return found


_SENT_NOTHING = _before_sending()


def _request_of(response: Any) -> tuple[str, Any]:
    info = getattr(response, "request_info", None)
    return str(getattr(response, "method", "GET")), getattr(info, "headers", None)


def _sent_nothing(exc: BaseException) -> bool:
    return isinstance(exc, _SENT_NOTHING)


async def _read(response: ClientResponse) -> None:
    await response.read()


async def _close(response: ClientResponse) -> None:
    response.release()


class RetryMiddleware:
    """
    aiohttp client middleware that retries under a retrykit policy:
    ``aiohttp.ClientSession(middlewares=(RetryMiddleware("http"),))`` (asyncio). Each request
    is a call of its own, each attempt bounded by the policy's ``attempt_timeout`` and deadline.
    The options are ``RetryTransport``'s (httpx); *read_body* False returns responses unread
    (give such a middleware to the requests you stream: ``session.get(url, middlewares=...)``).

    Raises:
        ConfigError: bad input, naming the argument, the value and the fix.
    """

    def __init__(self, policy: Policy | str | None = "http", **options: Unpack[Options]) -> None:
        self.settings: Settings = Settings(policy, _request_of, **options)

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Send *request*, retrying as the policy says; ``response.resend_count`` says how often."""
        method, url = request.method.upper(), request.url
        host = host_of(url.scheme, url.host or "", url.explicit_port)
        info = lambda: RequestInfo(method, str(url), host, url.path)  # noqa: E731 - built if asked
        plan = self.settings.plan(method, host, info, request.headers)
        body = request.body
        unreplayable = (
            f"a one-shot stream, {type(body).__name__}" if isinstance(body, AsyncIterablePayload) else None
        )

        async def send(limit: float | None) -> ClientResponse:
            return await handler(request)  # bounded by the driver (limit: the seconds left)

        read = _read if self.settings.read_body else None
        attempt = Attempt(send, read, _close, _sent_nothing, mark_attribute)
        result: ClientResponse = await asend_request(plan, attempt, unreplayable)
        return result
