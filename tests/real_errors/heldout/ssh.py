"""paramiko against its own SSH server (password and key auth, channels refused) and scripted ones."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from retrykit import ErrorCategory

from ._servers import close_at_once, closed_port, hang, lines, scripted

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR


class _Server(paramiko.ServerInterface):
    """``user``/``secret`` by password, ``keyonly`` by key only; every channel refused."""

    def __init__(self, key: paramiko.PKey) -> None:
        self.key = key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey" if username == "keyonly" else "password,publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        ok = username == "user" and password == "secret"
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key == self.key else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


@dataclass
class Env:
    port: int
    host_key: paramiko.PKey
    client_key: paramiko.PKey
    other_key: paramiko.PKey
    known_hosts: Path
    wrong_known_hosts: Path
    closing: int
    hanging: int
    http: int


def _serve(
    listener: socket.socket, host_key: paramiko.PKey, client_key: paramiko.PKey, stop: threading.Event
) -> None:
    transports = []
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except OSError:
            break
        transport = paramiko.Transport(conn)
        transport.add_server_key(host_key)
        with suppress(Exception):
            transport.start_server(server=_Server(client_key))
        transports.append(transport)
    for transport in transports:
        transport.close()


@contextmanager
def env(tmp: Path | None = None) -> Iterator[Env]:
    import tempfile

    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        host_key = paramiko.ECDSAKey.generate()
        client_key = paramiko.ECDSAKey.generate()
        other_key = paramiko.ECDSAKey.generate()
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        stop = threading.Event()
        thread = threading.Thread(target=_serve, args=(listener, host_key, client_key, stop), daemon=True)
        thread.start()
        stack.callback(thread.join, 5)
        stack.callback(listener.close)
        stack.callback(stop.set)
        known, wrong = home / "known_hosts", home / "wrong_known_hosts"
        (home / "empty").write_text("")
        name = f"[127.0.0.1]:{port}"
        known.write_text(f"{name} {host_key.get_name()} {host_key.get_base64()}\n")
        wrong.write_text(f"{name} {other_key.get_name()} {other_key.get_base64()}\n")
        http = stack.enter_context(
            scripted(lines(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", then_read=False))
        )
        yield Env(
            port,
            host_key,
            client_key,
            other_key,
            known,
            wrong,
            stack.enter_context(scripted(close_at_once)),
            stack.enter_context(scripted(hang)),
            http,
        )


def _connect(
    e: Env, port: int | None = None, known: Path | None = None, policy: Any = None, **kwargs: Any
) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known or e.known_hosts))
    client.set_missing_host_key_policy(policy or paramiko.RejectPolicy())
    options: dict[str, Any] = {
        "timeout": 5,
        "banner_timeout": 5,
        "auth_timeout": 5,
        "allow_agent": False,
        "look_for_keys": False,
    }
    options.update(kwargs)
    try:
        client.connect("127.0.0.1", port or e.port, **options)
    except BaseException:
        client.close()
        raise
    return client


def _exec(e: Env) -> None:
    client = _connect(e, username="user", password="secret")
    try:
        client.exec_command("true")
    finally:
        client.close()


Case = tuple[Callable[[Env], Any], ErrorCategory]

CASES: dict[str, Case] = {
    "paramiko wrong password": (lambda e: _connect(e, username="user", password="wrong").close(), PERM),
    "paramiko unknown user": (lambda e: _connect(e, username="nobody", password="x").close(), PERM),
    "paramiko password where only keys are allowed": (
        lambda e: _connect(e, username="keyonly", password="x").close(),
        PERM,
    ),
    "paramiko key not accepted": (lambda e: _connect(e, username="user", pkey=e.other_key).close(), PERM),
    "paramiko no credentials": (lambda e: _connect(e, username="user").close(), PERM),
    "paramiko unknown host key": (
        lambda e: _connect(
            e, known=e.known_hosts.parent / "empty", username="user", password="secret"
        ).close(),
        PERM,
    ),
    "paramiko host key mismatch": (
        lambda e: _connect(e, known=e.wrong_known_hosts, username="user", password="secret").close(),
        PERM,
    ),
    "paramiko channel refused": (_exec, PERM),
    "paramiko refused": (
        lambda e: _connect(e, port=closed_port(), username="user", password="secret").close(),
        NET,
    ),
    "paramiko server closes": (
        lambda e: _connect(e, port=e.closing, username="u", password="p").close(),
        NET,
    ),
    "paramiko banner timeout": (
        lambda e: _connect(e, port=e.hanging, username="u", password="p", banner_timeout=0.3).close(),
        NET,
    ),
    "paramiko not an SSH server": (
        lambda e: _connect(e, port=e.http, username="u", password="p").close(),
        PERM,
    ),
}
