"""
aiohttp: client middleware that retries under a policy (aiohttp 3.12 and later, whose
``ClientSession(middlewares=...)`` this uses; older versions have no client middleware).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from aiohttp.payload import AsyncIterablePayload

from retrykit import Policy

from ._request import (
    Attempt,
    KeyFunction,
    RequestInfo,
    ResponseRule,
    RouteFunction,
    Settings,
    asend_request,
    bounded,
    host_of,
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


def _mark(response: Any, count: int) -> None:
    response.resend_count = count


def resend_count(response: ClientResponse) -> int:
    """How many times the request of *response* was resent (0: it was sent once)."""
    return int(getattr(response, "resend_count", 0))


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

    def __init__(
        self,
        policy: Policy | str | None = "http",
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
    ) -> None:
        self.settings: Settings = Settings(
            policy,
            statuses=statuses,
            classify_response=classify_response,
            key=key,
            route=route,
            budget=budget,
            breaker=breaker,
            idempotency_keys=idempotency_keys,
            retry_non_idempotent=retry_non_idempotent,
            read_body=read_body,
            request_of=_request_of,
        )

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Send *request*, retrying as the policy says; ``response.resend_count`` says how often."""
        settings = self.settings
        method = request.method.upper()
        settings.add_idempotency_key(method, request.headers)
        url = request.url
        host = host_of(url.scheme, url.host or "", url.explicit_port)
        plan = settings.plan(
            method, host, lambda: RequestInfo(method, str(url), host, url.path), request.headers
        )
        body = request.body
        unreplayable = (
            f"a one-shot stream, {type(body).__name__}" if isinstance(body, AsyncIterablePayload) else None
        )
        read = settings.read_body

        async def attempt_once() -> ClientResponse:
            response = await handler(request)
            if read:
                try:
                    await response.read()
                except BaseException:
                    response.release()
                    raise
            return response

        async def send(limit: float | None) -> ClientResponse:
            return await bounded(limit, attempt_once)

        attempt = Attempt(send, _close, _sent_nothing, _mark)
        result: ClientResponse = await asend_request(plan, attempt, unreplayable)
        return result
