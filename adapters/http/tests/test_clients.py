"""httpx (sync, asyncio, trio), requests and aiohttp retrying through their adapters, on a local server."""

from __future__ import annotations

import email.utils
import logging
import time
import uuid
from typing import Any

import pytest
from http_clients import GENERATOR, Req, Runner
from http_server import Cut, Hang, Reply, Server, breaking_handshakes, closed_port, serving

import retrykit
import retrykit.testing
from retrykit.events import GaveUp, RetryScheduled, StopReason
from retrykit_http import RESEND_COUNT


def policy(**options: Any) -> retrykit.Policy:
    """The "http" preset with *options* on top."""
    return retrykit.get_preset("http").replace(**options)


def _date_in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        pytest.param({"Retry-After": "2"}, 2.0, 3.0, id="seconds"),
        pytest.param({"Retry-After": "<date>"}, 1.0, 5.0, id="http-date"),
        pytest.param({"retry-after-ms": "1500"}, 1.5, 2.5, id="retry-after-ms"),
    ],
)
def test_a_status_is_retried_after_the_servers_wait(
    client: Runner, http_server: Server, headers: dict[str, str], low: float, high: float
) -> None:
    """A 503 with a wait hint is retried after that wait; the response says it was resent once."""
    given = {name: _date_in(3) if value == "<date>" else value for name, value in headers.items()}
    http_server.script(Reply(503, given), Reply(200, body=b"done"))
    waits: list[RetryScheduled] = []
    [outcome] = client({"policy": policy(on_retry=waits.append)}, [Req("GET", http_server.url + "/a")], None)
    assert (200, 1, b"done", None) == outcome
    assert [low <= event.delay <= high for event in waits] == [True]
    assert ["GET", "GET"] == http_server.methods()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_connect_failures_are_retried_for_every_method(client: Runner, method: str) -> None:
    """Nothing was sent when the connection was refused: even a POST is retried."""
    gave_up: list[GaveUp] = []
    options = {"policy": policy(max_attempts=3, on_giveup=gave_up.append)}
    [outcome] = client(options, [Req(method, f"http://127.0.0.1:{closed_port()}/", body=b"x")], None)
    assert outcome.error is not None
    assert [(3, StopReason.MAX_ATTEMPTS)] == [(event.attempts, event.reason) for event in gave_up]


def test_tls_failures_are_retried(client: Runner) -> None:
    """A TLS handshake the server breaks off (a reset after the ClientHello) is retried."""
    with breaking_handshakes() as server:
        [outcome] = client({"policy": policy(max_attempts=3)}, [Req("GET", server.url)], None)
    assert outcome.error is not None
    assert 3 == server.connections


@pytest.mark.parametrize(
    ("method", "headers", "options", "sent"),
    [
        pytest.param("POST", {}, {}, 1, id="post-not-resent"),
        pytest.param("PATCH", {}, {}, 1, id="patch-not-resent"),
        pytest.param("POST", {"Idempotency-Key": "k-1"}, {}, 2, id="post-with-key"),
        pytest.param("POST", {}, {"idempotency_keys": True}, 2, id="post-generated-key"),
        pytest.param("POST", {}, {"retry_non_idempotent": True}, 2, id="post-opted-in"),
        pytest.param("PUT", {}, {}, 2, id="put"),
        pytest.param("GET", {}, {}, 2, id="get"),
    ],
)
def test_a_read_timeout_resends_only_what_may_be_resent(
    client: Runner,
    http_server: Server,
    method: str,
    headers: dict[str, str],
    options: dict[str, Any],
    sent: int,
) -> None:
    """After a read timeout the server may have acted: POST and PATCH go once, unless made safe."""
    http_server.script(Hang(), Reply(200))
    gave_up: list[GaveUp] = []
    options = {"policy": policy(on_giveup=gave_up.append), **options}
    [outcome] = client(options, [Req(method, http_server.url, headers, b"x", timeout=0.3)], None)
    assert sent == len(http_server.seen)
    if sent == 1:
        assert outcome.error is not None
        assert [StopReason.NOT_IDEMPOTENT] == [event.reason for event in gave_up]
    else:
        assert (200, 1) == (outcome.status, outcome.resend)


def test_a_generated_key_is_the_same_on_every_attempt(client: Runner, http_server: Server) -> None:
    """One key per logical request, sent with each of its attempts; another request, another key."""
    http_server.script(Reply(503), Reply(503), Reply(200), Reply(200))
    options = {"policy": policy(), "idempotency_keys": True}
    client(options, [Req("POST", http_server.url, body=b"x"), Req("POST", http_server.url, body=b"y")], None)
    keys = [seen.headers.get("Idempotency-Key") for seen in http_server.seen]
    assert 4 == len(keys)
    assert keys[0] == keys[1] == keys[2] != keys[3]
    assert uuid.UUID(str(keys[0]))


@pytest.mark.parametrize(("status", "sent"), [(500, 1), (502, 1), (503, 2), (429, 2)])
def test_a_post_is_resent_only_after_a_refusal(
    client: Runner, http_server: Server, status: int, sent: int
) -> None:
    """A 503 or 429 says the server did not act: a POST is resent; after a 500 it is not."""
    http_server.script(Reply(status), Reply(200))
    client({"policy": policy()}, [Req("POST", http_server.url, body=b"x")], None)
    assert sent == len(http_server.seen)


def test_a_body_cut_short_is_an_attempt(client: Runner, http_server: Server) -> None:
    """A failure while reading a (not streamed) body is retried like any other."""
    http_server.script(Cut(), Reply(200, body=b"whole"))
    [outcome] = client({"policy": policy()}, [Req("GET", http_server.url)], None)
    assert (200, 1, b"whole", None) == outcome


def test_a_streamed_response_is_retried_on_its_status_only(client: Runner, http_server: Server) -> None:
    """Streamed: a 503 is retried before the caller gets the response; a body cut later is the caller's."""
    http_server.script(Reply(503), Cut(), Reply(200))
    [outcome] = client({"policy": policy()}, [Req("GET", http_server.url, stream=True)], None)
    assert outcome.error is not None  # the cut body, read by the caller
    assert 2 == len(http_server.seen)


def test_a_body_that_cannot_be_replayed_is_sent_once(
    client: Runner, http_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A generator body goes once, and a warning says so."""
    http_server.script(Reply(503))
    route = f"/{uuid.uuid4().hex}"  # the warning is said once per operation: this one is new
    options = {"policy": policy(), "route": lambda request: route}
    with caplog.at_level(logging.WARNING, logger="retrykit"):
        [outcome] = client(options, [Req("PUT", http_server.url, body=GENERATOR)], None)
    assert (503, 0) == (outcome.status, outcome.resend)
    assert [b"one-shot"] == [seen.body for seen in http_server.seen]
    assert "cannot be replayed" in caplog.text


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "read"])
def test_a_pool_of_one_is_never_exhausted(client: Runner, http_server: Server, stream: bool) -> None:
    """100 requests failing 3 times each on one connection: every failed attempt's response is closed."""
    http_server.script(Reply(503, body=b"busy" * 1000))
    reqs = [Req("GET", http_server.url, stream=stream) for _ in range(100)]
    outcomes = client({"policy": policy(max_attempts=3)}, reqs, 1)
    assert {(503, 2, None)} == {(outcome.status, outcome.resend, outcome.error) for outcome in outcomes}
    assert 300 == len(http_server.seen)


def test_an_attempt_timeout_bounds_each_attempt(client: Runner, http_server: Server) -> None:
    """``attempt_timeout`` ends an attempt the client would wait 5 s for, past the deadline: retried."""
    http_server.script(Hang(), Reply(200))
    options = {"policy": policy(attempt_timeout=0.3, deadline=3.0)}
    [outcome] = client(options, [Req("GET", http_server.url)], None)
    assert (200, 1) == (outcome.status, outcome.resend)


def test_a_breaker_is_kept_per_host(client: Runner, http_server: Server) -> None:
    """A host's open breaker fails its requests fast with CircuitOpen; another host is still called."""
    breaker = {"key": f"svc-{uuid.uuid4().hex}", "min_throughput": 2, "open_for": 60.0}
    options = {"policy": policy(max_attempts=2), "breaker": breaker}
    http_server.script(Reply(503))
    with serving() as other:
        other.script(Reply(200))
        outcomes = client(
            options, [Req("GET", http_server.url), Req("GET", http_server.url), Req("GET", other.url)], None
        )
        assert 1 == len(other.seen)
    assert 503 == outcomes[0].status
    assert isinstance(outcomes[1].error, retrykit.CircuitOpen)
    assert 200 == outcomes[2].status
    assert 2 == len(http_server.seen)


@pytest.mark.parametrize(
    ("key", "other_sent"),
    [
        pytest.param(None, 2, id="per-host"),
        pytest.param(lambda request: "one budget for all", 1, id="key-function-shares-it"),
    ],
)
def test_a_budget_is_kept_per_host(client: Runner, http_server: Server, key: Any, other_sent: int) -> None:
    """A host's spent budget stops its retries; another host has its own, unless a key function shares it."""
    budget = {"key": f"svc-{uuid.uuid4().hex}", "shape": "quota", "capacity": 5}
    options = {"policy": policy(max_attempts=3), "budget": budget, "key": key}
    http_server.script(Reply(503))
    with serving() as other:
        other.script(Reply(503))
        reqs = [Req("GET", http_server.url), Req("GET", http_server.url), Req("GET", other.url)]
        client(options, reqs, None)
        assert len(other.seen) == other_sent
    assert len(http_server.seen) == 3


def _shared(url: str, prefix: str, kind: str, key: str) -> tuple[Any, Any]:
    """A store of its own (as in another process) over the shared Redis, and the part kept there."""
    from retrykit.overload import RedisOverloadStore

    store = RedisOverloadStore(url, prefix=prefix)
    if kind == "budget":
        return store, retrykit.RetryBudget.quota(key, capacity=5, store=store)
    return store, retrykit.CircuitBreaker(key, min_throughput=2, open_for=60.0, store=store)


@pytest.mark.parametrize(
    "kind",
    [pytest.param("budget", id="budget-spent-jointly"), pytest.param("breaker", id="breaker-open-for-both")],
)
def test_a_host_s_budget_and_breaker_are_shared_through_redis(
    client: Runner, http_server: Server, redis_prefix: tuple[str, str], kind: str
) -> None:
    """Two adapters with a store each over one Redis: what the first spends or opens, the second sees."""
    url, prefix = redis_prefix
    key = f"svc-{uuid.uuid4().hex}"
    http_server.script(Reply(503))
    first_store, first = _shared(url, prefix, kind, key)
    client({"policy": policy(max_attempts=2), kind: first}, [Req("GET", http_server.url)], None)
    first_store.close()  # its batches sent, as when its process ends
    assert 2 == len(http_server.seen)  # one retry: the budget's 5 tokens spent, the breaker's 2 failures
    gave_up: list[GaveUp] = []
    second_store, shared = _shared(url, prefix, kind, key)
    options = {"policy": policy(max_attempts=2, on_giveup=gave_up.append), kind: shared}
    outcomes = client(options, [Req("GET", http_server.url)], None)
    second_store.close()
    if kind == "budget":
        assert (503, 3) == (outcomes[0].status, len(http_server.seen))  # sent once, not retried
        assert [StopReason.BUDGET_EXHAUSTED] == [event.reason for event in gave_up]
    else:
        assert isinstance(outcomes[0].error, retrykit.CircuitOpen)  # failed fast: nothing sent
        assert 2 == len(http_server.seen)


def test_events_name_method_host_and_route(client: Runner, http_server: Server) -> None:
    """The operation is the method, the host and the route template the route function gives."""
    http_server.script(Reply(503), Reply(200))
    waits: list[RetryScheduled] = []
    options = {"policy": policy(on_retry=waits.append), "route": lambda request: "/users/{id}"}
    client(options, [Req("GET", http_server.url + "/users/17")], None)
    assert [f"GET {http_server.host}/users/{{id}}"] == [event.operation for event in waits]


@pytest.mark.parametrize(
    ("replies", "status", "last"),
    [
        pytest.param([Reply(503), Reply(503), Reply(200)], 200, "Succeeded", id="late-success"),
        pytest.param([Reply(503)], 503, "GaveUp", id="give-up"),
    ],
)
def test_events_and_the_response_carry_the_resend_count(
    client: Runner, http_server: Server, replies: list[Reply], status: int, last: str
) -> None:
    """Events of a resent request carry ``http.request.resend_count``, as does the caller's response."""
    http_server.script(*replies)
    seen: list[Any] = []
    options = {
        "policy": policy(max_attempts=3, on_retry=seen.append, on_giveup=seen.append, on_success=seen.append)
    }
    [outcome] = client(options, [Req("GET", http_server.url)], None)
    assert (status, 2) == (outcome.status, outcome.resend)
    counts = [(type(event).__name__, event.attributes.get(RESEND_COUNT)) for event in seen]
    assert [("RetryScheduled", None), ("RetryScheduled", 1), (last, 2)] == counts


def test_a_decorated_function_over_the_transport_does_not_multiply(http_server: Server) -> None:
    """raise_for_status() under ``@retrykit.retry``: the transport's requests count, 3 x 3 is 3."""
    import httpx
    import requests

    import retrykit_http

    adapter, transport = retrykit_http.RetryAdapter, retrykit_http.RetryTransport  # imported now
    retrykit.testing.reset()  # forgets declared inner retriers: an adapter built now declares again
    http_server.script(Reply(503))
    session = requests.Session()
    session.mount("http://", adapter(policy(max_attempts=3)))
    client = httpx.Client(transport=transport(policy(max_attempts=3)))

    @retrykit.retry(max_attempts=3)
    def with_httpx() -> None:
        client.get(http_server.url).raise_for_status()

    @retrykit.retry(max_attempts=3)
    def with_requests() -> None:
        session.get(http_server.url).raise_for_status()

    for call, error in ((with_httpx, httpx.HTTPStatusError), (with_requests, requests.HTTPError)):
        with pytest.raises(error):
            call()
    client.close()
    session.close()
    assert 6 == len(http_server.seen)


def test_a_connect_failure_the_transport_gave_up_on_is_not_retried_above(http_server: Server) -> None:
    """The transport's give-up is final for a decorator around it (the one-layer rule)."""
    import httpx

    import retrykit_http

    client = httpx.Client(transport=retrykit_http.RetryTransport(policy(max_attempts=2)))
    tries: list[RetryScheduled] = []

    @retrykit.retry(max_attempts=3, on_retry=tries.append)
    def fetch() -> None:
        client.get(f"http://127.0.0.1:{closed_port()}/")

    with pytest.raises(httpx.ConnectError):
        fetch()
    client.close()
    assert [] == tries  # the decorator's own retries


@pytest.mark.parametrize(("method", "sent"), [("GET", 2), ("POST", 1)])
def test_a_response_rule_retries_what_the_status_lets_through(
    client: Runner, http_server: Server, method: str, sent: int
) -> None:
    """``classify_response`` retries a 200 carrying errors; a POST the server acted on is not resent."""
    http_server.script(Reply(200, body=b'{"errors": ["timeout"]}'), Reply(200, body=b'{"data": 1}'))
    seen: list[RetryScheduled] = []

    def graphql_errors(response: Any) -> str | None:
        status = getattr(response, "status_code", None) or getattr(response, "status", None)
        return "temporary_error" if status == 200 and len(http_server.seen) == 1 else None

    options = {"policy": policy(on_retry=seen.append), "classify_response": graphql_errors}
    client(options, [Req(method, http_server.url, body=b"{}")], None)
    assert len(http_server.seen) == sent
    assert [event.classification.rule for event in seen] == ["graphql_errors"] * (sent - 1)


def test_a_file_body_is_rewound_for_each_attempt(http_server: Server) -> None:
    """requests: a seekable file body is sent whole on every attempt."""
    import io

    import requests

    import retrykit_http

    http_server.script(Reply(503), Reply(200))
    with requests.Session() as session:
        session.mount("http://", retrykit_http.RetryAdapter(policy()))
        response = session.put(http_server.url, data=io.BytesIO(b"the whole file"))
    assert response.status_code == 200
    assert [seen.body for seen in http_server.seen] == [b"the whole file"] * 2


@pytest.mark.parametrize("kind", ["httpx", "requests"])
def test_concurrent_requests_share_no_state(http_server: Server, kind: str) -> None:
    """16 requests on 8 threads through one client: each makes its own 3 attempts, no more, no fewer."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import requests

    import retrykit_http

    http_server.script(Reply(503))
    if kind == "httpx":
        client: Any = httpx.Client(transport=retrykit_http.RetryTransport(policy(max_attempts=3)))
    else:
        client = requests.Session()
        client.mount("http://", retrykit_http.RetryAdapter(policy(max_attempts=3), pool_maxsize=8))
    with client, ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: client.get(http_server.url), range(16)))
    assert [retrykit_http.resend_count(response) for response in responses] == [2] * 16
    assert len(http_server.seen) == 48
