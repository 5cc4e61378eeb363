"""Small servers the real-error tests start and stop themselves: a scripted HTTP server (plain or TLS)."""

from __future__ import annotations

import json
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest


def provoke(fn: Callable[[], Any]) -> BaseException:
    """Run *fn* and return the exception it raised (fail the test if it raised none)."""
    try:
        fn()
    except BaseException as err:
        return err
    pytest.fail(f"{fn} raised nothing")


def free_port() -> int:
    """A TCP port nobody listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_request(conn: socket.socket) -> tuple[str, str, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return "", "", {}, b""
        data += chunk
        if data[:1] == b"\x16":  # a TLS ClientHello on the plain port: answer as a web server does
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return "", "", {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = ([*lines[0].split(" ", 2), "", ""])[:3]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return method, target, headers, body


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _path_headers(segments: list[str]) -> dict[str, str]:
    """Response headers asked for in the path: ``.../<name>=<value>`` (percent-encoded or not)."""
    pairs = (unquote(segment).partition("=") for segment in segments)
    return {name: value for name, sep, value in pairs if sep}


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(5)
        try:
            method, target, headers, body = _read_request(conn)
        except OSError:
            return
        if not method:
            return
        self.server.seen.append((method, target, headers, body))
        url = urlsplit(target)
        parts = url.path.strip("/").split("/")
        query = dict(parse_qsl(url.query))
        if parts[0] == "reset":  # read the whole request, then reset the connection
            _reset(conn)
            return
        if parts[0] == "close":  # read the request, close without a response
            conn.close()
            return
        if parts[0] == "hang":  # read the request, answer nothing until the client gives up
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                time.sleep(0.02)
            conn.close()
            return
        if parts[0] == "redirect":
            self._send(conn, 302, {"Location": "/redirect"}, b"")
            return
        if parts[0] == "aws":  # /aws/<code>/<status>[/<header>=<value>...]: an AWS JSON-protocol error
            code, status = parts[1], int(parts[2])
            payload = json.dumps({"__type": code, "message": f"provoked {code}"}).encode()
            extra = {**dict(query.items()), **_path_headers(parts[3:])}
            extra.setdefault("x-amzn-RequestId", "rk-classify")
            extra["x-amzn-ErrorType"] = code
            self._send(conn, status, {"Content-Type": "application/x-amz-json-1.0", **extra}, payload)
            return
        if parts[0] == "s3err":  # path-style S3 /s3err/<code>/<status>[/<header>=<value>...]: XML error
            code, status = unquote(parts[1]), int(parts[2])
            payload = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>provoked {code}</Message>"
                "<RequestId>rk-classify</RequestId><HostId>rk</HostId></Error>"
            ).encode()
            extra = {"Content-Type": "application/xml", **_path_headers(parts[3:])}
            self._send(conn, status, extra, payload)
            return
        if parts[0] == "status":
            self._send(conn, int(parts[1]), dict(query), b"provoked")
            return
        self._send(conn, 200, {}, b"ok")

    @staticmethod
    def _send(conn: socket.socket, status: int, headers: dict[str, str], body: bytes) -> None:
        lines = [f"HTTP/1.1 {status} Provoked"]
        headers = {"Content-Length": str(len(body)), "Connection": "close", **headers}
        lines += [f"{k}: {v}" for k, v in headers.items()]
        with suppress(OSError):
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        conn.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.stopping = threading.Event()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        if self.context is not None:
            conn = self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            conn.settimeout(5)
            try:
                conn.do_handshake()
            except (OSError, ssl.SSLError):
                conn.close()
                raise
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up are the point of these tests: stay quiet."""


@contextmanager
def http_server(context: ssl.SSLContext | None = None) -> Iterator[tuple[str, _Server]]:
    """A scripted HTTP server on a free port; yields its base URL. Stops itself."""
    server = _Server(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    scheme = "https" if context is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a freshly made self-signed certificate (needs the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate: apt-get install openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
