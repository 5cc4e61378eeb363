"""AMQP errors from the shared RabbitMQ (pika, py-amqp, kombu, aiormq, aio-pika), provoked for real."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory

from ..conftest import require_service
from ._servers import free_port, provoke

pika = pytest.importorskip("pika")
amqp = pytest.importorskip("amqp")
kombu = pytest.importorskip("kombu")
aiormq = pytest.importorskip("aiormq")
aio_pika = pytest.importorskip("aio_pika")

NET = ErrorCategory.NETWORK_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR

HOST, PORT = "127.0.0.1", 5672
PREFIX = "rk-classify2-"

# The pinned table (README "AMQP"): case -> category, the same for every client.
CASES: dict[str, ErrorCategory] = {
    "refused": NET,  # nothing listens on the port
    "hangs_up": NET,  # a server that accepts and closes at once: the connection was lost
    "wrong_password": PERM,  # 403 ACCESS_REFUSED at login
    "missing_vhost": PERM,  # 530 NOT_ALLOWED: vhost not found
    "missing_queue": PERM,  # 404 NOT_FOUND: passive declare
    "other_arguments": PERM,  # 406 PRECONDITION_FAILED: redeclare with other arguments
    "reserved_name": PERM,  # 403 ACCESS_REFUSED on the channel: the amq. prefix is reserved
    "locked_queue": TEMP,  # 405 RESOURCE_LOCKED: another connection's exclusive queue
}
# Queue arguments of a first declaration and of a contradicting second one (406).
FIRST, SECOND = {"x-max-length": 10}, {"x-max-length": 20}
CLIENTS = ["pika", "py-amqp", "kombu", "aiormq", "aio-pika"]


@pytest.fixture(scope="module")
def broker() -> None:
    """The shared RabbitMQ, or skip/fail."""
    require_service("RabbitMQ", HOST, PORT, "rabbitmq-server (guest/guest on 127.0.0.1:5672)")


@pytest.fixture
def hangs_up_port() -> Iterator[int]:
    """A port that accepts connections and closes each at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    stop.set()
    thread.join(2)
    sock.close()


@pytest.fixture
def locked_queue(broker: None) -> Iterator[str]:
    """An exclusive queue held by a connection of this test; gone when it closes."""
    name = f"{PREFIX}locked-{uuid.uuid4().hex[:8]}"
    holder = pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT))
    holder.channel().queue_declare(name, exclusive=True)
    yield name
    holder.close()


# ------------------------------------------------------------------ one operation per client


def _operation(case: str, queue: str) -> Callable[[Any], Any] | None:
    """What to do on an open channel; None for cases that fail while connecting."""
    if case == "missing_queue":
        return lambda ch: ("declare", f"{PREFIX}missing-{uuid.uuid4().hex[:8]}", {"passive": True})
    if case == "other_arguments":
        return lambda ch: ("redeclare", f"{PREFIX}args-{uuid.uuid4().hex[:8]}", {})
    if case == "reserved_name":
        return lambda ch: ("declare", "amq.rk-classify2-reserved", {})
    if case == "locked_queue":
        return lambda ch: ("declare", queue, {"passive": True})
    return None


def _target(case: str, port: int, hangs_up_port: int) -> tuple[int, str, str]:
    """(port, password, vhost) to connect with."""
    if case == "refused":
        return free_port(), "guest", "/"
    if case == "hangs_up":
        return hangs_up_port, "guest", "/"
    if case == "wrong_password":
        return port, "rk-classify2-wrong", "/"
    if case == "missing_vhost":
        return port, "guest", f"{PREFIX}missing-vhost"
    return port, "guest", "/"


def _pika(case: str, port: int, password: str, vhost: str, queue: str) -> None:
    params = pika.ConnectionParameters(
        HOST,
        port,
        vhost,
        pika.PlainCredentials("guest", password),
        connection_attempts=1,
        socket_timeout=2,
        blocked_connection_timeout=2,
    )
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        op = _operation(case, queue)
        if op is not None:
            what, name, kwargs = op(channel)
            if what == "redeclare":
                channel.queue_declare(name, exclusive=True, arguments=FIRST)
                channel.queue_declare(name, exclusive=True, arguments=SECOND)
            else:
                channel.queue_declare(name, **kwargs)
    finally:
        if connection.is_open:
            connection.close()


def _py_amqp(case: str, port: int, password: str, vhost: str, queue: str) -> None:
    connection = amqp.Connection(
        f"{HOST}:{port}", userid="guest", password=password, virtual_host=vhost, connect_timeout=2
    )
    try:
        connection.connect()
        channel = connection.channel()
        op = _operation(case, queue)
        if op is not None:
            what, name, kwargs = op(channel)
            if what == "redeclare":
                channel.queue_declare(name, exclusive=True, arguments=FIRST)
                channel.queue_declare(name, exclusive=True, arguments=SECOND)
            else:
                channel.queue_declare(name, **kwargs)
    finally:
        connection.collect()


def _kombu(case: str, port: int, password: str, vhost: str, queue: str) -> None:
    url = f"amqp://guest:{password}@{HOST}:{port}/{vhost if vhost != '/' else ''}"
    with kombu.Connection(url, connect_timeout=2) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        channel = connection.default_channel
        op = _operation(case, queue)
        if op is not None:
            what, name, kwargs = op(channel)
            if what == "redeclare":
                kombu.Queue(name, exclusive=True, queue_arguments=FIRST)(channel).declare()
                kombu.Queue(name, exclusive=True, queue_arguments=SECOND)(channel).declare()
            else:
                channel.queue_declare(name, **kwargs)


def _aiormq(case: str, port: int, password: str, vhost: str, queue: str) -> None:
    async def go() -> None:
        path = vhost if vhost != "/" else ""
        connection = await aiormq.connect(f"amqp://guest:{password}@{HOST}:{port}/{path}")
        try:
            channel = await connection.channel()
            op = _operation(case, queue)
            if op is not None:
                what, name, kwargs = op(channel)
                if what == "redeclare":
                    await channel.queue_declare(name, exclusive=True, arguments=FIRST)
                    await channel.queue_declare(name, exclusive=True, arguments=SECOND)
                else:
                    await channel.queue_declare(name, **kwargs)
        finally:
            await connection.close()

    asyncio.run(asyncio.wait_for(go(), 10))


def _aio_pika(case: str, port: int, password: str, vhost: str, queue: str) -> None:
    async def go() -> None:
        path = vhost if vhost != "/" else ""
        connection = await aio_pika.connect(f"amqp://guest:{password}@{HOST}:{port}/{path}", timeout=3)
        try:
            channel = await connection.channel()
            op = _operation(case, queue)
            if op is not None:
                what, name, kwargs = op(channel)
                if what == "redeclare":
                    await channel.declare_queue(name, exclusive=True, arguments=FIRST)
                    await channel.declare_queue(name, exclusive=True, arguments=SECOND)
                else:
                    await channel.declare_queue(name, **kwargs)
        finally:
            await connection.close()

    asyncio.run(asyncio.wait_for(go(), 10))


RUN: dict[str, Callable[[str, int, str, str, str], None]] = {
    "pika": _pika,
    "py-amqp": _py_amqp,
    "kombu": _kombu,
    "aiormq": _aiormq,
    "aio-pika": _aio_pika,
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_amqp_errors(broker: None, locked_queue: str, hangs_up_port: int, case: str, client: str) -> None:
    """Each provoked AMQP failure is classified as the table says, with every client."""
    port, password, vhost = _target(case, PORT, hangs_up_port)
    err = provoke(lambda: RUN[client](case, port, password, vhost, locked_queue))
    verdict = retrykit.classify(err)
    assert CASES[case] == verdict.category, str(retrykit.explain(err))
    if CASES[case] is not NET:  # decided by the AMQP family, not by a fallback
        assert verdict.rule.startswith("amqp"), str(retrykit.explain(err))
