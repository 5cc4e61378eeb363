"""The Celery adapter's fixtures: clean settings, both async backends, Redis, and the slow tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from celery_services import REDIS_URL, current, require_service

from retrykit.testing import isolated

_HERE = Path(__file__).resolve().parent
_FAST = {"test_celery_package.py"}
"""Modules here that start no worker and need no service; every other one is in the slow tier."""


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on asyncio and on trio."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_settings() -> Iterator[None]:
    """Each test starts from the built-in settings and presets, no statistics, budget or breaker state."""
    with isolated():
        yield


@pytest.fixture
def redis_url() -> str:
    """The Redis to test against (REDIS_URL, default 127.0.0.1:6379/10), or skip/fail if absent."""
    parsed = urlparse(REDIS_URL)
    require_service(
        "Redis",
        parsed.hostname or "127.0.0.1",
        parsed.port or 6379,
        "redis-server --daemonize yes --port 6379 (or set REDIS_URL)",
    )
    return REDIS_URL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules that run Celery workers, crash and restart them are the slow tier."""
    for item in items:
        path = Path(item.path).resolve()
        if path.parent == _HERE and path.name not in _FAST:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Remember the running test, so that require_service can check it is marked slow."""
    current[:] = [item]
    try:
        return (yield)
    finally:
        current.clear()
