"""gRPC (sync and grpc.aio) and google-api-core errors from a real server this module starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import pytest

import retrykit
from retrykit import ErrorCategory

from ._servers import free_port, provoke

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc.aio")
api_exceptions = pytest.importorskip("google.api_core.exceptions")
grpc_helpers = pytest.importorskip("google.api_core.grpc_helpers")
grpc_helpers_async = pytest.importorskip("google.api_core.grpc_helpers_async")
api_retry = pytest.importorskip("google.api_core.retry")

NET = ErrorCategory.NETWORK_ERROR
RATE = ErrorCategory.API_RATE_LIMIT
DATA = ErrorCategory.DATA_ERROR
TEMP = ErrorCategory.TEMPORARY_ERROR
PERM = ErrorCategory.PERMANENT_ERROR

LIMIT = 1000  # bytes: the message-size limit of the server and of the limited channels

# The pinned table (README "gRPC"): case -> category. A case named after a status code is a
# handler that aborts with that code; the others are provoked by what they are named after.
CASES: dict[str, ErrorCategory] = {
    "UNAVAILABLE": NET,
    "DEADLINE_EXCEEDED": TEMP,
    "ABORTED": TEMP,
    "INTERNAL": TEMP,
    "RESOURCE_EXHAUSTED": RATE,
    "INVALID_ARGUMENT": DATA,
    "OUT_OF_RANGE": DATA,
    "NOT_FOUND": PERM,
    "ALREADY_EXISTS": PERM,
    "PERMISSION_DENIED": PERM,
    "UNAUTHENTICATED": PERM,
    "FAILED_PRECONDITION": PERM,
    "DATA_LOSS": PERM,
    "CANCELLED": PERM,
    "handler_raises": TEMP,  # UNKNOWN: an exception in the server's handler
    "unimplemented_method": PERM,  # UNIMPLEMENTED from the server's own routing
    "deadline": TEMP,  # DEADLINE_EXCEEDED: a short deadline on a slow handler
    "unreachable": NET,  # UNAVAILABLE: nothing listens on the port
    "pushback": RATE,  # RESOURCE_EXHAUSTED with grpc-retry-pushback-ms
    "response_too_large": DATA,  # RESOURCE_EXHAUSTED: the client's max_receive_message_length
    "request_too_large": DATA,  # RESOURCE_EXHAUSTED: the client's max_send_message_length
    "server_receive_limit": DATA,  # RESOURCE_EXHAUSTED: the server's max_receive_message_length
}


class _Handler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """/rk.Test/<NAME> aborts with status NAME; sleep, big, pushback, raise do what they say."""

    def service(self, details: Any) -> Any:
        name = details.method.rsplit("/", 1)[-1]
        if details.method.startswith("/rk.Missing/"):
            return None  # the server answers UNIMPLEMENTED itself

        def unary(request: bytes, context: Any) -> bytes:
            if name == "sleep":
                time.sleep(0.5)
                return b"late"
            if name == "big":
                return b"x" * (2 * LIMIT)
            if name == "echo":
                return request
            if name == "raise":
                raise RuntimeError("provoked failure in the handler")
            if name == "pushback":
                context.set_trailing_metadata((("grpc-retry-pushback-ms", "1500"),))
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota exceeded")
            if name.startswith("pushback_"):  # pushback_<value>, beside another header
                value = name.removeprefix("pushback_")
                context.set_trailing_metadata((("other", "1"), ("grpc-retry-pushback-ms", value)))
                context.abort(grpc.StatusCode.UNAVAILABLE, "pushed back")
            context.abort(getattr(grpc.StatusCode, name), f"provoked {name}")
            return b""  # pragma: no cover - abort raises

        return grpc.unary_unary_rpc_method_handler(unary)


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    """A real grpc.server on a free port with a message-size limit; stopped after the module."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", LIMIT)],
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.add_generic_rpc_handlers((_Handler(),))
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def _request(case: str, target: str) -> tuple[str, str, bytes, float, list[tuple[str, int]]]:
    """(address, method, request, timeout, channel options) for one case."""
    options: list[tuple[str, int]] = []
    method, request, timeout = f"/rk.Test/{case}", b"ping", 5.0
    if case == "handler_raises":
        method = "/rk.Test/raise"
    elif case == "unimplemented_method":
        method = "/rk.Missing/Call"
    elif case == "deadline":
        method, timeout = "/rk.Test/sleep", 0.1
    elif case == "unreachable":
        target = f"127.0.0.1:{free_port()}"
    elif case.startswith("pushback"):
        method = f"/rk.Test/{case}"
    elif case == "response_too_large":
        method, options = "/rk.Test/big", [("grpc.max_receive_message_length", LIMIT)]
    elif case == "request_too_large":
        method, request = "/rk.Test/echo", b"x" * (2 * LIMIT)
        options = [("grpc.max_send_message_length", LIMIT)]
    elif case == "server_receive_limit":
        method, request = "/rk.Test/echo", b"x" * (2 * LIMIT)
    return target, method, request, timeout, options


def _sync(case: str, target: str, api_core: bool) -> BaseException:
    address, method, request, timeout, options = _request(case, target)
    channel = grpc.insecure_channel(address, options=options)
    try:
        call: Callable[..., Any] = channel.unary_unary(method)
        if api_core:
            call = grpc_helpers.wrap_errors(call)
        return provoke(lambda: call(request, timeout=timeout))
    finally:
        channel.close()


def _aio(case: str, target: str, api_core: bool) -> BaseException:
    address, method, request, timeout, options = _request(case, target)

    async def go() -> BaseException:
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            call: Callable[..., Any] = channel.unary_unary(method)
            if api_core:
                call = grpc_helpers_async.wrap_errors(call)
            try:
                await call(request, timeout=timeout)
            except Exception as err:
                return err
        raise AssertionError(f"{case} raised nothing")

    return asyncio.run(go())


@pytest.mark.parametrize("layer", ["grpc", "google-api-core"])
@pytest.mark.parametrize("flavour", ["sync", "aio"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_grpc_errors(target: str, case: str, flavour: str, layer: str) -> None:
    """Each provoked status is classified as the table says: grpc's own error, and api-core's around it."""
    api_core = layer == "google-api-core"
    err = (_sync if flavour == "sync" else _aio)(case, target, api_core)
    if api_core:
        assert isinstance(err, api_exceptions.GoogleAPICallError), repr(err)
    else:
        assert isinstance(err, grpc.RpcError), repr(err)
    verdict = retrykit.classify(err)
    assert (CASES[case], "grpc_status") == (verdict.category, verdict.rule), str(retrykit.explain(err))


@pytest.mark.parametrize("layer", ["grpc", "google-api-core"])
@pytest.mark.parametrize("flavour", ["sync", "aio"])
def test_pushback_is_the_wait(target: str, flavour: str, layer: str) -> None:
    """grpc-retry-pushback-ms from the trailing metadata becomes retry_after (milliseconds)."""
    err = (_sync if flavour == "sync" else _aio)("pushback", target, layer == "google-api-core")
    assert retrykit.classify(err).retry_after == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("case", "pushback"),
    # "soon": gRPC itself reads an unparseable value as INT64_MIN ms; any negative means stop
    [("pushback", 1.5), ("pushback_20", 0.02), ("pushback_soon", "negative"), ("UNAVAILABLE", None)],
    ids=["given", "among-others", "unparseable", "absent"],
)
def test_overload_reads_grpc_pushback(target: str, case: str, pushback: float | str | None) -> None:
    """Pushback from a real server's trailing metadata: ms; unparseable means stop; absent means none."""
    from retrykit.overload import pushback_of

    found = pushback_of(_sync(case, target, api_core=False))
    if pushback == "negative":
        assert found is not None
        assert found < 0, found
    else:
        assert pushback == found


def test_message_size_is_not_a_quota(target: str) -> None:
    """RESOURCE_EXHAUSTED is a rate limit, except when the message itself is too large."""
    quota = retrykit.classify(_sync("RESOURCE_EXHAUSTED", target, False))
    size = retrykit.classify(_sync("response_too_large", target, False))
    assert (quota.category, size.category) == (RATE, DATA)
    assert "message-size" in size.reason


def test_api_core_retry_gives_up(target: str) -> None:
    """google-api-core's Retry gives up with RetryError; the UNAVAILABLE that caused it decides."""
    channel = grpc.insecure_channel(target)
    try:
        call = grpc_helpers.wrap_errors(channel.unary_unary("/rk.Test/UNAVAILABLE"))
        retry = api_retry.Retry(initial=0.01, maximum=0.02, timeout=0.2)
        err = provoke(lambda: retry(call)(b"ping", timeout=1))
    finally:
        channel.close()
    assert isinstance(err, api_exceptions.RetryError)
    assert retrykit.classify(err).category is NET, str(retrykit.explain(err))


def test_api_core_async_retry_gives_up(target: str) -> None:
    """google-api-core's AsyncRetry: the same, with grpc.aio underneath."""

    async def go() -> BaseException:
        async with grpc.aio.insecure_channel(target) as channel:
            call = grpc_helpers_async.wrap_errors(channel.unary_unary("/rk.Test/DEADLINE_EXCEEDED"))
            retry = api_retry.AsyncRetry(
                predicate=api_retry.if_exception_type(api_exceptions.DeadlineExceeded),
                initial=0.01,
                maximum=0.02,
                timeout=0.2,
            )
            try:
                await retry(call)(b"ping", timeout=1)
            except Exception as err:
                return err
        raise AssertionError("no error")

    err = asyncio.run(go())
    assert isinstance(err, api_exceptions.RetryError)
    assert retrykit.classify(err).category is TEMP, str(retrykit.explain(err))
