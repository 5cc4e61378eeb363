"""websockets (asyncio client) against websockets' own server, closing with chosen codes."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.http11 import Response

from retrykit import ErrorCategory

from ._servers import close_at_once, closed_port, hang, scripted

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR
RATE = ErrorCategory.API_RATE_LIMIT


_QUIET = logging.getLogger("retrykit-heldout-ws")
_QUIET.setLevel(logging.CRITICAL)


async def _handler(ws: Any) -> None:
    """``/close/<code>`` closes with that code after the first message; ``/echo`` echoes."""
    path = ws.request.path
    async for message in ws:
        if path.startswith("/close/"):
            await ws.close(int(path.rsplit("/", 1)[1]), "scripted")
            return
        await ws.send(message)


def _process_request(ws: Any, request: Any) -> Response | None:
    if request.path.startswith("/status/"):
        code = int(request.path.rsplit("/", 1)[1])
        return ws.respond(code, "scripted\n")
    return None


@dataclass
class Env:
    port: int
    closing: int
    hanging: int


@contextmanager
def env() -> Iterator[Env]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        server = await serve(
            _handler, "127.0.0.1", 0, max_size=1000, process_request=_process_request, logger=_QUIET
        )
        holder["server"] = server
        holder["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        await server.wait_closed()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(5)
    try:
        with ExitStack() as stack:
            yield Env(
                holder["port"],
                stack.enter_context(scripted(close_at_once)),
                stack.enter_context(scripted(hang)),
            )
    finally:
        loop.call_soon_threadsafe(holder["server"].close)
        thread.join(5)
        loop.close()


def _talk(
    uri: str,
    message: str | bytes = "hi",
    recv: bool = True,
    max_size: int | None = 2**20,
    open_timeout: float = 5,
) -> None:
    async def go() -> None:
        async with connect(uri, max_size=max_size, open_timeout=open_timeout) as ws:
            await ws.send(message)
            if recv:
                await ws.recv()

    asyncio.run(go())


def _after_close(uri: str) -> None:
    async def go() -> None:
        ws = await connect(uri)
        await ws.close()
        await ws.send("late")

    asyncio.run(go())


def _close(code: int) -> Callable[[Env], None]:
    return lambda e: _talk(f"ws://127.0.0.1:{e.port}/close/{code}")


def _status(code: int) -> Callable[[Env], None]:
    return lambda e: _talk(f"ws://127.0.0.1:{e.port}/status/{code}")


Case = tuple[Callable[[Env], Any], ErrorCategory]

CASES: dict[str, Case] = {
    # close codes (RFC 6455 §7.4.1, IANA registry)
    "websockets close 1001 going away": (_close(1001), NET),
    "websockets close 1003 unsupported data": (_close(1003), DATA),
    "websockets close 1007 invalid payload": (_close(1007), DATA),
    "websockets close 1008 policy violation": (_close(1008), PERM),
    "websockets close 1011 internal error": (_close(1011), TEMP),
    "websockets close 1012 service restart": (_close(1012), TEMP),
    "websockets close 1013 try again later": (_close(1013), TEMP),
    "websockets message over the server's limit 1009": (
        lambda e: _talk(f"ws://127.0.0.1:{e.port}/echo", "x" * 5000),
        DATA,
    ),
    "websockets message over the client's limit 1009": (
        lambda e: _talk(f"ws://127.0.0.1:{e.port}/echo", "x" * 500, max_size=100),
        DATA,
    ),
    # the opening handshake's HTTP status
    "websockets handshake 401": (_status(401), PERM),
    "websockets handshake 403": (_status(403), PERM),
    "websockets handshake 404": (_status(404), PERM),
    "websockets handshake 429": (_status(429), RATE),
    "websockets handshake 503": (_status(503), TEMP),
    "websockets handshake 200 not an upgrade": (_status(200), PERM),
    # the client's own mistakes and the transport
    "websockets invalid uri": (lambda e: _talk("http://127.0.0.1/"), PERM),
    "websockets send after close": (lambda e: _after_close(f"ws://127.0.0.1:{e.port}/echo"), PERM),
    "websockets server closes the socket": (lambda e: _talk(f"ws://127.0.0.1:{e.closing}/"), NET),
    "websockets refused": (lambda e: _talk(f"ws://127.0.0.1:{closed_port()}/"), NET),
    "websockets open timeout": (lambda e: _talk(f"ws://127.0.0.1:{e.hanging}/", open_timeout=0.3), NET),
}

assert websockets.__version__
