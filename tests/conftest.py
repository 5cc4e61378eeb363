"""Shared fixtures: both async backends, clean settings, service discovery, and the two tiers.

The fast tier (``pytest -m "not slow"``) needs no service, starts no worker, server or demo
process; everything else is marked ``slow`` here, by module and by fixture, so test files carry
no marks of their own. A test that calls ``require_service`` without being marked slow fails.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import retrykit
from retrykit.testing import isolated

BACKENDS = [pytest.param("asyncio", id="asyncio"), pytest.param("trio", id="trio")]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on asyncio and on trio."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _clean_settings() -> Iterator[None]:
    """
    Each test starts from the built-in settings, presets, an empty statistics store and no
    budget or breaker state (an earlier test's open breaker must not show in a later analysis).
    """
    with isolated():
        yield


# The tests' own Redis database (db 0 belongs to whoever else uses the server); the helpers keep
# theirs: 11 real-error tests, 13-15 Celery and overload (see README, Development).
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/10")


@pytest.fixture
def redis_url() -> str:
    """The Redis to test against (REDIS_URL, default 127.0.0.1:6379/10), or skip/fail if absent."""
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
    if _current is not None and _current.get_closest_marker("slow") is None:
        pytest.fail(f"{_current.nodeid} needs {name} but is not marked slow: add it to tests/conftest.py")
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as err:
        message = f"{name} is not reachable at {host}:{port} ({err}); start it with: {how}"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


# ------------------------------------------------------------------------------------ the tiers

# Whole modules that run Celery workers, crash and restart them, start servers or processes of
# their own (Redis, PostgreSQL, MariaDB, RabbitMQ, gRPC, HTTP), run the benchmarks or pytester.
SLOW_MODULES = {
    "tests/real_errors",
    "tests/test_benchmarks.py",
    "tests/redis_stores/test_stats_faults.py",
    "tests/test_pytest_asyncio.py",
}
# Fixtures that reach a service or start a process.
SLOW_FIXTURES = {"redis_url", "own_redis", "pytester"}
# Single tests that run the demo or a subprocess of the command line.
SLOW_TESTS = {
    "tests/test_cli.py::test_errors_are_one_line_and_non_zero",
    "tests/test_cli.py::test_demo_ends_with_the_analysis",
    "tests/test_package.py::test_demo_runs_and_reports",
    "tests/test_package.py::test_bad_command_lines_exit_non_zero_without_traceback",
    "tests/test_package.py::test_bad_environment_is_one_line_for_the_command",
}
_ROOT = Path(__file__).resolve().parent.parent
_current: pytest.Item | None = None


def _is_slow(item: pytest.Item) -> bool:
    path = Path(item.path).resolve().relative_to(_ROOT).as_posix()
    if any(path == module or path.startswith(module + "/") for module in SLOW_MODULES):
        return True
    if f"{path}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS:
        return True
    return bool(SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow tier; ``pytest -m "not slow"`` is the fast one."""
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Remember the running test, so that require_service can check it is marked slow."""
    global _current
    _current = item
    try:
        return (yield)
    finally:
        _current = None


__all__ = ["REDIS_URL", "require_service", "retrykit"]
