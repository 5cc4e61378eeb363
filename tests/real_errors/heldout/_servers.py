"""Servers the held-out cases talk to: started on free ports by the tests, stopped after them."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from .._servers import free_port

Script = Callable[[socket.socket], None]


class _Handler(socketserver.BaseRequestHandler):
    server: _Scripted

    def handle(self) -> None:
        with suppress(OSError):
            self.server.script(self.request)


class _Scripted(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, script: Script) -> None:
        self.script = script
        super().__init__(("127.0.0.1", 0), _Handler)


@contextmanager
def scripted(script: Script) -> Iterator[int]:
    """A TCP server that runs *script* on each connection; yields its port."""
    server = _Scripted(script)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def lines(*replies: bytes, then_read: bool = True) -> Script:
    """A script that sends *replies* one after the other, reading one line before each but the first."""

    def script(conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        for index, reply in enumerate(replies):
            if index and then_read:
                reader.readline()
            conn.sendall(reply)
        if then_read:
            reader.readline()

    return script


def closed_port() -> int:
    """A port nothing listens on."""
    return free_port()


def hang(conn: socket.socket) -> None:
    """Accept, read and say nothing until the client goes (its read times out)."""
    while conn.recv(65536):
        pass


def close_at_once(conn: socket.socket) -> None:
    """Accept and close at once."""
    conn.close()


def noop(*_: Any) -> None:
    """Nothing."""
