"""API SDKs' own errors (openai, anthropic, stripe, Elasticsearch, google-api-core), provoked against
a server this module starts: their status, their "retry or not" headers and their wrappers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

import retrykit
from retrykit import ErrorCategory

from ._servers import provoke

NET = ErrorCategory.NETWORK_ERROR
RATE = ErrorCategory.API_RATE_LIMIT
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR


class _Scripted(BaseHTTPRequestHandler):
    """``/<status>/<header>=<value>/.../<anything the SDK appends>``: that status and those headers."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        parts = self.path.split("?")[0].strip("/").split("/")
        headers = dict(unquote(p).split("=", 1) for p in parts[1:] if "=" in unquote(p))
        body = json.dumps(
            {"error": {"message": "provoked", "type": "api_error", "code": headers.pop("code", None)}}
        )
        self.send_response(int(parts[0]))
        self.send_header("content-type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("path", "category", "retry_after"),
    [
        ("503", TEMP, None),
        ("429/retry-after-ms=1500", RATE, 1.5),
        ("429/retry-after=7", RATE, 7.0),
        ("503/x-should-retry=false", PERM, None),
        ("409/x-should-retry=true", TEMP, None),
        ("400", DATA, None),
        ("401", PERM, None),
    ],
)
def test_stainless_sdk_status_errors(
    base: str, sdk: str, path: str, category: ErrorCategory, retry_after: Any
) -> None:
    """openai and anthropic errors: the status, retry-after-ms / Retry-After, and x-should-retry."""
    module = pytest.importorskip(sdk)
    client_class = module.OpenAI if sdk == "openai" else module.Anthropic
    client = client_class(base_url=f"{base}/{path}", api_key="k", max_retries=0)
    found = retrykit.classify(provoke(lambda: client.models.list()))
    assert (category, retry_after) == (found.category, found.retry_after)


@pytest.mark.parametrize(
    ("path", "category"),
    [
        ("500", TEMP),
        ("503/stripe-should-retry=false", PERM),
        ("409/stripe-should-retry=true", TEMP),
        ("429", RATE),
        ("402", PERM),
        ("400", DATA),
        ("401", PERM),
        ("404", PERM),
        ("409", TEMP),
        ("400/code=lock_timeout", TEMP),
    ],
)
def test_stripe_status_errors(base: str, path: str, category: ErrorCategory) -> None:
    """stripe's errors: its http_status, its codes and Stripe-Should-Retry are read."""
    stripe = pytest.importorskip("stripe")
    client = stripe.StripeClient("sk_test_k", base_addresses={"api": f"{base}/{path}"}, max_network_retries=0)
    found = retrykit.classify(provoke(lambda: client.v1.customers.list()))
    assert category == found.category


@pytest.mark.parametrize(("status", "category"), [(503, TEMP), (429, RATE), (404, PERM), (400, DATA)])
def test_elasticsearch_api_errors(base: str, status: int, category: ErrorCategory) -> None:
    """Elasticsearch's ApiError is classified by its status."""
    elasticsearch = pytest.importorskip("elasticsearch")
    client = elasticsearch.Elasticsearch(f"{base}/{status}", max_retries=0)
    assert category == retrykit.classify(provoke(lambda: client.info())).category


def test_google_retry_error_is_its_last_cause(base: str) -> None:
    """google-api-core's RetryError is classified as the last error it retried."""
    requests = pytest.importorskip("requests")
    gretry = pytest.importorskip("google.api_core.retry")
    gexc = pytest.importorskip("google.api_core.exceptions")

    def get() -> None:
        raise gexc.from_http_response(requests.get(f"{base}/429"))

    retry = gretry.Retry(initial=0.001, maximum=0.001, timeout=0.05, predicate=lambda e: True)
    error = provoke(retry(get))
    assert isinstance(error, gexc.RetryError)
    assert RATE == retrykit.classify(error).category
