"""pymemcache against a memcached-protocol server the tests start, scripted reply by reply."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from pymemcache.client.base import Client

from retrykit import ErrorCategory

from ._servers import close_at_once, closed_port, hang, scripted

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR

_REPLIES = {
    "oom": b"SERVER_ERROR out of memory storing object\r\n",
    "too_large": b"SERVER_ERROR object too large for cache\r\n",
    "busy": b"SERVER_ERROR temporary failure\r\n",
    "bad_chunk": b"CLIENT_ERROR bad data chunk\r\n",
    "unknown": b"ERROR\r\n",
    "garbage": b"WHAT IS THIS\r\n",
}


def _reply(reply: bytes) -> Callable[[Any], None]:
    def script(conn: Any) -> None:
        reader = conn.makefile("rb")
        while True:
            line = reader.readline()
            if not line:
                return
            if line.startswith((b"set ", b"add ")):
                reader.readline()
            conn.sendall(reply)

    return script


@dataclass
class Env:
    port: dict[str, int]
    closing: int
    hanging: int


@contextmanager
def env() -> Iterator[Env]:
    with ExitStack() as stack:
        ports = {name: stack.enter_context(scripted(_reply(reply))) for name, reply in _REPLIES.items()}
        yield Env(ports, stack.enter_context(scripted(close_at_once)), stack.enter_context(scripted(hang)))


def _client(port: int, timeout: float = 5) -> Client:
    return Client(("127.0.0.1", port), connect_timeout=timeout, timeout=timeout)


def _set(port: int, key: str = "k", value: bytes = b"v", timeout: float = 5) -> None:
    client = _client(port, timeout)
    try:
        client.set(key, value, noreply=False)
    finally:
        client.close()


Case = tuple[Callable[[Env], Any], ErrorCategory]

CASES: dict[str, Case] = {
    "pymemcache server out of memory": (lambda e: _set(e.port["oom"]), TEMP),
    "pymemcache object too large": (lambda e: _set(e.port["too_large"]), DATA),
    "pymemcache server temporary failure": (lambda e: _set(e.port["busy"]), TEMP),
    "pymemcache client error bad chunk": (lambda e: _set(e.port["bad_chunk"]), DATA),
    "pymemcache unknown command": (lambda e: _client(e.port["unknown"]).get("k"), PERM),
    "pymemcache garbage reply": (lambda e: _client(e.port["garbage"]).get("k"), PERM),
    "pymemcache key too long": (lambda e: _set(e.port["oom"], key="k" * 300), DATA),
    "pymemcache key with a space": (lambda e: _set(e.port["oom"], key="a b"), DATA),
    "pymemcache server closes": (lambda e: _client(e.closing).get("k"), NET),
    "pymemcache refused": (lambda e: _client(closed_port()).get("k"), NET),
    "pymemcache read timeout": (lambda e: _client(e.hanging, 0.3).get("k"), NET),
}
