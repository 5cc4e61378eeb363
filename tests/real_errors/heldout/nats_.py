"""nats-py against nats-server processes the tests start (with a password, a small payload limit)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import nats

from retrykit import ErrorCategory

from .._servers import free_port
from ._servers import close_at_once, closed_port, hang, scripted

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR


@dataclass
class Env:
    port: int
    closing: int
    hanging: int


def _server(stack: ExitStack, *args: str) -> int:
    binary = shutil.which("nats-server")
    assert binary, "nats-server is not on PATH"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(proc.wait, 10)
    stack.callback(proc.terminate)
    import socket

    for _ in range(100):
        assert proc.poll() is None, "nats-server did not start"
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return port


@contextmanager
def env() -> Iterator[Env]:
    with ExitStack() as stack:
        config = stack.enter_context(tempfile.TemporaryDirectory()) + "/nats.conf"
        with open(config, "w") as f:
            f.write("max_payload: 1024\n")
        port = _server(stack, "--user", "user", "--pass", "secret", "-c", config)
        yield Env(port, stack.enter_context(scripted(close_at_once)), stack.enter_context(scripted(hang)))


def _run(
    port: int, action: Callable[[Any], Any], user: str = "user", password: str = "secret", timeout: float = 2
) -> None:
    async def go() -> None:
        nc = await nats.connect(
            f"nats://{user}:{password}@127.0.0.1:{port}",
            allow_reconnect=False,
            connect_timeout=timeout,
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            error_cb=_quiet,
        )
        try:
            await action(nc)
        finally:
            if not nc.is_closed:
                await nc.close()

    asyncio.run(go())


async def _quiet(err: Exception) -> None:
    pass


async def _nothing(nc: Any) -> None:
    pass


async def _closed_publish(nc: Any) -> None:
    await nc.close()
    await nc.publish("a", b"x")


async def _closed_subscribe(nc: Any) -> None:
    await nc.close()
    await nc.subscribe("a")


Case = tuple[Callable[[Env], Any], ErrorCategory]

CASES: dict[str, Case] = {
    "nats wrong password": (lambda e: _run(e.port, _nothing, password="wrong"), PERM),
    "nats unknown user": (lambda e: _run(e.port, _nothing, user="nobody"), PERM),
    "nats payload over max_payload": (lambda e: _run(e.port, lambda nc: nc.publish("a", b"x" * 5000)), DATA),
    "nats empty subject": (lambda e: _run(e.port, lambda nc: nc.publish("", b"x")), DATA),
    "nats request with no responders": (
        lambda e: _run(e.port, lambda nc: nc.request("nobody.home", b"x", timeout=1)),
        TEMP,
    ),
    "nats publish after close": (lambda e: _run(e.port, _closed_publish), PERM),
    "nats subscribe after close": (lambda e: _run(e.port, _closed_subscribe), PERM),
    "nats refused": (lambda e: _run(closed_port(), _nothing), NET),
    "nats server closes": (lambda e: _run(e.closing, _nothing), NET),
    "nats connect timeout": (lambda e: _run(e.hanging, _nothing, timeout=0.3), NET),
}
