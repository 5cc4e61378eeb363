"""xmlrpc.client against the standard library's XML-RPC server and scripted HTTP replies."""

from __future__ import annotations

import threading
import xmlrpc.client
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from retrykit import ErrorCategory

from ._servers import close_at_once, closed_port, hang, scripted

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR


@dataclass
class Env:
    port: int
    status: dict[int, int]
    closing: int
    hanging: int


class _Quiet(SimpleXMLRPCRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _status(code: int) -> Callable[[Any], None]:
    def script(conn: Any) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        conn.sendall(f"HTTP/1.1 {code} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())

    return script


@contextmanager
def env() -> Iterator[Env]:
    with ExitStack() as stack:
        server = SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=_Quiet, logRequests=False)
        server.register_function(lambda a, b: a + b, "add")
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        statuses = {
            c: stack.enter_context(scripted(_status(c))) for c in (401, 403, 404, 413, 429, 500, 502, 503)
        }
        yield Env(
            server.server_address[1],
            statuses,
            stack.enter_context(scripted(close_at_once)),
            stack.enter_context(scripted(hang)),
        )


def _proxy(port: int, path: str = "/RPC2", timeout: float = 5) -> Any:
    transport = xmlrpc.client.Transport()
    transport.timeout = timeout  # type: ignore[attr-defined]
    return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}{path}")


Case = tuple[Callable[[Env], Any], ErrorCategory]

CASES: dict[str, Case] = {
    "xmlrpc unknown method fault": (lambda e: _proxy(e.port).nope(), PERM),
    "xmlrpc wrong path 404": (lambda e: _proxy(e.port, "/other").add(1, 2), PERM),
    "xmlrpc unmarshallable None": (lambda e: _proxy(e.port).add(None, 1), PERM),
    "xmlrpc int too large": (lambda e: _proxy(e.port).add(2**40, 1), DATA),
    **{
        f"xmlrpc http {code}": ((lambda c: lambda e: _proxy(e.status[c]).add(1, 2))(code), category)
        for code, category in (
            (401, PERM),
            (403, PERM),
            (404, PERM),
            (413, DATA),
            (429, ErrorCategory.API_RATE_LIMIT),
            (500, TEMP),
            (502, TEMP),
            (503, TEMP),
        )
    },
    "xmlrpc server closes": (lambda e: _proxy(e.closing).add(1, 2), NET),
    "xmlrpc refused": (lambda e: _proxy(closed_port()).add(1, 2), NET),
}
