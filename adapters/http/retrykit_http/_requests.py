"""requests: an ``HTTPAdapter`` that retries under a policy, to mount on a ``Session``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack, cast
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, HTTPAdapter

import retrykit
from retrykit import Policy

from ._request import (
    Attempt,
    Options,
    RequestInfo,
    Settings,
    declare_inner,
    host_of,
    mark_attribute,
    send_request,
)

_CONNECT = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)


def _request_of(response: Any) -> tuple[str, Any]:
    request = getattr(response, "request", None)
    return str(getattr(request, "method", "GET") or "GET"), getattr(request, "headers", None)


def _sent_nothing(exc: BaseException) -> bool:
    """Connect failures, TLS handshakes that failed: nothing of the request left."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", exc.args[0])
        return isinstance(reason, _CONNECT)
    return False


def _host(url: str) -> str:
    parts = urlsplit(url)
    return host_of(parts.scheme, parts.hostname or "", parts.port)


def _body(request: requests.PreparedRequest) -> tuple[str | None, Callable[[], object] | None]:
    """What the body is when it cannot be replayed, and how to rewind a seekable file body."""
    body = cast(object, request.body)
    if body is None or isinstance(body, (bytes, str)):
        return None, None
    seek: object = getattr(body, "seek", None)
    tell: object = getattr(body, "tell", None)
    if callable(seek) and callable(tell):
        try:
            position: object = tell()
        except OSError:
            position = None
        if isinstance(position, int):
            return None, lambda: seek(position)
    return f"a one-shot iterable, {type(body).__name__}", None


def _bounded(timeout: Any, limit: float | None) -> Any:
    if limit is None:
        return timeout
    if timeout is None:
        return limit
    if isinstance(timeout, tuple):
        parts = cast("tuple[float | None, ...]", timeout)
        return tuple(limit if part is None else min(part, limit) for part in parts)
    if isinstance(timeout, (int, float)):
        return min(timeout, limit)
    return timeout  # a urllib3 Timeout: left as given


def _probe() -> BaseException:
    response = requests.Response()
    response.status_code = 503
    mark_attribute(response, 1)
    return requests.HTTPError("probe", response=response)


def _declare() -> None:
    """raise_for_status() under a retrykit layer: the adapter's requests count (one layer)."""
    declare_inner("retrykit-http (requests)", requests.HTTPError, _probe)


_declare()


def _close(response: requests.Response) -> None:
    response.close()


def _read(response: requests.Response) -> None:
    response.content  # noqa: B018 - read inside the attempt: a cut body is retried


class RetryAdapter(HTTPAdapter):
    """
    A requests transport adapter that retries under a retrykit policy:
    ``session.mount("https://", RetryAdapter("http"))``. Each request is a call of its own. The
    options are ``RetryTransport``'s (httpx); a request sent with ``stream=True`` (or every
    request, with ``read_body=False``) is returned unread. *pool_connections*, *pool_maxsize*
    and *pool_block* go to ``HTTPAdapter``; urllib3's own retries stay off.

    Raises:
        ConfigError: bad input, naming the argument, the value and the fix.
    """

    def __init__(
        self,
        policy: Policy | str | None = "http",
        *,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        pool_block: bool = DEFAULT_POOLBLOCK,
        **options: Unpack[Options],
    ) -> None:
        if "max_retries" in options:
            raise retrykit.ConfigError(
                "max_retries",
                cast("dict[str, object]", options)["max_retries"],
                "would make urllib3 retry inside each attempt (two layers)",
                "leave it out: the policy's max_attempts counts every request",
            )
        _declare()
        self.settings: Settings = Settings(policy, _request_of, **options)
        super().__init__(pool_connections, pool_maxsize, pool_block=pool_block)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,  # requests' own types: a number, a (connect, read) pair or None
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        """Send *request*, retrying as the policy says; ``response.resend_count`` says how often."""
        url, method = request.url or "", (request.method or "GET").upper()
        host = _host(url)
        info = lambda: RequestInfo(method, url, host, urlsplit(url).path)  # noqa: E731 - built if asked
        plan = self.settings.plan(method, host, info, request.headers)
        unreplayable, rewind = _body(request)
        send_once = super().send

        def send(limit: float | None) -> requests.Response:
            if rewind is not None:
                rewind()
            return send_once(request, stream, _bounded(timeout, limit), verify, cert, proxies)

        read = None if stream or not self.settings.read_body else _read
        attempt = Attempt(send, read, _close, _sent_nothing, mark_attribute)
        result: requests.Response = send_request(plan, attempt, unreplayable)
        return result
