"""The HTTP adapters' fixtures: a scripted local server, a client of each kind, the slow tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
