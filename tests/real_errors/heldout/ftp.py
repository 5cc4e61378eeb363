"""ftplib against a pyftpdlib server (a read-only user) and scripted FTP servers."""

from __future__ import annotations

import ftplib
import io
import logging
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

from retrykit import ErrorCategory

from ._servers import close_at_once, closed_port, hang, lines, scripted

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR


@dataclass
class Env:
    port: int
    busy: int
    after_login: dict[str, int]
    garbage: int
    closing: int
    hanging: int


_LOGIN = (b"220 ready\r\n", b"331 password please\r\n", b"230 logged in\r\n")


@contextmanager
def env() -> Iterator[Env]:
    """pyftpdlib on a free port, and scripted servers answering one command after login."""
    with ExitStack() as stack:
        home = stack.enter_context(tempfile.TemporaryDirectory())
        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        authorizer = DummyAuthorizer()
        authorizer.add_user("user", "secret", home, perm="elr")
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "auth_failed_timeout": 0})
        server = FTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.05}, daemon=True)
        thread.start()
        stack.callback(server.close_all)
        port = server.address[1]
        busy = stack.enter_context(
            scripted(lines(b"421 Too many connections, try later\r\n", then_read=False))
        )
        after = {
            code: stack.enter_context(scripted(lines(*_LOGIN, f"{code} scripted reply\r\n".encode())))
            for code in ("450", "451", "452", "425", "530", "553")
        }
        garbage = stack.enter_context(scripted(lines(b"hello there\r\n", then_read=False)))
        yield Env(
            port,
            busy,
            after,
            garbage,
            stack.enter_context(scripted(close_at_once)),
            stack.enter_context(scripted(hang)),
        )


def _session(port: int, user: str = "user", password: str = "secret", timeout: float = 5) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=timeout)
    ftp.connect("127.0.0.1", port)
    ftp.login(user, password)
    return ftp


def _do(port: int, action: Callable[[ftplib.FTP], Any]) -> None:
    ftp = _session(port)
    try:
        action(ftp)
    finally:
        ftp.close()


Case = tuple[Callable[[Env], Any], ErrorCategory]

CASES: dict[str, Case] = {
    "ftplib wrong password 530": (lambda e: _session(e.port, password="wrong").close(), PERM),
    "ftplib unknown user 530": (lambda e: _session(e.port, user="nobody").close(), PERM),
    "ftplib retr missing file 550": (lambda e: _do(e.port, lambda f: f.retrbinary("RETR nope", print)), PERM),
    "ftplib cwd missing dir 550": (lambda e: _do(e.port, lambda f: f.cwd("nope")), PERM),
    "ftplib stor without permission 550": (
        lambda e: _do(e.port, lambda f: f.storbinary("STOR x", io.BytesIO(b"x"))),
        PERM,
    ),
    "ftplib delete without permission 550": (lambda e: _do(e.port, lambda f: f.delete("x")), PERM),
    "ftplib unknown command 500": (lambda e: _do(e.port, lambda f: f.sendcmd("FROB")), PERM),
    "ftplib bad argument 501": (lambda e: _do(e.port, lambda f: f.sendcmd("PORT x")), PERM),
    "ftplib greeting 421 too many connections": (lambda e: _session(e.busy).close(), TEMP),
    "ftplib 450 file busy": (lambda e: _do(e.after_login["450"], lambda f: f.sendcmd("RETR x")), TEMP),
    "ftplib 451 local error": (lambda e: _do(e.after_login["451"], lambda f: f.sendcmd("RETR x")), TEMP),
    "ftplib 452 no storage": (lambda e: _do(e.after_login["452"], lambda f: f.sendcmd("STOR x")), TEMP),
    "ftplib 425 no data connection": (lambda e: _do(e.after_login["425"], lambda f: f.sendcmd("LIST")), TEMP),
    "ftplib 530 not logged in": (lambda e: _do(e.after_login["530"], lambda f: f.sendcmd("LIST")), PERM),
    "ftplib 553 file name not allowed": (
        lambda e: _do(e.after_login["553"], lambda f: f.sendcmd("STOR x")),
        PERM,
    ),
    "ftplib garbage greeting": (lambda e: _session(e.garbage).close(), PERM),
    "ftplib server closes": (lambda e: _session(e.closing).close(), NET),
    "ftplib refused": (lambda e: _session(closed_port()).close(), NET),
    "ftplib greeting timeout": (lambda e: _session(e.hanging, timeout=0.3).close(), NET),
}
