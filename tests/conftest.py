"""Shared fixtures: both async backends, clean settings, and service discovery."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

import retrykit
from retrykit import _config, _policy, _stats

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on asyncio and on trio."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_settings() -> Iterator[None]:
    """Each test starts from the built-in settings, presets and an empty statistics store."""
    _config.reset()
    presets = dict(_policy._registry)
    _stats.use_recorder(_stats.StatsRecorder(_stats.MemoryStore()))
    yield
    _config.reset()
    _policy._registry.clear()
    _policy._registry.update(presets)
    old = _stats.use_recorder(_stats.StatsRecorder(_stats.MemoryStore()))
    if old is not None:
        old.close()


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    """The Redis to test against (REDIS_URL, default 127.0.0.1:6379), or skip/fail if absent."""
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_URL)
    require_service(
        "Redis",
        parsed.hostname or "127.0.0.1",
        parsed.port or 6379,
        "redis-server --daemonize yes --port 6379 (or set REDIS_URL)",
    )
    return REDIS_URL


def require_service(name: str, host: str, port: int, how: str) -> None:
    """Skip (or, with REQUIRE_SERVICES=1 as in CI, fail) when a service is not listening."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as err:
        message = f"{name} is not reachable at {host}:{port} ({err}); start it with: {how}"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


__all__ = ["REDIS_URL", "require_service", "retrykit"]
