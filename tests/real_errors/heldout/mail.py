"""smtplib and aiosmtplib against an aiosmtpd server whose replies the addresses choose."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import aiosmtplib
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from retrykit import ErrorCategory

from .._servers import free_port
from ._servers import close_at_once, closed_port, hang, lines, scripted

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR

_REPLIES = {
    "550": "550 5.1.1 No such user here",
    "553": "553 5.1.3 Mailbox name not allowed",
    "554": "554 5.7.1 Transaction failed: relay access denied",
    "450": "450 4.2.1 Mailbox busy, try again later",
    "451": "451 4.3.0 Local error in processing",
    "452": "452 4.3.1 Insufficient system storage",
    "421": "421 4.3.2 Service shutting down",
}


class _Handler:
    """Replies chosen by the address's local part (``550@example.com`` is refused with 550)."""

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        reply = _REPLIES.get(address.partition("@")[0])
        if reply:
            return reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        reply = _REPLIES.get(address.partition("@")[0])
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content.decode("latin-1")
        for code, reply in _REPLIES.items():
            if f"reply-{code}" in content:
                return reply
        return "250 OK"


def _refuse(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    return AuthResult(success=False, handled=False)


@dataclass
class Env:
    port: int
    auth_port: int
    small_port: int
    greet_421: int
    greet_554: int
    helo_550: int
    closing: int
    hanging: int


@contextmanager
def env() -> Iterator[Env]:
    """An aiosmtpd server (plain, with AUTH, with a 200-byte limit) and scripted ones."""
    with ExitStack() as stack:
        ports = []
        for kwargs in (
            {},
            {"authenticator": _refuse, "auth_require_tls": False},
            {"data_size_limit": 200},
        ):
            port = free_port()
            controller = Controller(_Handler(), hostname="127.0.0.1", port=port, **kwargs)
            controller.start()
            stack.callback(controller.stop)
            ports.append(port)
        scripts = (
            lines(b"421 4.3.2 Too busy, try later\r\n", then_read=False),
            lines(b"554 5.7.1 No SMTP service here\r\n", then_read=False),
            lines(b"220 ready\r\n", b"502 5.5.2 EHLO not recognised\r\n", b"550 5.7.1 HELO refused\r\n"),
            close_at_once,
            hang,
        )
        ports.extend(stack.enter_context(scripted(s)) for s in scripts)
        yield Env(*ports)


def _send(port: int, sender: str = "a@example.com", to: str = "b@example.com", body: str = "hi") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.sendmail(sender, [to], f"Subject: t\r\n\r\n{body}\r\n")


def _login(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.login("user", "wrong")


def _starttls(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.starttls()


def _not_connected(port: int) -> None:
    smtplib.SMTP().sendmail("a@example.com", ["b@example.com"], "hi")


def _timeout(port: int) -> None:
    smtplib.SMTP("127.0.0.1", port, timeout=0.3)


def _asend(port: int, sender: str = "a@example.com", to: str = "b@example.com", body: str = "hi") -> None:
    async def go() -> None:
        await aiosmtplib.send(
            f"Subject: t\r\n\r\n{body}\r\n",
            sender=sender,
            recipients=[to],
            hostname="127.0.0.1",
            port=port,
            timeout=5,
            start_tls=False,
        )

    asyncio.run(go())


def _alogin(port: int) -> None:
    async def go() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5, start_tls=False)
        await client.connect()
        try:
            await client.login("user", "wrong")
        finally:
            client.close()

    asyncio.run(go())


def _aconnect(port: int, timeout: float = 5) -> None:
    async def go() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=timeout, start_tls=False)
        await client.connect()

    asyncio.run(go())


def _anot_connected(port: int) -> None:
    async def go() -> None:
        await aiosmtplib.SMTP(hostname="127.0.0.1", port=port).sendmail("a@x.org", ["b@x.org"], "hi")

    asyncio.run(go())


Case = tuple[Callable[[Env], Any], ErrorCategory]

CASES: dict[str, Case] = {
    # smtplib: reply codes (RFC 5321 §4.2.1: 4yz transient, 5yz permanent)
    "smtplib rcpt 550 no such user": (lambda e: _send(e.port, to="550@example.com"), PERM),
    "smtplib rcpt 553 mailbox name": (lambda e: _send(e.port, to="553@example.com"), PERM),
    "smtplib rcpt 554 relay denied": (lambda e: _send(e.port, to="554@example.com"), PERM),
    "smtplib rcpt 450 mailbox busy": (lambda e: _send(e.port, to="450@example.com"), TEMP),
    "smtplib rcpt 452 storage": (lambda e: _send(e.port, to="452@example.com"), TEMP),
    "smtplib rcpt 421 shutting down": (lambda e: _send(e.port, to="421@example.com"), TEMP),
    "smtplib sender 550": (lambda e: _send(e.port, sender="550@example.com"), PERM),
    "smtplib sender 451": (lambda e: _send(e.port, sender="451@example.com"), TEMP),
    "smtplib data 554": (lambda e: _send(e.port, body="reply-554"), PERM),
    "smtplib data 451": (lambda e: _send(e.port, body="reply-451"), TEMP),
    "smtplib data 452": (lambda e: _send(e.port, body="reply-452"), TEMP),
    "smtplib message over the size limit": (lambda e: _send(e.small_port, body="x" * 400), DATA),
    "smtplib auth 535": (lambda e: _login(e.auth_port), PERM),
    "smtplib auth not offered": (lambda e: _login(e.port), PERM),
    "smtplib starttls not offered": (lambda e: _starttls(e.port), PERM),
    "smtplib greeting 421": (lambda e: _send(e.greet_421), TEMP),
    "smtplib greeting 554": (lambda e: _send(e.greet_554), PERM),
    "smtplib helo 550": (lambda e: _send(e.helo_550), PERM),
    "smtplib server closes": (lambda e: _send(e.closing), NET),
    "smtplib refused": (lambda e: _send(closed_port()), NET),
    "smtplib greeting timeout": (lambda e: _timeout(e.hanging), NET),
    "smtplib used before connect": (_not_connected, PERM),
    # aiosmtplib
    "aiosmtplib rcpt 550": (lambda e: _asend(e.port, to="550@example.com"), PERM),
    "aiosmtplib rcpt 553": (lambda e: _asend(e.port, to="553@example.com"), PERM),
    "aiosmtplib rcpt 450": (lambda e: _asend(e.port, to="450@example.com"), TEMP),
    "aiosmtplib rcpt 452": (lambda e: _asend(e.port, to="452@example.com"), TEMP),
    "aiosmtplib sender 550": (lambda e: _asend(e.port, sender="550@example.com"), PERM),
    "aiosmtplib sender 451": (lambda e: _asend(e.port, sender="451@example.com"), TEMP),
    "aiosmtplib data 554": (lambda e: _asend(e.port, body="reply-554"), PERM),
    "aiosmtplib data 451": (lambda e: _asend(e.port, body="reply-451"), TEMP),
    "aiosmtplib message over the size limit": (lambda e: _asend(e.small_port, body="x" * 400), DATA),
    "aiosmtplib auth 535": (lambda e: _alogin(e.auth_port), PERM),
    "aiosmtplib auth not offered": (lambda e: _alogin(e.port), PERM),
    "aiosmtplib greeting 421": (lambda e: _aconnect(e.greet_421), TEMP),
    "aiosmtplib greeting 554": (lambda e: _aconnect(e.greet_554), PERM),
    "aiosmtplib server closes": (lambda e: _aconnect(e.closing), NET),
    "aiosmtplib refused": (lambda e: _aconnect(closed_port()), NET),
    "aiosmtplib greeting timeout": (lambda e: _aconnect(e.hanging, timeout=0.3), NET),
    "aiosmtplib used before connect": (_anot_connected, PERM),
}
