"""The three clients, each with its retrying adapter, behind one small interface for the tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NamedTuple

import aiohttp
import httpx
import requests
import trio

import retrykit_http

GENERATOR = b"<generator>"
"""As a request body: a generator (a body that cannot be replayed)."""


class Req(NamedTuple):
    """A request to send."""

    method: str
    url: str
    headers: dict[str, str] = {}
    body: bytes | None = None
    timeout: float = 5.0
    stream: bool = False
    """Return the response unread (retried only on its status and headers)."""


class Outcome(NamedTuple):
    """What the caller got: a response (status, resend count, body) or an exception."""

    status: int | None = None
    resend: int | None = None
    body: bytes | None = None
    error: BaseException | None = None


def _chunks() -> Iterator[bytes]:
    yield b"one-"
    yield b"shot"


async def _achunks() -> AsyncIterator[bytes]:
    yield b"one-"
    yield b"shot"


def run_httpx(options: dict[str, Any], reqs: list[Req], pool: int | None) -> list[Outcome]:
    limits = httpx.Limits(max_connections=pool) if pool else httpx.Limits()
    transport = retrykit_http.RetryTransport(transport=httpx.HTTPTransport(limits=limits), **options)
    out = []
    with httpx.Client(transport=transport) as client:
        for req in reqs:
            content = _chunks() if req.body == GENERATOR else req.body
            try:
                response = client.request(
                    req.method,
                    req.url,
                    headers=req.headers,
                    content=content,
                    timeout=httpx.Timeout(req.timeout, pool=2.0),
                    extensions={"retrykit.read_body": not req.stream},
                )
            except Exception as exc:
                out.append(Outcome(error=exc))
            else:
                out.append(
                    Outcome(response.status_code, retrykit_http.resend_count(response), response.content)
                )
    return out


async def _httpx_async(options: dict[str, Any], reqs: list[Req], pool: int | None) -> list[Outcome]:
    limits = httpx.Limits(max_connections=pool) if pool else httpx.Limits()
    transport = retrykit_http.AsyncRetryTransport(
        transport=httpx.AsyncHTTPTransport(limits=limits), **options
    )
    out = []
    async with httpx.AsyncClient(transport=transport) as client:
        for req in reqs:
            content = _achunks() if req.body == GENERATOR else req.body
            try:
                response = await client.request(
                    req.method,
                    req.url,
                    headers=req.headers,
                    content=content,
                    timeout=httpx.Timeout(req.timeout, pool=2.0),
                    extensions={"retrykit.read_body": not req.stream},
                )
            except Exception as exc:
                out.append(Outcome(error=exc))
            else:
                out.append(
                    Outcome(response.status_code, retrykit_http.resend_count(response), response.content)
                )
    return out


def run_httpx_asyncio(options: dict[str, Any], reqs: list[Req], pool: int | None) -> list[Outcome]:
    return asyncio.run(_httpx_async(options, reqs, pool))


def run_httpx_trio(options: dict[str, Any], reqs: list[Req], pool: int | None) -> list[Outcome]:
    return trio.run(_httpx_async, options, reqs, pool)


def run_requests(options: dict[str, Any], reqs: list[Req], pool: int | None) -> list[Outcome]:
    adapter_options = {"pool_maxsize": pool, "pool_block": True} if pool else {}
    adapter = retrykit_http.RetryAdapter(**options, **adapter_options)
    out = []
    with requests.Session() as session:
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        for req in reqs:
            body = _chunks() if req.body == GENERATOR else req.body
            try:
                response = session.request(
                    req.method,
                    req.url,
                    headers=req.headers,
                    data=body,
                    timeout=req.timeout,
                    stream=req.stream,
                )
                content = response.content
            except Exception as exc:
                out.append(Outcome(error=exc))
            else:
                out.append(Outcome(response.status_code, retrykit_http.resend_count(response), content))
    return out


async def _aiohttp(options: dict[str, Any], reqs: list[Req], pool: int | None) -> list[Outcome]:
    connector = aiohttp.TCPConnector(limit=pool or 100)
    middleware = retrykit_http.RetryMiddleware(**options)
    out = []
    async with aiohttp.ClientSession(connector=connector, middlewares=(middleware,)) as session:
        for req in reqs:
            body = _achunks() if req.body == GENERATOR else req.body
            timeout = aiohttp.ClientTimeout(total=None, connect=2.0, sock_read=req.timeout)
            streaming = (retrykit_http.RetryMiddleware(**options, read_body=False),) if req.stream else None
            try:
                async with session.request(
                    req.method,
                    req.url,
                    headers=req.headers,
                    data=body,
                    timeout=timeout,
                    middlewares=streaming,
                ) as response:
                    content = await response.read()
                    out.append(Outcome(response.status, retrykit_http.resend_count(response), content))
            except Exception as exc:
                out.append(Outcome(error=exc))
    return out


def run_aiohttp(options: dict[str, Any], reqs: list[Req], pool: int | None) -> list[Outcome]:
    return asyncio.run(_aiohttp(options, reqs, pool))


Runner = Callable[[dict[str, Any], list[Req], "int | None"], list[Outcome]]
CLIENTS: dict[str, Runner] = {
    "httpx": run_httpx,
    "httpx-asyncio": run_httpx_asyncio,
    "httpx-trio": run_httpx_trio,
    "requests": run_requests,
    "aiohttp": run_aiohttp,
}
