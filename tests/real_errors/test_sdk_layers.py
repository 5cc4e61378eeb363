"""
One layer across SDKs: real clients that retry inside a call, wrapped in retrykit, against a local
server that answers every request with 503 (or closes every connection), counting what it saw.

The bound: requests <= max(the client's attempts per call, the policy's max_attempts); with the
client's retries switched off, retrykit's attempts exactly. The clients' own sleeps are shortened
(``retry-after-ms: 1``, a no-backoff object, a stubbed sleep time) but their retry counts are theirs.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import retrykit
from retrykit.events import StopReason
from retrykit.testing import no_wait, record

from ._servers import free_port


class _Counting(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        with self.server.lock:
            self.server.count += 1
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"error": {"message": "down", "type": "server_error"}}).encode()
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("retry-after-ms", "1")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        """Quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Counting)
        self.count = 0
        self.lock = threading.Lock()


@contextmanager
def _serving() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Closing:
    """A port that accepts each connection and closes it at once (a server going down), counting."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[_Server]:
    with _serving() as s:
        yield s


# --------------------------------------------------------------------------- the clients


@dataclass(frozen=True)
class Client:
    """A real client: one call with its default retries, and one with its retries switched off."""

    name: str
    alone: int  # requests one call sends with the client's default retry setting
    default: Callable[[str], Callable[[], Any]]
    off: Callable[[str], Callable[[], Any]]


def _openai(retries: int | None) -> Callable[[str], Callable[[], Any]]:
    def make(url: str) -> Callable[[], Any]:
        openai = pytest.importorskip("openai")
        kw = {} if retries is None else {"max_retries": retries}
        client = openai.OpenAI(base_url=url, api_key="k", **kw)
        return lambda: client.models.list()

    return make


def _anthropic(retries: int | None) -> Callable[[str], Callable[[], Any]]:
    def make(url: str) -> Callable[[], Any]:
        anthropic = pytest.importorskip("anthropic")
        kw = {} if retries is None else {"max_retries": retries}
        client = anthropic.Anthropic(base_url=url, api_key="k", **kw)
        return lambda: client.models.list()

    return make


def _boto3(attempts: int | None) -> Callable[[str], Callable[[], Any]]:
    def make(url: str) -> Callable[[], Any]:
        botocore_session = pytest.importorskip("botocore.session")
        botocore_config = pytest.importorskip("botocore.config")
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        retries = {"mode": "standard"} if attempts is None else {"total_max_attempts": attempts}
        client = botocore_session.get_session().create_client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="k",
            aws_secret_access_key="s",
            config=botocore_config.Config(retries=retries),
        )
        return lambda: client.list_tables()

    return make


def _requests(total: int) -> Callable[[str], Callable[[], Any]]:
    def make(url: str) -> Callable[[], Any]:
        requests = pytest.importorskip("requests")
        from urllib3.util.retry import Retry

        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(max_retries=Retry(total=total, status_forcelist=[503]))
        session.mount("http://", adapter)
        return lambda: session.get(url).raise_for_status()

    return make


def _urllib3(total: int) -> Callable[[str], Callable[[], Any]]:
    def make(url: str) -> Callable[[], Any]:
        urllib3 = pytest.importorskip("urllib3")
        from urllib3.util.retry import Retry

        pool = urllib3.PoolManager(retries=Retry(total=total, status_forcelist=[503]))
        return lambda: pool.request("GET", url)  # MaxRetryError once the 503s are spent

    return make


def _httpx_retries(total: int | None) -> Callable[[str], Callable[[], Any]]:
    def make(url: str) -> Callable[[], Any]:
        httpx = pytest.importorskip("httpx")
        httpx_retries = pytest.importorskip("httpx_retries")
        retry = httpx_retries.Retry() if total is None else httpx_retries.Retry(total=total)
        client = httpx.Client(transport=httpx_retries.RetryTransport(retry=retry))
        return lambda: client.get(url).raise_for_status()

    return make


def _elasticsearch(retries: int | None) -> Callable[[str], Callable[[], Any]]:
    def make(url: str) -> Callable[[], Any]:
        elasticsearch = pytest.importorskip("elasticsearch")
        kw = {} if retries is None else {"max_retries": retries}
        client = elasticsearch.Elasticsearch(url, **kw)
        return lambda: client.info()

    return make


def _stripe(retries: int | None) -> Callable[[str], Callable[[], Any]]:
    def make(url: str) -> Callable[[], Any]:
        stripe = pytest.importorskip("stripe")
        http = stripe.new_default_http_client()
        http._sleep_time_seconds = lambda num_retries: 0.001  # its backoff, shortened
        client = stripe.StripeClient(
            "sk_test_k",
            base_addresses={"api": url},
            http_client=http,
            max_network_retries=2 if retries is None else retries,
        )
        return lambda: client.v1.customers.list()

    return make


def _google(on: bool) -> Callable[[str], Callable[[], Any]]:
    def make(url: str) -> Callable[[], Any]:
        requests = pytest.importorskip("requests")
        gretry = pytest.importorskip("google.api_core.retry")
        gexc = pytest.importorskip("google.api_core.exceptions")

        def get() -> None:
            raise gexc.from_http_response(requests.get(url))

        if not on:
            return get
        retry = gretry.Retry(initial=0.001, maximum=0.001, multiplier=1.0, timeout=10)
        count = {"n": 0}

        def predicate(exc: BaseException) -> bool:  # the same transient test, bounded to 9 tries
            count["n"] += 1
            return count["n"] < 9 and gretry.if_transient_error(exc)

        return retry.with_predicate(predicate)(get)

    return make


CLIENTS = [
    Client("openai", 3, _openai(None), _openai(0)),
    Client("anthropic", 3, _anthropic(None), _anthropic(0)),
    Client("botocore standard (DynamoDB)", 4, _boto3(None), _boto3(1)),
    Client("requests + Retry(total=3)", 4, _requests(3), _requests(0)),
    Client("urllib3 Retry(total=3)", 4, _urllib3(3), _urllib3(0)),
    Client("httpx-retries", 11, _httpx_retries(None), _httpx_retries(0)),
    Client("elasticsearch", 4, _elasticsearch(None), _elasticsearch(0)),
    Client("stripe max_network_retries=2", 3, _stripe(None), _stripe(0)),
    Client("google-api-core Retry", 9, _google(True), _google(False)),
]

POLICIES = [
    pytest.param(retrykit.Policy(max_attempts=3), 3, id="max_attempts=3"),
    pytest.param("http", 4, id="http"),
]


def _requests_sent(server: _Server, call: Callable[[], Any], policy: Any) -> tuple[int, BaseException]:
    server.count = 0
    wrapped = retrykit.retry(policy)(call) if policy is not None else call
    with no_wait(), pytest.raises(Exception) as caught:
        wrapped()
    return server.count, caught.value


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.name)
def test_a_client_alone_sends_its_own_attempts(server: _Server, client: Client) -> None:
    """Each client, called once with its default retries, sends its own number of requests."""
    sent, _ = _requests_sent(server, client.default(_url(server)), None)
    assert client.alone == sent


@pytest.mark.parametrize(("policy", "attempts"), POLICIES)
@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.name)
def test_retrykit_never_multiplies_a_client_that_retried(
    server: _Server, client: Client, policy: Any, attempts: int
) -> None:
    """Wrapped in retrykit, a client that retried inside the call sends at most one layer's requests."""
    with record() as events:
        sent, error = _requests_sent(server, client.default(_url(server)), policy)
    assert sent <= max(client.alone, attempts)
    assert client.alone == sent
    gave_up = events.gave_up[-1]
    assert StopReason.INNER_RETRIES == gave_up.reason
    inner = gave_up.classification.inner
    assert inner is not None
    assert client.alone == inner.attempts
    assert inner.client in str(error.__notes__)


@pytest.mark.parametrize(("policy", "attempts"), POLICIES)
@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.name)
def test_with_the_client_retries_off_retrykit_governs_alone(
    server: _Server, client: Client, policy: Any, attempts: int
) -> None:
    """With the client's retries switched off, the service sees exactly retrykit's attempts."""
    sent, error = _requests_sent(server, client.off(_url(server)), policy)
    assert attempts == sent
    assert "inner_retries" not in str(error.__notes__)


def test_a_bigger_policy_retries_whole_inner_rounds_only(server: _Server) -> None:
    """With max_attempts=10 and a client sending 3 per call, retrykit stops at 9 requests."""
    sent, error = _requests_sent(server, _openai(None)(_url(server)), retrykit.Policy(max_attempts=10))
    assert 9 == sent
    assert "[inner_retries]" in str(error.__notes__)


def test_the_hand_over_warning_is_said_once_per_operation(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that retried inside the call is named once, with the option that switches it off."""
    list_models = _openai(None)(_url(server))

    @retrykit.retry(retrykit.Policy(max_attempts=3))
    def list_models_for_the_warning_test() -> Any:
        return list_models()

    openai = pytest.importorskip("openai")
    with no_wait():
        for _ in range(3):
            with pytest.raises(openai.APIStatusError):
                list_models_for_the_warning_test()
    said = [r.getMessage() for r in caplog.records if "retried inside" in r.getMessage()]
    assert 1 == len(said)
    assert "max_retries=0" in said[0]


def test_a_breaker_counts_every_request(server: _Server) -> None:
    """A breaker counts each request the client inside sent, not one per retrykit attempt."""
    breaker = retrykit.CircuitBreaker("sdk-layers-breaker", failure_ratio=0.5, min_throughput=3, open_for=60)
    policy = retrykit.Policy(max_attempts=3, breaker=breaker)
    _requests_sent(server, _openai(None)(_url(server)), policy)
    assert "open" == breaker.state()["state"]


def test_a_budget_is_charged_with_the_clients_own_retries(server: _Server) -> None:
    """A quota budget is charged for each retry the client made inside the call (2 of 3 requests)."""
    budget = retrykit.RetryBudget.quota("sdk-layers-budget", capacity=100, costs={"temporary_error": 1})
    _requests_sent(server, _openai(None)(_url(server)), retrykit.Policy(max_attempts=3, budget=budget))
    assert 2 == budget.state()["spent"]


# --------------------------------------------------------------------------- redis-py, server down


@pytest.mark.parametrize(("policy", "attempts"), POLICIES)
def test_redis_py_retries_are_counted_when_the_server_is_down(policy: Any, attempts: int) -> None:
    """redis-py's 11 connects per command are not multiplied by retrykit's attempts."""
    redis = pytest.importorskip("redis")
    from redis.backoff import NoBackoff

    down = _Closing()
    try:
        client = redis.Redis(port=down.port, db=11, socket_connect_timeout=1)
        client.get_retry()._backoff = NoBackoff()  # its 10 retries, without its sleeps
        with pytest.raises(redis.ConnectionError):
            client.get("k")
        alone = down.count
        down.count = 0
        with no_wait(), pytest.raises(redis.ConnectionError) as caught:
            retrykit.retry(policy)(lambda: client.get("k"))()
        assert 11 == alone
        assert alone == down.count
        assert "redis-py" in str(caught.value.__notes__)
        off = redis.Redis(port=down.port, db=11, socket_connect_timeout=1, retry=None)
        down.count = 0
        with no_wait(), pytest.raises(redis.ConnectionError):
            retrykit.retry(policy)(lambda: off.get("k"))()
        assert attempts == down.count
    finally:
        down.close()


@pytest.mark.parametrize("policy", [retrykit.Policy(max_attempts=3), "http"], ids=["max_attempts=3", "http"])
def test_async_clients_are_counted_too(server: _Server, policy: Any) -> None:
    """openai's and anthropic's async clients and redis.asyncio: one layer's requests, on asyncio."""
    openai = pytest.importorskip("openai")
    anthropic = pytest.importorskip("anthropic")

    async def main() -> list[int]:
        seen = []
        for client in (
            openai.AsyncOpenAI(base_url=_url(server), api_key="k"),
            anthropic.AsyncAnthropic(base_url=_url(server), api_key="k"),
        ):
            server.count = 0

            @retrykit.retry(policy)
            async def call(client: Any = client) -> Any:
                return await client.models.list()

            with no_wait(), pytest.raises((openai.APIStatusError, anthropic.APIStatusError)):
                await call()
            seen.append(server.count)
        return seen

    assert [3, 3] == asyncio.run(main())


def test_a_refused_port_is_counted_for_openai() -> None:
    """openai's connection errors carry the retry count too: 3 connects, never 9."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{free_port()}", api_key="k")
    client._calculate_retry_timeout = lambda *a, **k: 0.001  # its backoff, shortened
    with record() as events, no_wait(), pytest.raises(openai.APIConnectionError):
        retrykit.retry(retrykit.Policy(max_attempts=3))(lambda: client.models.list())()
    gave_up = events.gave_up[-1]
    assert gave_up.classification.inner is not None
    assert 3 == gave_up.classification.inner.attempts
    assert StopReason.INNER_RETRIES == gave_up.reason


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_openai_on_trio_is_counted(server: _Server) -> None:
    """AsyncOpenAI on trio: the retry count header is read the same way."""
    openai = pytest.importorskip("openai")
    trio = pytest.importorskip("trio")
    client = openai.AsyncOpenAI(base_url=_url(server), api_key="k")

    @retrykit.retry(retrykit.Policy(max_attempts=3))
    async def call() -> Any:
        return await client.models.list()

    async def main() -> None:
        with no_wait(), pytest.raises(openai.APIStatusError):
            await call()

    server.count = 0
    trio.run(main)
    assert 3 == server.count


def test_aiohttp_retry_is_counted_from_its_loop(server: _Server) -> None:
    """aiohttp-retry (raise_for_status=True, so the failure leaves its loop): 3 requests, never 9."""
    aiohttp = pytest.importorskip("aiohttp")
    aiohttp_retry = pytest.importorskip("aiohttp_retry")

    async def main() -> int:
        options = aiohttp_retry.ExponentialRetry(start_timeout=0.001)  # its 3 attempts, shorter sleeps
        async with aiohttp_retry.RetryClient(raise_for_status=True, retry_options=options) as client:

            @retrykit.retry(retrykit.Policy(max_attempts=3))
            async def call() -> None:
                async with client.get(_url(server)):
                    pass

            server.count = 0
            with no_wait(), pytest.raises(aiohttp.ClientResponseError):
                await call()
            return server.count

    assert 3 == asyncio.run(main())


def test_redis_asyncio_is_counted_when_the_server_is_down() -> None:
    """redis.asyncio's 11 connects are not multiplied either."""
    redis_asyncio = pytest.importorskip("redis.asyncio")
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    down = _Closing()

    async def main() -> None:
        client = redis_asyncio.Redis(port=down.port, db=11, socket_connect_timeout=1)
        client.get_retry()._backoff = NoBackoff()

        @retrykit.retry(retrykit.Policy(max_attempts=3))
        async def call() -> Any:
            return await client.get("k")

        with no_wait(), pytest.raises(RedisConnectionError):
            await call()
        await client.aclose()

    try:
        asyncio.run(main())
        assert 11 == down.count
    finally:
        down.close()


def test_azure_core_transport_errors_are_counted() -> None:
    """azure-core's RetryPolicy: its 4 tries on a connection the server drops, never 12."""
    azure_core = pytest.importorskip("azure.core")
    from azure.core.exceptions import AzureError
    from azure.core.pipeline.policies import RetryPolicy
    from azure.core.rest import HttpRequest

    down = _Closing()
    url = f"http://127.0.0.1:{down.port}"
    client = azure_core.PipelineClient(url, policies=[RetryPolicy(retry_backoff_factor=0.001)])
    try:
        with no_wait(), record() as events, pytest.raises(AzureError):
            retrykit.retry(retrykit.Policy(max_attempts=3))(
                lambda: client.send_request(HttpRequest("GET", url))
            )()
        inner = events.gave_up[-1].classification.inner
        assert inner is not None
        assert ("azure-core", down.count) == (inner.client, inner.attempts)
        assert down.count <= 4
    finally:
        down.close()


def _async_calls(url: str) -> tuple[list[tuple[str, int, Callable[[], Any]]], Callable[[], Any]]:
    """(name, requests alone, coroutine function) for the async clients that retry inside a call."""
    httpx = pytest.importorskip("httpx")
    httpx_retries = pytest.importorskip("httpx_retries")
    elasticsearch = pytest.importorskip("elasticsearch")
    requests = pytest.importorskip("requests")
    gretry = pytest.importorskip("google.api_core.retry")
    gexc = pytest.importorskip("google.api_core.exceptions")
    client = httpx.AsyncClient(transport=httpx_retries.RetryTransport())
    search = elasticsearch.AsyncElasticsearch(url)

    async def httpx_call() -> None:
        (await client.get(url)).raise_for_status()

    async def search_call() -> None:
        await search.info()

    tries = {"n": 0}

    def predicate(exc: BaseException) -> bool:
        tries["n"] += 1
        return tries["n"] < 5 and gretry.if_transient_error(exc)

    @gretry.AsyncRetry(initial=0.001, maximum=0.001, multiplier=1.0, timeout=10, predicate=predicate)
    async def google_call() -> None:
        raise gexc.from_http_response(await asyncio.to_thread(requests.get, url))

    async def close() -> None:
        await client.aclose()
        await search.close()

    calls = [
        ("httpx-retries", 11, httpx_call),
        ("elasticsearch", 4, search_call),
        ("google-api-core", 5, google_call),
    ]
    return calls, close


def test_async_retry_layers_are_counted(server: _Server) -> None:
    """httpx-retries, AsyncElasticsearch and google-api-core's AsyncRetry: one layer's requests."""

    async def main() -> list[tuple[str, int, int]]:
        seen = []
        calls, close = _async_calls(_url(server))
        for name, alone, call in calls:
            server.count = 0
            with no_wait(), pytest.raises(Exception) as caught:
                await retrykit.retry(retrykit.Policy(max_attempts=3))(call)()
            assert "[inner_retries]" in str(caught.value.__notes__)
            seen.append((name, alone, server.count))
        await close()
        return seen

    for name, alone, sent in asyncio.run(main()):
        assert (name, alone) == (name, sent)
