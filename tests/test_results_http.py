"""
Retry on returned values: with real HTTP clients (a local server answers 503/429, then 200), and
the result rules at their edges.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

import retrykit
from retrykit import ErrorCategory, _results
from retrykit.events import StopReason
from retrykit.testing import no_wait, record


class Script(BaseHTTPRequestHandler):
    """Answers each GET with the next (status, headers) of the class's script, then 200."""

    script: ClassVar[list[tuple[int, dict[str, str]]]] = []
    served: ClassVar[int] = 0

    def do_GET(self) -> None:
        type(self).served += 1
        status, headers = self.script.pop(0) if self.script else (200, {})
        body = b"ok" if status == 200 else b"busy"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """A local HTTP server on a free port, following ``Script.script``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Script)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Script.served = 0
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _status(response: Any) -> int:
    return int(getattr(response, "status_code", None) or response.status)


def _httpx(url: str) -> Any:
    import httpx

    return httpx.get(url)


def _requests(url: str) -> Any:
    import requests

    return requests.get(url, timeout=5)


def _urllib3(url: str) -> Any:
    import urllib3

    return urllib3.request("GET", url, retries=False)


SCRIPT = [(503, {"Retry-After": "2"}), (429, {"Retry-After": "1"})]


@pytest.mark.parametrize("get", [_httpx, _requests, _urllib3], ids=["httpx", "requests", "urllib3"])
def test_http_preset_retries_real_responses(server: str, get: Any) -> None:
    """A 503 and a 429 returned (not raised) by a real client are retried with their Retry-After."""
    Script.script = list(SCRIPT)
    with no_wait(), record() as rec:
        response = retrykit.retry("http")(get)(server)
    assert 200 == _status(response)
    assert 3 == Script.served
    assert [ErrorCategory.TEMPORARY_ERROR, ErrorCategory.API_RATE_LIMIT] == [
        c.category for c in rec.classifications
    ]
    assert 2.0 <= rec.sleeps[0] <= 2.2
    assert 1.0 <= rec.sleeps[1] <= 1.1


@pytest.mark.parametrize("get", [_httpx, _requests, _urllib3], ids=["httpx", "requests", "urllib3"])
def test_giving_up_on_results_returns_the_last_response(server: str, get: Any) -> None:
    """After the policy's attempts, the caller gets the last 503 response, and GaveUp says so."""
    Script.script = [(503, {})] * 10
    with no_wait(), record() as rec:
        response = retrykit.retry("http", max_attempts=3)(get)(server)
    assert 503 == _status(response)
    assert 3 == Script.served
    assert [StopReason.MAX_ATTEMPTS] == [e.reason for e in rec.gave_up]
    assert rec.gave_up[0].returned


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # aiohttp runs on asyncio only
async def test_aiohttp_responses_are_retried(server: str) -> None:
    """aiohttp's ClientResponse (status, headers) is recognised the same way."""
    import aiohttp

    Script.script = list(SCRIPT)

    @retrykit.retry("http")
    async def get() -> Any:
        async with aiohttp.ClientSession() as session, session.get(server) as response:
            await response.read()
            return response

    with no_wait():
        response = await get()
    assert 200 == response.status
    assert 3 == Script.served


# --------------------------------------------------------------------------- result rules, no server


class _Response:
    """A response-like result: a status and headers of some kind."""

    def __init__(self, status: Any, headers: Any = None) -> None:
        self.status_code = status
        self.headers = headers


class _HostileStatus:
    @property
    def status_code(self) -> int:
        raise RuntimeError("hostile")


class _HostileHeaders:
    def get(self, name: str) -> Any:
        raise RuntimeError("hostile")


@pytest.mark.parametrize(
    ("result", "category"),
    [
        (_Response(503, {"Retry-After": "1"}), ErrorCategory.TEMPORARY_ERROR),
        (_Response(503), None),
        (_Response("503", {}), None),
        (_HostileStatus(), None),
        (_Response(429, _HostileHeaders()), ErrorCategory.API_RATE_LIMIT),
        (_Response(429, object()), ErrorCategory.API_RATE_LIMIT),
    ],
    ids=[
        "retryable",
        "no-headers",
        "status-not-int",
        "status-raises",
        "headers-raise",
        "headers-without-get",
    ],
)
def test_the_http_result_rule_reads_what_it_can(result: Any, category: ErrorCategory | None) -> None:
    """Only an integer retryable status with headers is a failure; unreadable parts are no hint, no error."""
    found = _results.http_response(result)
    assert category == (None if found is None else found.category)
    if found is not None and not isinstance(result.headers, dict):
        assert found.retry_after is None


def test_a_result_rule_may_answer_a_category_member() -> None:
    """A result rule answering an ErrorCategory member classifies the result with it."""
    found = _results.judge_result(lambda r: ErrorCategory.DATA_ERROR, "x")
    assert found is not None
    assert ErrorCategory.DATA_ERROR == found.category
