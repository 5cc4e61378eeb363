"""A scripted HTTP/1.1 server on a real socket, for the tests: each request gets the next action."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple


class Reply(NamedTuple):
    """Answer with *status*, *headers* and *body*."""

    status: int = 200
    headers: dict[str, str] = {}
    body: bytes = b"ok"


class Hang(NamedTuple):
    """Read the request, answer nothing until the test ends (the client's read timeout fires)."""


class Cut(NamedTuple):
    """Send the headers and part of the body, then close the connection (the body is cut short)."""

    status: int = 200


class Seen(NamedTuple):
    """A request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Action = Reply | Hang | Cut


class Server:
    """``server.script(...)`` the actions, in order (the last one repeats); ``server.seen`` the requests."""

    def __init__(self) -> None:
        self._actions: list[Action] = [Reply()]
        self.seen: list[Seen] = []
        self.connections = 0
        self.released = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go in two writes: without this, Nagle holds the body for the
                # client's delayed ACK (40 ms a request on a kept-alive connection)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with owner._lock:
                    owner.connections += 1

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self) -> None:
                body = self._body()
                with owner._lock:
                    owner.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                    actions = owner._actions
                    action = actions.pop(0) if len(actions) > 1 else actions[0]
                if isinstance(action, Hang):
                    owner.released.wait(10)
                    self.close_connection = True
                    return
                if isinstance(action, Cut):
                    self.send_response(action.status)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"partial")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_response(action.status)
                for name, value in action.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(action.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(action.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"

    def script(self, *actions: Action) -> None:
        """The actions for the next requests, in order; the last one answers every later request."""
        with self._lock:
            self._actions = list(actions)

    def methods(self) -> list[str]:
        """The methods of the requests seen, in order."""
        return [seen.method for seen in self.seen]


@contextmanager
def serving() -> Iterator[Server]:
    """A ``Server`` on a free port of 127.0.0.1, shut down afterwards."""
    server = Server()
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(5)


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    time.sleep(0)
    return port


class HandshakeBreaker:
    """A TCP server that reads a TLS ClientHello and resets the connection: the handshake fails."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.stopped = threading.Event()
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.connections = 0

    def serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.recv(16)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


@contextmanager
def breaking_handshakes() -> Iterator[HandshakeBreaker]:
    """A ``HandshakeBreaker`` on a free port, closed afterwards."""
    server = HandshakeBreaker()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopped.set()
        thread.join(5)
        server.sock.close()
