"""paho-mqtt against a Mosquitto the tests start (passwords required) and scripted brokers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish

from retrykit import ErrorCategory

from .._servers import free_port
from ._servers import closed_port

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR


@dataclass
class Env:
    port: int


@contextmanager
def env() -> Iterator[Env]:
    binary = shutil.which("mosquitto")
    assert binary, "mosquitto is not on PATH"
    with ExitStack() as stack:
        home = stack.enter_context(tempfile.TemporaryDirectory())
        subprocess.run(["mosquitto_passwd", "-c", "-b", f"{home}/passwd", "user", "secret"], check=True)
        port = free_port()
        with open(f"{home}/mosquitto.conf", "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {home}/passwd\n")
        for path in (home, f"{home}/passwd", f"{home}/mosquitto.conf"):  # mosquitto drops root
            os.chmod(path, 0o755)
        proc = subprocess.Popen(
            [binary, "-c", f"{home}/mosquitto.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        stack.callback(proc.wait, 10)
        stack.callback(proc.terminate)
        for _ in range(100):
            assert proc.poll() is None, "mosquitto did not start"
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield Env(port)


def _single(
    port: int,
    topic: str = "t",
    auth: dict[str, str] | None = None,
    qos: int = 0,
    version: int = mqtt.MQTTv311,
) -> None:
    publish.single(topic, b"x", qos=qos, hostname="127.0.0.1", port=port, auth=auth, protocol=version)  # type: ignore[arg-type]


def _queue_full(port: int) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.max_queued_messages_set(1)
    client.publish("t", b"1", qos=1)
    client.publish("t", b"2", qos=1).wait_for_publish(0.1)


def _not_connected(port: int) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.publish("t", b"1", qos=0).wait_for_publish(0.1)


_AUTH = {"username": "user", "password": "secret"}

Case = tuple[Callable[[Env], Any], ErrorCategory]

CASES: dict[str, Case] = {
    "paho wrong password": (lambda e: _single(e.port, auth={"username": "user", "password": "bad"}), PERM),
    "paho unknown user": (lambda e: _single(e.port, auth={"username": "nobody", "password": "x"}), PERM),
    "paho anonymous refused": (lambda e: _single(e.port), PERM),
    "paho v5 wrong password": (
        lambda e: _single(e.port, auth={"username": "user", "password": "bad"}, version=mqtt.MQTTv5),
        PERM,
    ),
    "paho wildcard in a publish topic": (lambda e: _single(e.port, topic="a/#", auth=_AUTH), DATA),
    "paho qos out of range": (lambda e: _single(e.port, qos=3, auth=_AUTH), DATA),
    "paho offline queue full": (_queue_full, TEMP),
    "paho publish while not connected": (_not_connected, NET),
    "paho refused": (lambda e: _single(closed_port()), NET),
}
