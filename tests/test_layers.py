"""The layer inside: declaring a client that retries inside a call, and detection that never raises."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import retrykit
from retrykit.events import StopReason
from retrykit.testing import no_wait, record, reset


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    yield
    reset()


class ClientGaveUp(Exception):
    """What a user's own SDK raises after retrying (not a library's class: the user's)."""

    def __init__(self, tries: Any) -> None:
        super().__init__(f"gave up after {tries} tries")
        self.tries = tries


def _sdk_call_with_its_own_retries(sent: list[int], tries: int) -> None:
    attempt = 0
    while attempt < tries:
        attempt += 1
        sent.append(attempt)
    raise ConnectionResetError(104, "reset by peer")


def test_a_declared_client_is_counted_by_its_types() -> None:
    """A client declared with types= and attempts= is counted: one round of 4, never 4 x 3."""
    retrykit.inner_retrier(
        "mysdk",
        switch_off="MySDK(retries=0)",
        types=ClientGaveUp,
        attempts=lambda e: e.tries if isinstance(e, ClientGaveUp) else None,  # types=: always one
    )
    calls = []

    @retrykit.retry(retrykit.Policy(max_attempts=3))
    def call() -> None:
        calls.append(1)
        raise ClientGaveUp(4)

    with no_wait(), record() as events, pytest.raises(ClientGaveUp) as caught:
        call()
    assert 1 == len(calls)
    assert StopReason.INNER_RETRIES == events.gave_up[-1].reason
    assert "MySDK(retries=0)" in str(caught.value.__notes__)


def test_a_declared_client_is_counted_by_its_frame() -> None:
    """A client declared by the frame of its retry loop is counted from that frame's local."""
    retrykit.inner_retrier(
        "loop-sdk",
        switch_off="tries=1",
        frame=(__name__, "_sdk_call_with_its_own_retries", "attempt"),
    )
    sent: list[int] = []
    with no_wait(), record() as events, pytest.raises(ConnectionResetError):
        retrykit.retry(retrykit.Policy(max_attempts=3))(_sdk_call_with_its_own_retries)(sent, 5)
    assert 5 == len(sent)
    inner = events.gave_up[-1].classification.inner
    assert inner is not None
    assert ("loop-sdk", 5) == (inner.client, inner.attempts)


_LATE_SDK = """
def send(sent, tries):
    attempt = 0
    while attempt < tries:
        attempt += 1
        sent.append(attempt)
    raise ConnectionResetError(104, "reset by peer")
"""


def test_a_client_imported_after_a_failure_is_still_counted_by_its_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A declared client whose module is imported after a failure was judged is still found in the frames."""
    (tmp_path / "late_loop_sdk.py").write_text(_LATE_SDK)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "late_loop_sdk", raising=False)
    retrykit.inner_retrier("late-sdk", switch_off="tries=1", frame=("late_loop_sdk", "send", "attempt"))
    policy = retrykit.Policy(max_attempts=3)
    with no_wait(), pytest.raises(ConnectionResetError):  # judged while the module is not imported
        retrykit.retry(policy)(_sdk_call_with_its_own_retries)([], 1)
    late = importlib.import_module("late_loop_sdk")
    sent: list[int] = []
    with no_wait(), record() as events, pytest.raises(ConnectionResetError):
        retrykit.retry(policy)(late.send)(sent, 5)
    assert 5 == len(sent)
    inner = events.gave_up[-1].classification.inner
    assert inner is not None
    assert ("late-sdk", 5) == (inner.client, inner.attempts)


def test_an_undeclared_loop_is_retried_as_before() -> None:
    """Without a declaration the same failure is retried by the policy (nothing is guessed)."""
    sent: list[int] = []
    with no_wait(), pytest.raises(ConnectionResetError):
        retrykit.retry(retrykit.Policy(max_attempts=3))(_sdk_call_with_its_own_retries)(sent, 2)
    assert 6 == len(sent)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"client": "", "switch_off": "x", "types": ClientGaveUp, "attempts_per_call": 3}, "client"),
        ({"client": 3, "switch_off": "x", "types": ClientGaveUp, "attempts_per_call": 3}, "client"),
        ({"client": "c", "switch_off": None, "types": ClientGaveUp, "attempts_per_call": 3}, "switch_off"),
        ({"client": "c", "switch_off": "x", "types": "ClientGaveUp", "attempts_per_call": 3}, "types"),
        ({"client": "c", "switch_off": "x", "types": (int,), "attempts_per_call": 3}, "types"),
        ({"client": "c", "switch_off": "x", "types": ClientGaveUp, "attempts": 3}, "attempts"),
        ({"client": "c", "switch_off": "x", "frame": ("m", "f")}, "frame"),
        ({"client": "c", "switch_off": "x", "frame": ("m", "f", 3)}, "frame"),
        (
            {"client": "c", "switch_off": "x", "types": ClientGaveUp, "attempts_per_call": 0},
            "attempts_per_call",
        ),
        (
            {"client": "c", "switch_off": "x", "types": ClientGaveUp, "attempts_per_call": True},
            "attempts_per_call",
        ),
        ({"client": "c", "switch_off": "x", "types": ClientGaveUp}, "attempts_per_call"),
        ({"client": "c", "switch_off": "x"}, "inner_retrier"),
    ],
)
def test_a_bad_declaration_names_the_argument_and_the_fix(kwargs: dict[str, Any], argument: str) -> None:
    """A wrong type or a missing field is a ConfigError naming the argument, the value and a fix."""
    with pytest.raises(retrykit.ConfigError) as caught:
        retrykit.inner_retrier(**kwargs)
    assert caught.value.argument == argument
    assert "pass " in str(caught.value)


class Hostile(Exception):
    """An exception whose every attribute raises, and whose str() raises too."""

    def __getattribute__(self, name: str) -> Any:
        if name in ("__class__", "__traceback__", "__cause__", "__context__", "__suppress_context__", "args"):
            return object.__getattribute__(self, name)
        raise RuntimeError(f"no {name}")

    def __str__(self) -> str:
        raise RuntimeError("no str")


@pytest.mark.parametrize(
    "counter",
    [lambda e: 1 / 0, lambda e: "many", lambda e: -3, lambda e: None],
    ids=["raises", "not a number", "negative", "none"],
)
def test_detection_never_raises_into_the_caller(counter: Any) -> None:
    """A counter that raises or answers nonsense, or a hostile exception: the caller gets its own."""
    retrykit.inner_retrier("odd", switch_off="x", types=(ClientGaveUp, Hostile), attempts=counter)
    for error in (ClientGaveUp(2), Hostile(), ClientGaveUp(2).with_traceback(None)):

        def call(error: BaseException = error) -> None:
            raise error

        with no_wait(), pytest.raises(type(error)) as caught:
            retrykit.retry(retrykit.Policy(max_attempts=2))(call)()
        assert caught.value is error


def test_a_header_of_the_wrong_type_is_no_count() -> None:
    """A retry-count header that is not a number is read as no count: retrykit retries as usual."""
    openai = pytest.importorskip("openai")
    httpx = pytest.importorskip("httpx")
    request = httpx.Request("GET", "http://127.0.0.1/", headers={"x-stainless-retry-count": "two"})
    error = openai.APIConnectionError(request=request)
    calls = []

    def call() -> None:
        calls.append(1)
        raise error

    with no_wait(), pytest.raises(openai.APIConnectionError):
        retrykit.retry(retrykit.Policy(max_attempts=3))(call)()
    assert 3 == len(calls)
