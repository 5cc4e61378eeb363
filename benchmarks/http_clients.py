"""
retrykit-http next to the retrying layers HTTP users reach for: urllib3's ``Retry`` (requests),
httpx-retries and aiohttp-retry. Two tables, one run each:

1. the added cost per request over the bare client, on the success path (a local keep-alive
   server in a process of its own answers 200): microseconds per request and the ratio to the
   bare client, for each client with no retry layer, with retrykit-http, with its peer;
2. the same scenario set for every layer against a scripted local server: requests the server
   saw and what the caller got.

    python benchmarks/http_clients.py              # both tables of docs/http.md
    python benchmarks/http_clients.py --quick      # fewer requests
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "adapters" / "http" / "tests"))

import aiohttp
import httpx
import requests
import urllib3
from aiohttp_retry import ExponentialRetry, RetryClient
from http_server import Cut, Hang, Reply, closed_port, serving
from httpx_retries import Retry as HttpxRetry
from httpx_retries import RetryTransport as HttpxRetriesTransport
from requests.adapters import HTTPAdapter

import retrykit
import retrykit_http
from retrykit.testing import set_testing

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
STATUSES = [429, 500, 502, 503, 504]


def _answer(conn: socket.socket) -> None:
    buffered = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffered:
                data = conn.recv(65536)
                if not data:
                    return
                buffered += data
            _, buffered = buffered.split(b"\r\n\r\n", 1)
            conn.sendall(OK)


def _serve(port_out: Any) -> None:
    import threading

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port_out.put(sock.getsockname()[1])
    while True:
        conn, _ = sock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_answer, args=(conn,), daemon=True).start()


def _per_request(send: Callable[[], Any], n: int) -> float:
    for _ in range(50):
        send()
    start = time.perf_counter()
    for _ in range(n):
        send()
    return (time.perf_counter() - start) / n * 1e6


async def _aper_request(send: Callable[[], Any], n: int) -> float:
    for _ in range(50):
        await send()
    start = time.perf_counter()
    for _ in range(n):
        await send()
    return (time.perf_counter() - start) / n * 1e6


def _requests_session(adapter: HTTPAdapter | None) -> requests.Session:
    session = requests.Session()
    if adapter is not None:
        session.mount("http://", adapter)
    return session


def _sync_configs(url: str) -> list[tuple[str, str, Any, Callable[[], Any]]]:
    """(client, layer, the client object to close, one request)."""
    configs: list[tuple[str, str, Any, Callable[[], Any]]] = []
    for layer, adapter in [
        ("bare", None),
        ("retrykit-http", retrykit_http.RetryAdapter("http")),
        ("urllib3 Retry", HTTPAdapter(max_retries=urllib3.Retry(total=3, status_forcelist=STATUSES))),
    ]:
        session = _requests_session(adapter)
        configs.append(("requests", layer, session, lambda s=session: s.get(url).content))
    for layer, transport in [
        ("bare", httpx.HTTPTransport()),
        ("retrykit-http", retrykit_http.RetryTransport("http")),
        ("httpx-retries", HttpxRetriesTransport(retry=HttpxRetry(total=3))),
    ]:
        client = httpx.Client(transport=transport)
        configs.append(("httpx", layer, client, lambda c=client: c.get(url).content))
    return configs


async def _async_rows(url: str, n: int, rounds: int) -> dict[tuple[str, str], float]:
    best: dict[tuple[str, str], float] = {}
    configs: list[tuple[str, str, Any, Callable[[], Any]]] = []
    for layer, transport in [
        ("bare", httpx.AsyncHTTPTransport()),
        ("retrykit-http", retrykit_http.AsyncRetryTransport("http")),
        ("httpx-retries", HttpxRetriesTransport(retry=HttpxRetry(total=3))),
    ]:
        aclient = httpx.AsyncClient(transport=transport)

        async def get(c: httpx.AsyncClient = aclient) -> bytes:
            return (await c.get(url)).content

        configs.append(("httpx async", layer, aclient, get))
    for layer in ("bare", "retrykit-http", "aiohttp-retry"):
        middlewares = (retrykit_http.RetryMiddleware("http"),) if layer == "retrykit-http" else ()
        session = aiohttp.ClientSession(middlewares=middlewares)
        client: Any = session
        if layer == "aiohttp-retry":
            options = ExponentialRetry(attempts=4, statuses=set(STATUSES))
            client = RetryClient(client_session=session, retry_options=options)

        async def fetch(s: Any = client) -> bytes:
            async with s.get(url) as response:
                return bytes(await response.read())

        configs.append(("aiohttp", layer, session, fetch))
    for _ in range(rounds):
        for name, layer, _owner, send in configs:
            micros = await _aper_request(send, n)
            best[(name, layer)] = min(best.get((name, layer), micros), micros)
    for _, _, owner, _ in configs:
        await owner.aclose() if isinstance(owner, httpx.AsyncClient) else await owner.close()
    return best


def cost(n: int, rounds: int = 5) -> list[tuple[str, str, float]]:
    """
    (client, layer, microseconds per request) on the success path: each configuration runs
    *rounds* times *n* requests, interleaved with the others, and keeps its fastest round (the
    machine's noise only ever adds).
    """
    queue: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(queue,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{queue.get()}/"
    best: dict[tuple[str, str], float] = {}
    try:
        configs = _sync_configs(url)
        for _ in range(rounds):
            for name, layer, _owner, send in configs:
                micros = _per_request(send, n)
                best[(name, layer)] = min(best.get((name, layer), micros), micros)
        for _, _, owner, _ in configs:
            owner.close()
        best.update(asyncio.run(_async_rows(url, n, rounds)))
    finally:
        server.kill()
    return [(name, layer, micros) for (name, layer), micros in best.items()]


class _Canned(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An inner transport answering 200 at once, sync and async: what is measured is the layer."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"ok")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"ok")


def layer_cost(n: int, rounds: int = 7) -> list[tuple[str, str, float]]:
    """
    The layer alone, no socket and no client: ``handle_request`` of each transport over an inner
    one answering 200 (microseconds per request, fastest of *rounds* interleaved rounds).
    """
    request = httpx.Request("GET", "http://example.test/orders/17")
    canned = _Canned()
    configs: list[tuple[str, str, Any]] = [
        ("httpx", "bare", canned),
        ("httpx", "retrykit-http", retrykit_http.RetryTransport("http", transport=canned)),
        ("httpx", "httpx-retries", HttpxRetriesTransport(canned, retry=HttpxRetry(total=3))),
        ("httpx async", "bare", canned),
        ("httpx async", "retrykit-http", retrykit_http.AsyncRetryTransport("http", transport=canned)),
        ("httpx async", "httpx-retries", HttpxRetriesTransport(canned, retry=HttpxRetry(total=3))),
    ]

    async def arun(transport: Any) -> float:
        start = time.perf_counter()
        for _ in range(n):
            (await transport.handle_async_request(request)).read()
        return (time.perf_counter() - start) / n * 1e6

    best: dict[tuple[str, str], float] = {}
    for _ in range(rounds):
        for name, layer, transport in configs:
            if name == "httpx":
                micros = _per_request(lambda t=transport: t.handle_request(request).read(), n)
            else:
                micros = asyncio.run(arun(transport))
            best[(name, layer)] = min(best.get((name, layer), micros), micros)
    return [(name, layer, micros) for (name, layer), micros in best.items()]


# ------------------------------------------------------------------ scenarios

SCENARIOS: list[tuple[str, str, list[Any], float]] = [
    ("GET: 503, 503, then 200", "GET", [Reply(503), Reply(503), Reply(200)], 5.0),
    ("GET: 429 with Retry-After: 1, then 200", "GET", [Reply(429, {"Retry-After": "1"}), Reply(200)], 5.0),
    (
        "GET: 429 with retry-after-ms: 300, then 200",
        "GET",
        [Reply(429, {"retry-after-ms": "300"}), Reply(200)],
        5.0,
    ),
    ("GET: body cut short, then 200", "GET", [Cut(), Reply(200)], 5.0),
    ("POST: read timeout, then 200", "POST", [Hang(), Reply(200)], 0.3),
    ("POST: 500, then 200", "POST", [Reply(500), Reply(200)], 5.0),
    ("GET: 400 (a client error)", "GET", [Reply(400)], 5.0),
]


def _outcome(status: int | None, error: BaseException | None) -> str:
    return f"{status}" if error is None else type(error).__name__


def _requests_run(adapter: HTTPAdapter, method: str, url: str, timeout: float) -> str:
    with _requests_session(adapter) as session:
        try:
            response = session.request(method, url, data=b"x" if method == "POST" else None, timeout=timeout)
            return _outcome(response.status_code, None)
        except Exception as exc:
            return _outcome(None, exc)


def _httpx_run(transport: httpx.BaseTransport, method: str, url: str, timeout: float) -> str:
    with httpx.Client(transport=transport, timeout=timeout) as client:
        try:
            response = client.request(method, url, content=b"x" if method == "POST" else None)
            return _outcome(response.status_code, None)
        except Exception as exc:
            return _outcome(None, exc)


async def _aiohttp_run(layer: str, method: str, url: str, read_timeout: float) -> str:
    middlewares = (retrykit_http.RetryMiddleware("http"),) if layer == "retrykit-http" else ()
    client_timeout = aiohttp.ClientTimeout(sock_read=read_timeout)
    async with aiohttp.ClientSession(middlewares=middlewares, timeout=client_timeout) as session:
        client: Any = session
        if layer == "aiohttp-retry":
            client = RetryClient(
                client_session=session, retry_options=ExponentialRetry(attempts=4, start_timeout=0.01)
            )
        try:
            async with client.request(method, url, data=b"x" if method == "POST" else None) as response:
                await response.read()
                return _outcome(response.status, None)
        except Exception as exc:
            return _outcome(None, exc)


LAYERS: list[tuple[str, Callable[[str, str, float], str]]] = [
    (
        "requests + urllib3 Retry(total=3, status_forcelist)",
        lambda m, u, t: _requests_run(
            HTTPAdapter(max_retries=urllib3.Retry(total=3, status_forcelist=STATUSES, backoff_factor=0.01)),
            m,
            u,
            t,
        ),
    ),
    ("requests + retrykit-http", lambda m, u, t: _requests_run(retrykit_http.RetryAdapter("http"), m, u, t)),
    (
        "httpx + httpx-retries Retry(total=3)",
        lambda m, u, t: _httpx_run(
            HttpxRetriesTransport(retry=HttpxRetry(total=3, backoff_factor=0.01)), m, u, t
        ),
    ),
    ("httpx + retrykit-http", lambda m, u, t: _httpx_run(retrykit_http.RetryTransport("http"), m, u, t)),
    (
        "aiohttp + aiohttp-retry ExponentialRetry(attempts=4)",
        lambda m, u, t: asyncio.run(_aiohttp_run("aiohttp-retry", m, u, t)),
    ),
    ("aiohttp + retrykit-http", lambda m, u, t: asyncio.run(_aiohttp_run("retrykit-http", m, u, t))),
]


def scenarios() -> list[tuple[str, str, list[str]]]:
    """(scenario, layer, cells 'requests sent: outcome')."""
    rows = []
    for layer, run in LAYERS:
        cells = []
        for _, method, actions, timeout in SCENARIOS:
            with serving() as server:
                server.script(*actions)
                outcome = run(method, server.url, timeout)
                cells.append(f"{len(server.seen)}: {outcome}")
        refused = closed_port()
        outcome = run("GET", f"http://127.0.0.1:{refused}/", 5.0)
        cells.append(outcome)
        rows.append(("", layer, cells))
    return rows


def main() -> None:
    quick = "--quick" in sys.argv
    n = 100 if quick else 1000
    print(f"Added cost per request, success path (fastest of 5 interleaved rounds of {n} requests on one")
    print("keep-alive connection to a local server in its own process):\n")
    print("| client | layer | µs per request | added µs | ratio to bare |")
    print("|---|---|---:|---:|---:|")
    bare: dict[str, float] = {}
    for client, layer, micros in cost(n):
        bare.setdefault(client, micros)
        base = bare[client]
        print(f"| {client} | {layer} | {micros:.0f} | {micros - base:+.0f} | {micros / base:.2f}x |")
    print("\nThe layer alone (handle_request over an inner transport answering 200, no socket; fastest of")
    print(f"7 interleaved rounds of {n * 10} requests):\n")
    print("| client | layer | µs per request | added µs |")
    print("|---|---|---:|---:|")
    bare = {}
    for client, layer, micros in layer_cost(n * 10):
        bare.setdefault(client, micros)
        print(f"| {client} | {layer} | {micros:.1f} | {micros - bare[client]:+.1f} |")
    print("\nScenarios (requests the server saw: what the caller got):\n")
    header = [name for name, *_ in SCENARIOS] + ["GET: connection refused (outcome)"]
    print("| layer | " + " | ".join(header) + " |")
    print("|---|" + "---|" * len(header))
    with set_testing(no_wait=True):  # retrykit sleeps nothing; the peers' waits are 0.01 s (and Retry-After)
        for _, layer, cells in scenarios():
            print(f"| {layer} | " + " | ".join(cells) + " |")
    retrykit.configure()


if __name__ == "__main__":
    main()
