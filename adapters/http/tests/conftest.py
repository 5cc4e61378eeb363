"""The HTTP adapters' fixtures: a scripted local server, a client of each kind, the slow tier."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from http_clients import CLIENTS, Runner
from http_server import Server, serving

from retrykit.testing import set_testing

_HERE = Path(__file__).resolve().parent


@pytest.fixture
def http_server() -> Iterator[Server]:
    """A scripted HTTP server on a free local port (tests using it are in the slow tier)."""
    with serving() as server:
        yield server


# The HTTP adapter's own Redis database (the core's tests use 10, 11 and 13-15; nothing runs on 0).
REDIS_URL = os.environ.get("RETRYKIT_HTTP_REDIS_URL", "redis://127.0.0.1:6379/12")


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """A Redis URL and a key prefix of this test's own, its keys deleted afterwards (skip if absent)."""
    import redis

    parsed = urlparse(REDIS_URL)
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1).close()
    except OSError as err:
        message = f"Redis is not reachable at {REDIS_URL} ({err}): redis-server --port 6379"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    prefix = f"rk-http-{uuid.uuid4().hex}"
    yield REDIS_URL, prefix
    with redis.Redis.from_url(REDIS_URL) as client:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> Runner:
    """Each client with its adapter: httpx (sync, asyncio, trio), requests, aiohttp."""
    return CLIENTS[str(request.param)]


@pytest.fixture(autouse=True)
def _no_sleeping() -> Iterator[None]:
    """retrykit sleeps nothing, in every thread and event loop the test starts."""
    with set_testing(no_wait=True):
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests here that start a server or a client are slow; the rest (configuration, parsing) are fast."""
    for item in items:
        used = getattr(item, "fixturenames", ())
        if _HERE in Path(item.path).resolve().parents and ("http_server" in used or "client" in used):
            item.add_marker(pytest.mark.slow)
