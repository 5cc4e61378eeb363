"""redis-py (sync and asyncio) errors on the shared Redis (db 11) and on servers this module starts."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory

from ..conftest import require_service
from ._servers import free_port, provoke

redis = pytest.importorskip("redis")
redis_asyncio = pytest.importorskip("redis.asyncio")
pytest.importorskip("redis.asyncio.retry")
pytest.importorskip("redis.backoff")

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR
PREFIX = "rk-classify:"

# The pinned table (README "Redis"): case -> category.
CASES: dict[str, ErrorCategory] = {
    "refused": NET,
    "pool_full": TEMP,  # MaxConnectionsError: the client's own pool, not the network
    "timeout": NET,
    "server_killed": NET,
    "read_only_replica": TEMP,
    "master_down": TEMP,
    "out_of_memory": TEMP,
    "wrongtype": DATA,
    "not_an_integer": DATA,
    "noscript": PERM,
    "unknown_command": PERM,
    "wrong_arity": PERM,
    "noauth": PERM,
    "wrongpass": PERM,
}


class OwnRedis:
    """A redis-server this test starts (no persistence) and stops."""

    def __init__(self, *args: str) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not on PATH: apt-get install redis-server")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def own() -> Iterator[Callable[..., OwnRedis]]:
    """Start private redis-servers; all are stopped after the test."""
    started: list[OwnRedis] = []

    def start(*args: str) -> OwnRedis:
        server = OwnRedis(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (for timeouts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield int(sock.getsockname()[1])
    sock.close()


def _call(flavour: str, port: int, command: tuple[Any, ...], **kwargs: Any) -> Callable[[], Any]:
    """Run one command with the sync or the asyncio client."""
    options = {
        "host": "127.0.0.1",
        "port": port,
        "socket_timeout": 0.3,
        "socket_connect_timeout": 1,
        **kwargs,
    }
    if flavour == "sync":
        options["retry"] = redis.retry.Retry(redis.backoff.NoBackoff(), 0)

        def run_sync() -> Any:
            client = redis.Redis(**options)
            try:
                return client.execute_command(*command)
            finally:
                client.close()

        return run_sync

    async def run_async() -> Any:
        options["retry"] = redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0)
        client = redis_asyncio.Redis(**options)
        try:
            return await client.execute_command(*command)
        finally:
            await client.aclose()

    return lambda: asyncio.run(run_async())


def _provoke(flavour: str, case: str, own: Callable[..., OwnRedis], silent_port: int) -> BaseException:
    shared = {"db": 11}
    if case == "refused":
        return provoke(_call(flavour, free_port(), ("PING",)))
    if case == "timeout":
        return provoke(_call(flavour, silent_port, ("PING",)))
    if case in ("wrongtype", "not_an_integer"):
        require_service("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --port 6379")
        key = f"{PREFIX}{case}"
        client = redis.Redis(port=6379, **shared)
        client.set(key, "text", ex=60)
        client.close()
        command = ("LPUSH", key, "1") if case == "wrongtype" else ("INCR", key)
        return provoke(_call(flavour, 6379, command, **shared))
    if case in ("noscript", "unknown_command", "wrong_arity"):
        require_service("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --port 6379")
        command = {
            "noscript": ("EVALSHA", "0" * 40, "0"),
            "unknown_command": ("RK_CLASSIFY_NO_SUCH_COMMAND",),
            "wrong_arity": ("GET",),
        }[case]
        return provoke(_call(flavour, 6379, command, **shared))
    if case == "read_only_replica":
        server = own("--replicaof", "127.0.0.1", str(free_port()), "--replica-read-only", "yes")
        return provoke(_call(flavour, server.port, ("SET", f"{PREFIX}k", "v")))
    if case == "master_down":
        server = own("--replicaof", "127.0.0.1", str(free_port()), "--replica-serve-stale-data", "no")
        return provoke(_call(flavour, server.port, ("GET", f"{PREFIX}k")))
    if case == "out_of_memory":
        server = own("--maxmemory", "1", "--maxmemory-policy", "noeviction")
        return provoke(_call(flavour, server.port, ("SET", f"{PREFIX}k", "v")))
    if case in ("noauth", "wrongpass"):
        server = own("--requirepass", "rk-classify-secret")
        extra = {"password": "wrong"} if case == "wrongpass" else {}
        return provoke(_call(flavour, server.port, ("GET", f"{PREFIX}k"), **extra))
    if case == "pool_full":
        server = own()
        if flavour == "sync":
            client = redis.Redis(port=server.port, max_connections=1)
            held = client.connection_pool.get_connection()
            try:
                return provoke(client.ping)
            finally:
                client.connection_pool.release(held)
                client.close()

        async def full() -> BaseException:
            client = redis_asyncio.Redis(port=server.port, max_connections=1)
            held = await client.connection_pool.get_connection()
            try:
                await client.ping()
            except Exception as err:
                return err
            finally:
                await client.connection_pool.release(held)
                await client.aclose()
            raise AssertionError("no error")

        return asyncio.run(full())
    if case == "server_killed":
        server = own()
        if flavour == "sync":
            client = redis.Redis(
                port=server.port, socket_timeout=0.5, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0)
            )
            client.ping()
            server.stop()
            try:
                return provoke(client.ping)
            finally:
                client.close()

        async def go() -> BaseException:
            client = redis_asyncio.Redis(
                port=server.port,
                socket_timeout=0.5,
                retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0),
            )
            await client.ping()
            server.stop()
            try:
                await client.ping()
            except Exception as err:
                return err
            finally:
                await client.aclose()
            raise AssertionError("no error")

        return asyncio.run(go())
    raise AssertionError(case)


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_redis_errors(flavour: str, case: str, own: Callable[..., OwnRedis], silent_port: int) -> None:
    """Each provoked Redis failure is classified as the table says, with the sync and the asyncio client."""
    err = _provoke(flavour, case, own, silent_port)
    verdict = retrykit.classify(err)
    assert CASES[case] == verdict.category, str(retrykit.explain(err))
