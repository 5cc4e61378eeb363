"""The Celery adapter's tests: reaching the real services (Redis, RabbitMQ), or skipping (failing in CI)."""

from __future__ import annotations

import os
import socket

import pytest

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/10")
"""The tests' own Redis database (db 0 belongs to whoever else uses the server)."""

current: list[pytest.Item] = []
"""The running test (set by conftest.py), so that require_service can check it is marked slow."""


def require_service(name: str, host: str, port: int, how: str) -> None:
    """Skip (or, with REQUIRE_SERVICES=1 as in CI, fail) when a service is not listening."""
    if current and current[0].get_closest_marker("slow") is None:
        pytest.fail(f"{current[0].nodeid} needs {name} but is not marked slow: add it to conftest.py")
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as err:
        message = f"{name} is not reachable at {host}:{port} ({err}); start it with: {how}"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
