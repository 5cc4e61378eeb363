"""httpx: a transport that retries under a policy, sync and async, around any inner transport."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack, cast

import httpx

import retrykit
from retrykit import Policy

from ._request import (
    RESEND_COUNT,
    Attempt,
    Options,
    Plan,
    RequestInfo,
    Settings,
    asend_request,
    declare_inner,
    mark_extension,
    send_request,
)

_SENT_NOTHING = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
READ_BODY = "retrykit.read_body"
"""Request extension: False returns this response unread (``client.stream(...)``), True reads it."""


def _request_of(response: Any) -> tuple[str, Any]:
    try:
        request = response.request
    except RuntimeError:
        return "GET", None
    return request.method, request.headers


def _info(request: httpx.Request, host: str) -> Callable[[], RequestInfo]:
    return lambda: RequestInfo(request.method, str(request.url), host, request.url.path)


def _unreplayable(request: httpx.Request) -> str | None:
    stream = request.stream
    if isinstance(stream, httpx.ByteStream) or type(stream).__name__ == "MultipartStream":
        return None  # bytes, or multipart whose files httpx seeks back to the start
    return f"a one-shot stream, {type(stream).__name__}"


def _bounded(request: httpx.Request, limit: float | None) -> None:
    if limit is None:
        return
    given: object = request.extensions.get("timeout")
    timeouts: dict[str, float | None] = (
        dict(cast("dict[str, float | None]", given)) if isinstance(given, dict) else {}
    )
    for phase in ("connect", "read", "write", "pool"):
        value = timeouts.get(phase)
        timeouts[phase] = limit if value is None else min(value, limit)
    request.extensions = {**request.extensions, "timeout": timeouts}


def _probe() -> BaseException:
    request = httpx.Request("GET", "http://probe.invalid/")
    response = httpx.Response(503, request=request, extensions={RESEND_COUNT: 1})
    return httpx.HTTPStatusError("probe", request=request, response=response)


def _declare() -> None:
    """raise_for_status() under a retrykit layer: the transport's requests count (one layer)."""
    declare_inner("retrykit-http (httpx)", httpx.HTTPStatusError, _probe)


_declare()


def _sent_nothing(exc: BaseException) -> bool:
    return isinstance(exc, _SENT_NOTHING)


def _read(response: httpx.Response) -> None:
    response.read()


def _close(response: httpx.Response) -> None:
    response.close()


async def _aread(response: httpx.Response) -> None:
    await response.aread()


async def _aclose(response: httpx.Response) -> None:
    await response.aclose()


class _Base:
    def __init__(self, policy: Policy | str | None, options: Options) -> None:
        _declare()
        self.settings: Settings = Settings(policy, _request_of, **options)

    def _plan(self, request: httpx.Request) -> tuple[Plan, bool, str | None]:
        """The request's plan, whether to read its body inside the attempt, and if it is replayable."""
        host = request.url.netloc.decode("ascii")  # host[:port] as the URL gives it (cheaper than .host)
        plan = self.settings.plan(request.method, host, _info(request, host), request.headers)
        read = request.extensions.get(READ_BODY, self.settings.read_body)
        return plan, bool(read), _unreplayable(request)


class RetryTransport(_Base, httpx.BaseTransport):
    """
    An httpx transport that retries under a retrykit policy: ``httpx.Client(transport=
    RetryTransport("http"))``. Each request is a call of its own (fresh state); see the docs'
    "HTTP clients" page for every option.

    Args:
        policy: a ``Policy``, a preset name (default ``"http"``) or None.
        transport: the transport that sends (default ``httpx.HTTPTransport()``).
        statuses: the response statuses retried (400-599; default 408, 425, 429, 500, 502-504).
        classify_response: a result rule for other responses (e.g. a GraphQL 200 with errors).
        key: request -> the key its budget and breaker are kept under (default: the host).
        route: request -> a route template for the operation's name (``"/users/{id}"``).
        budget, breaker: overload protection (default: the policy's), kept per key.
        idempotency_keys: send one generated ``Idempotency-Key`` with every attempt of a
            non-idempotent request, which may then be resent.
        retry_non_idempotent: resend POST and PATCH even after they may have reached the server.
        read_body: read the body inside the attempt (a failure reading it is retried); False, or
            the request extension ``"retrykit.read_body": False``, returns responses unread.

    Raises:
        ConfigError: bad input, naming the argument, the value and the fix.
    """

    def __init__(
        self,
        policy: Policy | str | None = "http",
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[Options],
    ) -> None:
        super().__init__(policy, options)
        given = cast(object, transport)  # checked at run time: callers are not all type-checked
        if given is not None and not isinstance(given, httpx.BaseTransport):
            raise retrykit.ConfigError(
                "transport", transport, "must be an httpx.BaseTransport", "pass e.g. httpx.HTTPTransport()"
            )
        self.transport: httpx.BaseTransport = transport or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request*, retrying as the policy says; the response carries its resend count."""
        plan, read, unreplayable = self._plan(request)

        def send(limit: float | None) -> httpx.Response:
            _bounded(request, limit)
            response = self.transport.handle_request(request)
            response.request = request  # the result rule reads its method and headers
            return response

        attempt = Attempt(send, _read if read else None, _close, _sent_nothing, mark_extension)
        result: httpx.Response = send_request(plan, attempt, unreplayable)
        return result

    def close(self) -> None:
        self.transport.close()


class AsyncRetryTransport(_Base, httpx.AsyncBaseTransport):
    """
    ``RetryTransport`` for ``httpx.AsyncClient``, on asyncio and trio; each attempt is bounded
    by the policy's ``attempt_timeout`` and deadline. *transport* defaults to
    ``httpx.AsyncHTTPTransport()``.
    """

    def __init__(
        self,
        policy: Policy | str | None = "http",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[Options],
    ) -> None:
        super().__init__(policy, options)
        given = cast(object, transport)
        if given is not None and not isinstance(given, httpx.AsyncBaseTransport):
            raise retrykit.ConfigError(
                "transport",
                transport,
                "must be an httpx.AsyncBaseTransport",
                "pass e.g. httpx.AsyncHTTPTransport()",
            )
        self.transport: httpx.AsyncBaseTransport = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request*, retrying as the policy says; the response carries its resend count."""
        plan, read, unreplayable = self._plan(request)

        async def send(limit: float | None) -> httpx.Response:
            _bounded(request, limit)
            response = await self.transport.handle_async_request(request)
            response.request = request
            return response

        attempt = Attempt(send, _aread if read else None, _aclose, _sent_nothing, mark_extension)
        result: httpx.Response = await asend_request(plan, attempt, unreplayable)
        return result

    async def aclose(self) -> None:
        await self.transport.aclose()
