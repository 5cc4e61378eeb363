"""HTTP clients (httpx, requests, aiohttp, urllib) against a server this module starts."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory

from ._servers import free_port, http_server, provoke, self_signed_context

httpx = pytest.importorskip("httpx")
requests = pytest.importorskip("requests")
aiohttp = pytest.importorskip("aiohttp")

NET = ErrorCategory.NETWORK_ERROR
RATE = ErrorCategory.API_RATE_LIMIT
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR

# The pinned table (README "HTTP"): status -> category. Only 408, 425, 429 and 5xx other than
# 501/505 are worth retrying (RFC 9110 section 15; urllib3's Retry status list).
STATUS_TABLE: dict[int, ErrorCategory] = {
    400: DATA, 401: PERM, 402: PERM, 403: PERM, 404: PERM, 405: PERM, 408: TEMP, 409: PERM,
    410: PERM, 413: DATA, 415: DATA, 418: PERM, 422: DATA, 425: TEMP, 429: RATE, 451: PERM,
    500: TEMP, 501: PERM, 502: TEMP, 503: TEMP, 504: TEMP, 505: PERM,
}  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    """The scripted plain-HTTP server."""
    with http_server() as (url, srv):
        yield url, srv


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A TLS server whose certificate no client trusts."""
    context = self_signed_context(tmp_path_factory.mktemp("tls"))
    with http_server(context) as (url, _srv):
        yield url


def _httpx_status(url: str) -> None:
    httpx.get(url, timeout=2).raise_for_status()


def _requests_status(url: str) -> None:
    requests.get(url, timeout=2).raise_for_status()


def _aiohttp_status(url: str) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            response.raise_for_status()

    asyncio.run(go())


def _urllib_status(url: str) -> None:
    urllib.request.urlopen(url, timeout=2).close()


CLIENTS: dict[str, Callable[[str], None]] = {
    "httpx": _httpx_status,
    "requests": _requests_status,
    "aiohttp": _aiohttp_status,
    "urllib": _urllib_status,
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("status", sorted(STATUS_TABLE))
def test_every_status(server: Any, client: str, status: int) -> None:
    """Each client's error for each status is classified as the status table says."""
    url, _ = server
    err = provoke(lambda: CLIENTS[client](f"{url}/status/{status}"))
    verdict = retrykit.classify(err)
    assert (STATUS_TABLE[status], "http_status") == (verdict.category, verdict.rule), str(
        retrykit.explain(err)
    )


WAIT_CASES = [
    ("Retry-After=7", 429, 7.0),
    ("x-amz-retry-after=1500", 503, 1.5),
    ("grpc-retry-pushback-ms=250", 503, 0.25),
    ("RateLimit-Reset=5", 429, 5.0),
    ("X-RateLimit-Reset={epoch}", 429, 30.0),
]


@pytest.mark.parametrize("client", ["httpx", "requests", "aiohttp", "urllib"])
@pytest.mark.parametrize(("query", "status", "seconds"), WAIT_CASES)
def test_wait_hints(server: Any, client: str, query: str, status: int, seconds: float) -> None:
    """Retry-After, x-amz-retry-after (ms), grpc-retry-pushback-ms (ms) and rate-limit resets are read."""
    url, _ = server
    query = query.format(epoch=int(time.time()) + 30)
    err = provoke(lambda: CLIENTS[client](f"{url}/status/{status}?{query}"))
    verdict = retrykit.classify(err)
    assert verdict.retry_after == pytest.approx(seconds, abs=2.0)


def _refused(client: str) -> Callable[[], None]:
    url = f"http://127.0.0.1:{free_port()}/"
    return lambda: CLIENTS[client](url)


# Client-side failures: (case, client, how to provoke given the server URLs, expected category).
FAILURES: list[tuple[str, str, ErrorCategory]] = [
    ("refused", "httpx", NET),
    ("refused", "requests", NET),
    ("refused", "aiohttp", NET),
    ("refused", "urllib", NET),
    ("read_timeout", "httpx", NET),
    ("read_timeout", "requests", NET),
    ("closed_without_response", "httpx", NET),
    ("closed_without_response", "requests", NET),
    ("closed_without_response", "urllib", NET),
    ("reset_after_request", "httpx", NET),
    ("reset_after_request", "requests", NET),
    ("tls_untrusted_certificate", "httpx", PERM),
    ("tls_untrusted_certificate", "requests", PERM),
    ("tls_untrusted_certificate", "aiohttp", PERM),
    ("tls_untrusted_certificate", "urllib", PERM),
    ("tls_to_plain_http", "httpx", PERM),
    ("tls_to_plain_http", "requests", PERM),
    ("tls_to_plain_http", "urllib", PERM),
    ("unsupported_scheme", "httpx", PERM),
    ("unsupported_scheme", "requests", PERM),
    ("unsupported_scheme", "aiohttp", PERM),
    ("unsupported_scheme", "urllib", PERM),
    ("invalid_url", "httpx", PERM),
    ("invalid_url", "requests", PERM),
    ("missing_scheme", "requests", PERM),
    ("redirect_loop", "httpx", PERM),
    ("redirect_loop", "requests", PERM),
    ("redirect_loop", "aiohttp", PERM),
    ("redirect_loop", "urllib", PERM),
    ("json_expected_got_text", "aiohttp", DATA),  # ContentTypeError on a 200: the body, not the status
]


def _case(case: str, client: str, url: str, tls_url: str) -> Callable[[], None]:
    if case == "refused":
        return _refused(client)
    if case == "read_timeout":
        if client == "httpx":
            return lambda: httpx.get(f"{url}/hang", timeout=0.3)
        return lambda: requests.get(f"{url}/hang", timeout=0.3)
    if case == "tls_untrusted_certificate":
        return lambda: CLIENTS[client](f"{tls_url}/")
    if case == "tls_to_plain_http":
        return lambda: CLIENTS[client](url.replace("http://", "https://") + "/")
    if case == "unsupported_scheme":
        return lambda: CLIENTS[client]("gopher://127.0.0.1/x")
    if case == "invalid_url":
        return lambda: CLIENTS[client]("http://[::1/")
    if case == "missing_scheme":
        return lambda: CLIENTS[client]("127.0.0.1/x")
    if case == "redirect_loop":
        if client == "httpx":
            return lambda: httpx.get(f"{url}/redirect", follow_redirects=True, timeout=2)
        return lambda: CLIENTS[client](f"{url}/redirect")
    if case == "closed_without_response":
        return lambda: CLIENTS[client](f"{url}/close")
    if case == "reset_after_request":
        return lambda: CLIENTS[client](f"{url}/reset")
    if case == "json_expected_got_text":
        return lambda: _aiohttp_json(f"{url}/200")
    raise AssertionError(case)


def _aiohttp_json(url: str) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            await response.json()

    asyncio.run(go())


@pytest.mark.parametrize(("case", "client", "category"), FAILURES)
def test_client_failures(
    server: Any, tls_server: str, case: str, client: str, category: ErrorCategory
) -> None:
    """Transport failures are network errors; TLS, URL, scheme and redirect failures are permanent."""
    url, _ = server
    err = provoke(_case(case, client, url, tls_server))
    verdict = retrykit.classify(err)
    assert category == verdict.category, str(retrykit.explain(err))
    assert not verdict.replay_unsafe


# Replay safety: (client, method, path, headers, replay_unsafe expected).
REPLAY: list[tuple[str, str, str, dict[str, str], bool]] = [
    ("httpx", "POST", "reset", {}, True),
    ("httpx", "POST", "hang", {}, True),
    ("httpx", "PATCH", "close", {}, True),
    ("httpx", "POST", "reset", {"Idempotency-Key": "k1"}, False),
    ("httpx", "PUT", "reset", {}, False),
    ("httpx", "POST", "refused", {}, False),
    ("requests", "POST", "reset", {}, True),
    ("requests", "POST", "hang", {}, True),
    ("requests", "POST", "reset", {"Idempotency-Key": "k1"}, False),
    ("requests", "PUT", "hang", {}, False),
    ("requests", "POST", "refused", {}, False),
]


@pytest.mark.parametrize(("client", "method", "path", "headers", "unsafe"), REPLAY)
def test_replay_unsafe(
    server: Any, client: str, method: str, path: str, headers: dict[str, str], unsafe: bool
) -> None:
    """A failure after a non-idempotent request was sent, without an Idempotency-Key, is replay-unsafe."""
    url, _ = server
    target = f"http://127.0.0.1:{free_port()}/" if path == "refused" else f"{url}/{path}"
    if client == "httpx":
        err = provoke(lambda: httpx.request(method, target, headers=headers, content=b"x=1", timeout=0.3))
    else:
        err = provoke(lambda: requests.request(method, target, headers=headers, data=b"x=1", timeout=0.3))
    verdict = retrykit.classify(err)
    assert NET == verdict.category, str(retrykit.explain(err))
    assert unsafe == verdict.replay_unsafe, str(retrykit.explain(err))


def test_tls_failure_inside_connect_error_is_explained(tls_server: str) -> None:
    """explain() shows the wrapper's generic network class losing to the certificate failure."""
    err = provoke(lambda: httpx.get(tls_server, timeout=2))
    assert isinstance(err, httpx.ConnectError)
    text = str(retrykit.explain(err))
    assert "SSLCertVerificationError" in text
    assert "decision: permanent_error" in text


def test_urllib_url_error_reason(tmp_path: Path) -> None:
    """urllib's URLError around a refused connection is a network error (its .reason is walked)."""
    err = provoke(_refused("urllib"))
    assert isinstance(err, urllib.error.URLError)
    assert NET == retrykit.classify(err).category
