"""Shared fixtures: both async backends, clean settings, and service discovery."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

import retrykit
from retrykit import _config, _policy

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on asyncio and on trio."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_settings() -> Iterator[None]:
    """Each test starts from the built-in settings and presets."""
    _config.reset()
    presets = dict(_policy._registry)
    yield
    _config.reset()
    _policy._registry.clear()
    _policy._registry.update(presets)


def require_service(name: str, host: str, port: int, how: str) -> None:
    """Skip (or, with REQUIRE_SERVICES=1 as in CI, fail) when a service is not listening."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as err:
        message = f"{name} is not reachable at {host}:{port} ({err}); start it with: {how}"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


__all__ = ["require_service", "retrykit"]
