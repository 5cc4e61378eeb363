"""Overload protection: retry budgets, the circuit breaker, pushback, and their Redis store."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import retrykit
import retrykit.events
from retrykit import (
    CircuitBreaker,
    CircuitOpen,
    ConfigError,
    ErrorCategory,
    Policy,
    RetryBudget,
    Strategy,
    _budget,
)
from retrykit._overload import overload_states, pushback_of
from retrykit._overload_memory import HALF_OPEN, OPEN, BudgetState, MemoryOverloadStore
from retrykit.events import StopReason
from retrykit.overload import RedisOverloadStore
from retrykit.testing import no_wait, record

from .flaky import Flaky

NET = ErrorCategory.NETWORK_ERROR
FAST = {c: Strategy.backoff(0.01, 0.1, max_retries=3) for c in ("network_error", "temporary_error")}
REDIS_DB = "redis://127.0.0.1:6379/14"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class StatusError(Exception):
    """This test's own SDK-style error carrying a status and headers (read by duck typing)."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers or {}


@pytest.fixture(autouse=True)
def _fresh_store() -> Iterator[None]:
    """Each test starts with no in-memory budget or breaker state."""
    _budget.reset_default_store()
    yield
    _budget.reset_default_store()


def _failing(policy: Policy, error: BaseException | None = None) -> tuple[Any, Flaky]:
    """*policy* around a call that always fails (with *error*, else a new ConnectionResetError each time)."""
    flaky = Flaky(result=error if error is not None else ConnectionResetError)
    return retrykit.retry(policy)(flaky), flaky


def _run(fn: Any, times: int) -> list[BaseException]:
    errors = []
    with no_wait():
        for _ in range(times):
            try:
                fn()
            except Exception as err:
                errors.append(err)
    return errors


@pytest.mark.parametrize(
    ("budget", "retries"),
    [
        pytest.param(RetryBudget("svc", ratio=0.1, min_per_second=0.1, window=10), 3, id="ratio"),
        pytest.param(RetryBudget.quota("svc", capacity=25), 2, id="quota"),
        pytest.param(RetryBudget.adaptive("svc", rng=lambda: 0.5), 1, id="adaptive"),
    ],
)
def test_budget_exhaustion_is_a_distinct_outcome(budget: RetryBudget, retries: int) -> None:
    """Each shape refuses retries once spent: the give-up says budget_exhausted, the note too."""
    budget.clock = Clock()
    fn, flaky = _failing(Policy(strategies=FAST, budget=budget))
    with record() as rec:
        errors = _run(fn, 20)
    assert 20 + retries == flaky.calls
    reasons = [e.reason for e in rec.events if isinstance(e, retrykit.events.GaveUp)]
    assert StopReason.BUDGET_EXHAUSTED in reasons
    assert "[budget_exhausted]" in errors[-1].__notes__[0]
    assert budget.state()["refused"] >= 20 - retries


def test_budget_is_charged_when_the_retry_is_decided() -> None:
    """A retry waiting in its backoff has already been charged (on_retry runs before the sleep)."""
    budget = RetryBudget.quota("svc", capacity=100)
    seen = []
    policy = Policy(strategies=FAST, budget=budget, on_retry=lambda e: seen.append(budget.state()["balance"]))
    fn, _ = _failing(policy)
    _run(fn, 1)
    assert [90.0, 80.0, 70.0] == seen


@pytest.mark.parametrize("error", [ValueError("bad row"), StatusError(404)], ids=["data", "permanent"])
def test_data_and_permanent_failures_never_charge(error: Exception) -> None:
    """Even a policy that retries data and permanent failures charges nothing for them."""
    retried = {c: Strategy.immediately(max_retries=2) for c in ("data_error", "permanent_error")}
    budget = RetryBudget.quota("svc", capacity=10)
    fn, flaky = _failing(Policy(strategies=retried, budget=budget), error)
    _run(fn, 5)
    assert 15 == flaky.calls
    assert 10.0 == budget.state()["balance"]


def test_quota_refunds_on_success() -> None:
    """A first-try success refunds 1, a success after a retry refunds what the retry cost."""
    budget = RetryBudget.quota("svc", capacity=100)
    outcomes = iter([ConnectionResetError(), "ok", "ok"])

    @retrykit.retry(Policy(strategies=FAST, budget=budget))
    def fn() -> Any:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with no_wait():
        fn()
        assert 100.0 == budget.state()["balance"]  # 100 - 10 + 10
        budget.state()
    budget._store().budget(budget).tokens = 50.0
    with no_wait():
        fn()
    assert 51.0 == budget.state()["balance"]


def test_ratio_budget_refills_with_calls_and_forgets_old_ones() -> None:
    """Calls deposit; retries within the window are <= ratio x calls + the floor, then they expire."""
    clock = Clock()
    budget = RetryBudget("svc", ratio=0.5, min_per_second=0, window=10, clock=clock)
    for _ in range(10):
        budget.admitted()
    assert [1] * 5 + [None] == [budget.withdraw(NET) for _ in range(6)]
    clock.now += 11
    assert budget.withdraw(NET) is None
    budget.admitted()
    budget.admitted()
    assert 1 == budget.withdraw(NET)


def test_one_key_covers_every_operation() -> None:
    """Two operations with budgets of the same key spend from one state."""
    first = RetryBudget.quota("shared", capacity=20)
    second = RetryBudget.quota("shared", capacity=20)
    one, _ = _failing(Policy(strategies=FAST, budget=first))
    two, _ = _failing(Policy(strategies=FAST, budget=second))
    _run(one, 1)
    assert 0.0 == second.state()["balance"]
    with record() as rec:
        _run(two, 1)
    assert [StopReason.BUDGET_EXHAUSTED] == [
        e.reason for e in rec.events if isinstance(e, retrykit.events.GaveUp)
    ]


@pytest.mark.parametrize(
    ("value", "shape"),
    [("payments", "ratio"), ({"key": "payments", "shape": "quota", "capacity": 9}, "quota")],
)
def test_policy_takes_a_budget_by_name_or_settings(value: Any, shape: str) -> None:
    """``Policy(budget=...)`` accepts a key or a mapping of settings; presets take one by replace()."""
    policy = retrykit.get_preset("http").replace(budget=value, breaker="payments")
    assert policy.budget is not None
    assert (shape, "payments") == (policy.budget.shape, policy.budget.key)
    assert isinstance(policy.breaker, CircuitBreaker)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget": {"key": "x", "nope": 1}},
        {"budget": 3},
        {"breaker": {"key": "x", "counted": ["data_error"]}},
    ],
)
def test_bad_overload_settings_fail_at_construction(kwargs: dict[str, Any]) -> None:
    """A bad budget or breaker is a ConfigError naming the argument."""
    with pytest.raises(retrykit.ConfigError):
        Policy(**kwargs)


def test_policy_without_protection_has_no_guard() -> None:
    """The success path checks one attribute: no budget and no breaker means no guard."""
    assert Policy().guard is None
    assert Policy(budget="x").guard is not None


# --------------------------------------------------------------------------- the breaker


def _breaker(clock: Clock, **kw: Any) -> CircuitBreaker:
    return CircuitBreaker("dep", min_throughput=4, failure_ratio=0.5, open_for=5, clock=clock, **kw)


def test_breaker_opens_fails_fast_and_probes() -> None:
    """It opens after enough failures, refuses calls with CircuitOpen, and a good probe closes it."""
    clock = Clock()
    breaker = _breaker(clock)
    healthy = [False]
    calls = [0]

    @retrykit.retry(Policy(strategies={"network_error": Strategy.no_retry()}, breaker=breaker))
    def fn() -> str:
        calls[0] += 1
        if not healthy[0]:
            raise ConnectionResetError()
        return "ok"

    _run(fn, 4)
    assert "open" == breaker.state()["state"]
    with record() as rec, pytest.raises(CircuitOpen) as caught:
        fn()
    assert 4 == calls[0]
    assert ("dep", 5.0) == (caught.value.key, caught.value.remaining)
    assert [StopReason.CIRCUIT_OPEN] == [
        e.reason for e in rec.events if isinstance(e, retrykit.events.GaveUp)
    ]
    clock.now += 5
    healthy[0] = True
    assert "ok" == fn()  # the probe
    assert "closed" == breaker.state()["state"]


def test_failed_probe_reopens_and_only_one_probe_goes_through() -> None:
    """Half-open lets one probe through; its failure opens the breaker for another period."""
    clock = Clock()
    breaker = _breaker(clock)
    breaker.record(0, 4)
    clock.now += 5
    assert 0.0 == breaker.allow()
    assert breaker.allow() > 0
    breaker.record(0, 1)
    assert "open" == breaker.state()["state"]
    assert 5.0 == breaker.allow()


@pytest.mark.parametrize(
    ("error", "opens"),
    [
        (ConnectionResetError(), True),
        (StatusError(503), True),
        (ValueError("bad"), False),
        (StatusError(404), False),
    ],
    ids=["network", "503", "data", "permanent"],
)
def test_breaker_counts_only_unhealthy_categories(error: Exception, opens: bool) -> None:
    """Network, system and temporary failures count; data and permanent ones prove it answered."""
    clock = Clock()
    breaker = _breaker(clock)
    fn, _ = _failing(
        Policy(strategies={c: Strategy.no_retry() for c in ErrorCategory}, breaker=breaker), error
    )
    _run(fn, 6)
    assert opens == (breaker.state()["state"] == "open")


def test_circuit_open_is_picklable_and_passes_enclosing_layers() -> None:
    """CircuitOpen survives pickling; an outer retrykit layer does not retry it."""
    error = pickle.loads(pickle.dumps(CircuitOpen("dep", 2.5)))
    assert ("dep", 2.5) == (error.key, error.remaining)
    clock = Clock()
    breaker = _breaker(clock)
    breaker.record(0, 4)
    inner_calls = [0]

    @retrykit.retry(Policy(breaker=breaker))
    def inner() -> None:
        inner_calls[0] += 1

    outer_calls = [0]

    @retrykit.retry(Policy(strategies={c: Strategy.immediately(max_retries=3) for c in ErrorCategory}))
    def outer() -> None:
        outer_calls[0] += 1
        inner()

    with no_wait(), pytest.raises(CircuitOpen):
        outer()
    assert (1, 0) == (outer_calls[0], inner_calls[0])


def test_breaker_stops_retries_while_open() -> None:
    """A retry whose wait ends before the breaker closes is not scheduled (circuit_open)."""
    clock = Clock()
    breaker = _breaker(clock)
    fn, flaky = _failing(Policy(strategies=FAST, breaker=breaker))
    with record() as rec:
        _run(fn, 2)
    reasons = [e.reason for e in rec.events if isinstance(e, retrykit.events.GaveUp)]
    assert StopReason.CIRCUIT_OPEN in reasons
    assert flaky.calls == 4  # the 4th failure opened it: no more retries


def test_block_form_with_breaker_and_budget() -> None:
    """``attempts()`` asks the breaker before the first attempt and charges the budget."""
    clock = Clock()
    breaker = _breaker(clock)
    budget = RetryBudget.quota("dep", capacity=10)
    policy = Policy(strategies=FAST, breaker=breaker, budget=budget)
    with no_wait(), pytest.raises(ConnectionResetError):
        for attempt in retrykit.attempts(policy):
            with attempt:
                raise ConnectionResetError()
    assert 0.0 == budget.state()["balance"]
    breaker.record(0, 4)
    with pytest.raises(CircuitOpen):
        for attempt in retrykit.attempts(policy):
            with attempt:
                pass


def test_negative_pushback_overrides_the_policy() -> None:
    """``grpc-retry-pushback-ms: -1`` stops at once; a positive one sets the wait."""
    fn, flaky = _failing(
        Policy(strategies=FAST, budget="x"), StatusError(503, {"grpc-retry-pushback-ms": "-1"})
    )
    with record() as rec:
        _run(fn, 1)
    assert 1 == flaky.calls
    assert [StopReason.PUSHBACK] == [e.reason for e in rec.events if isinstance(e, retrykit.events.GaveUp)]
    fn, _ = _failing(Policy(strategies=FAST, budget="y"), StatusError(503, {"grpc-retry-pushback-ms": "70"}))
    with record() as rec:
        _run(fn, 1)
    assert {0.07} == {e.delay for e in rec.events if isinstance(e, retrykit.events.RetryScheduled)}


@pytest.mark.anyio
async def test_coroutines_respect_budget_and_breaker(anyio_backend: str) -> None:
    """On asyncio and trio: exhaustion gives up with budget_exhausted, an open breaker refuses."""
    clock = Clock()
    budget = RetryBudget.quota("dep", capacity=15)
    breaker = _breaker(clock)
    calls = [0]

    @retrykit.retry(Policy(strategies=FAST, budget=budget, breaker=breaker))
    async def fn() -> None:
        calls[0] += 1
        await anyio.lowlevel.checkpoint()
        raise ConnectionResetError()

    with record() as rec, no_wait():
        for _ in range(3):
            with pytest.raises(ConnectionResetError):
                await fn()
    assert 4 == calls[0]
    assert StopReason.BUDGET_EXHAUSTED in [
        e.reason for e in rec.events if isinstance(e, retrykit.events.GaveUp)
    ]
    assert "open" == breaker.state()["state"]  # the 4 failures opened it
    with pytest.raises(CircuitOpen):
        await fn()
    assert 4 == calls[0]


# --------------------------------------------------------------------------- Redis


def _redis_store(redis_url: str, name: str, **kw: Any) -> RedisOverloadStore:
    kw.setdefault("timeout", 1.0)  # what Redis decides is under test, not the 10 ms fallback
    store = RedisOverloadStore(REDIS_DB, prefix=f"rk-overload:{name}:{os.getpid()}", **kw)
    for key in store.client.scan_iter(f"{store.prefix}*"):
        store.client.delete(key)
    return store


def _spend(prefix: str, key: str, count: int, queue: Any) -> None:
    # Sharing is under test, not the fallback: on a loaded machine Redis may answer after the
    # default 10 ms, which would send this process to its local budget (10 + 3 were granted once).
    store = RedisOverloadStore(REDIS_DB, prefix=prefix, background=False, timeout=2.0, wait=2.0)
    budget = RetryBudget.quota(key, capacity=100, store=store)
    queue.put(sum(budget.withdraw(NET) is not None for _ in range(count)))


@pytest.mark.needs_service("redis")
def test_redis_budget_is_shared_across_processes(redis_url: str) -> None:
    """Three processes spend one Redis quota: together they get exactly its 10 retries."""
    store = _redis_store(redis_url, "shared", background=False)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_spend, args=(store.prefix, "dep", 8, queue)) for _ in range(3)]
    for proc in procs:
        proc.start()
    granted = sum(queue.get(timeout=30) for _ in procs)
    for proc in procs:
        proc.join(10)
    assert 10 == granted
    assert {"spent": 10, "refused": 14} == {
        k: v
        for k, v in RetryBudget.quota("dep", capacity=100, store=store).state().items()
        if k in ("spent", "refused")
    }


@pytest.mark.needs_service("redis")
def test_redis_deposits_are_batched_and_counted_once(redis_url: str) -> None:
    """Calls cost no round trip; a batch resent after a failure is applied once."""
    store = _redis_store(redis_url, "batch", background=False)
    budget = RetryBudget("dep", ratio=0.5, min_per_second=0, store=store)
    for _ in range(10):
        budget.admitted()
    assert 0 == budget.state()["calls"]
    assert store.flush()
    entry = store._budgets[store.budget_key(budget)]
    entry.inflight, entry.seq = [10, 0, 0], entry.seq  # as if the reply was lost: resent whole
    assert store.flush()
    assert (10, 10.0) == (budget.state()["total_requests"], budget.state()["calls"])
    assert [1] * 5 + [None] == [budget.withdraw(NET) for _ in range(6)]


@pytest.mark.needs_service("redis")
def test_redis_breaker_state_is_shared(redis_url: str) -> None:
    """A breaker opened by one process's failures refuses another process's calls."""
    one = _redis_store(redis_url, "breaker", background=False)
    two = RedisOverloadStore(REDIS_DB, prefix=one.prefix, background=False, timeout=1.0)
    kw = {"min_throughput": 4, "open_for": 5.0}
    CircuitBreaker("dep", store=one, **kw).record(0, 4)
    assert one.flush()
    other = CircuitBreaker("dep", store=two, **kw)
    two.record(other, 0, 0)
    assert two.flush()  # the batch brings the state back
    assert 4.0 < other.allow() <= 5.0


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, to stop and kill."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/10", proc
    proc.send_signal(signal.SIGCONT)
    proc.kill()
    proc.wait(5)


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_redis_down_falls_back_locally_without_blocking(
    own_redis: tuple[str, subprocess.Popen[bytes]], how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """
    Redis killed or frozen: the first decision's one Redis call fails (refused, or the socket
    timeout), later ones never call Redis; one warning, every decision answered locally.
    """
    url, proc = own_redis
    store = RedisOverloadStore(url, background=False)
    budget = RetryBudget.quota("dep", capacity=20, store=store)
    assert 10 == budget.withdraw(NET)
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGSTOP)
    if how == "kill":
        proc.wait(5)
    outcomes: list[str] = []  # what each Redis call the callers made came to
    script = store._budget_script

    def spy(*args: Any, **kw: Any) -> Any:
        try:
            reply = script(*args, **kw)
        except Exception as err:
            outcomes.append(type(err).__name__)
            raise
        outcomes.append("reply")
        return reply

    store._budget_script = spy  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="retrykit"):
        answers = [budget.withdraw(NET) for _ in range(3)]
    assert [{"kill": "ConnectionError", "stop": "TimeoutError"}[how]] == outcomes
    assert [10, None, None] == answers  # the fallback knows Redis let it spend 10 of 20
    assert 1 == sum("cannot reach Redis" in r.getMessage() for r in caplog.records)
    assert store.fallbacks == 3


def test_a_breaker_opening_during_the_wait_ends_the_call_with_its_own_error() -> None:
    """When the breaker opens while a call waits to retry, the caller gets that call's last error."""
    clock = Clock()
    breaker = _breaker(clock)
    original = ConnectionResetError("the call's own failure")

    def trip(event: Any) -> None:
        breaker.record(0, 10)  # other calls fail meanwhile: the breaker opens

    fn, flaky = _failing(Policy(strategies=FAST, breaker=breaker, on_retry=trip), original)
    with no_wait(), record() as rec, pytest.raises(ConnectionResetError) as info:
        fn()
    assert info.value is original
    assert 1 == flaky.calls
    assert [StopReason.CIRCUIT_OPEN] == [
        e.reason for e in rec.events if isinstance(e, retrykit.events.GaveUp)
    ]
    assert "[circuit_open]" in info.value.__notes__[0]


# --------------------------------------------------------------------------- retry budgets at their edges


class StillClock:
    """A clock that stands still."""

    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("settings", "argument"),
    [
        ({"key": ""}, "key"),
        ({"shape": "leaky"}, "shape"),
        ({"ratio": "10%"}, "ratio"),
        ({"ratio": float("nan")}, "ratio"),
        ({"ratio": float("inf")}, "ratio"),
        ({"k": 0.5}, "k"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": True}, "capacity"),
        ({"costs": {"network_error": -1}}, "costs['network_error']"),
        ({"costs": {"network_error": 1.5}}, "costs['network_error']"),
        ({"costs": {"no_such_category": 1}}, "costs"),
    ],
)
def test_bad_settings_are_refused_naming_the_argument(settings: dict[str, Any], argument: str) -> None:
    """Each bad setting fails at construction with a ConfigError that names it."""
    kwargs = {"key": "svc", **settings}
    with pytest.raises(ConfigError) as raised:
        RetryBudget(**kwargs)
    assert argument in str(raised.value)


def test_costs_accept_category_names() -> None:
    """A quota's costs may name categories by their value; the others keep their defaults."""
    budget = RetryBudget.quota("svc", 10, costs={"network_error": 3})
    assert 3 == budget.cost(ErrorCategory.NETWORK_ERROR)
    assert RetryBudget.quota("svc", 10).cost(ErrorCategory.API_RATE_LIMIT) == budget.cost(
        ErrorCategory.API_RATE_LIMIT
    )


@pytest.mark.parametrize(
    ("budget", "line"),
    [
        (
            RetryBudget("svc", ratio=0.2, window=10),
            "retries <= 20% of calls per 10s + 10/s",
        ),
        (RetryBudget.quota("svc", 7, costs={"network_error": 2}), "quota budget 'svc': 7 tokens;"),
        (RetryBudget.adaptive("svc", k=1.5, window=60), "(requests - 1.5*accepts)/(requests+1)) over 60s"),
    ],
    ids=["ratio", "quota", "adaptive"],
)
def test_describe_says_each_shape(budget: RetryBudget, line: str) -> None:
    """explain's line names the shape, the key and the shape's own figures; repr names shape and key."""
    assert line in budget.describe()
    assert f"<RetryBudget {budget.shape} 'svc'>" == repr(budget)


def test_adaptive_refuses_with_the_sre_probability() -> None:
    """Adaptive: 3 requests and 1 accept at k=2 give p = 1/4; a roll below it is refused, above allowed."""
    store = MemoryOverloadStore()
    budget = RetryBudget.adaptive("svc", k=2, store=store, clock=StillClock(), rng=lambda: 0.2)
    for _ in range(3):
        budget.admitted()
    budget.succeeded(None)
    assert 0.25 == budget.state()["reject_probability"]
    assert budget.withdraw(ErrorCategory.NETWORK_ERROR) is None  # 0.2 < 0.25: refused
    budget.rng = lambda: 0.3
    assert 1 == budget.withdraw(ErrorCategory.NETWORK_ERROR)
    assert {"requests": 4, "accepts": 1, "spent": 1, "refused": 1} == {
        k: budget.state()[k] for k in ("requests", "accepts", "spent", "refused")
    }


@pytest.mark.parametrize(
    ("budget", "field", "after"),
    [
        (RetryBudget("svc", min_per_second=0, ratio=0.5, window=10), "retries", 1),
        (RetryBudget.quota("svc", 10), "balance", 5),
        (RetryBudget.adaptive("svc", window=10), "requests", 1),
    ],
    ids=["ratio", "quota", "adaptive"],
)
def test_a_charge_from_another_store_counts_here(budget: RetryBudget, field: str, after: float) -> None:
    """A retry another store allowed is recorded locally, in each shape's own measure."""
    state = BudgetState(budget)
    state.charge(StillClock.now, 5)
    assert after == state.snapshot(StillClock.now)[field]


# --------------------------------------------------------------------------- breakers and reports at edges


def test_an_error_without_trailing_metadata_has_no_pushback() -> None:
    """An error of no gRPC library carries no pushback (the real ones: tests/real_errors/test_grpc.py)."""
    assert pushback_of(ValueError("plain")) is None


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"key": ""}, "key"),
        ({"key": 3}, "key"),
        ({"failure_ratio": 0}, "failure_ratio"),
        ({"failure_ratio": True}, "failure_ratio"),
        ({"failure_ratio": 1.5}, "failure_ratio"),
        ({"min_throughput": 0}, "min_throughput"),
        ({"probes": True}, "probes"),
        ({"probes": 1.0}, "probes"),
    ],
)
def test_bad_breaker_settings_are_refused_by_name(settings: dict[str, Any], named: str) -> None:
    """A breaker's key, failure_ratio, min_throughput and probes are checked, naming the one at fault."""
    given = {"key": "svc", **settings}
    with pytest.raises(ConfigError, match=named):
        CircuitBreaker(given.pop("key"), **given)


@pytest.mark.parametrize(("probes", "plural"), [(1, "1 probe"), (3, "3 probes")])
def test_a_breaker_describes_itself_in_one_line(probes: int, plural: str) -> None:
    """describe() gives the thresholds, the counted categories and the probes; repr names the key."""
    breaker = CircuitBreaker("svc", failure_ratio=0.25, min_throughput=8, probes=probes)
    text = breaker.describe()
    assert text.startswith("circuit breaker 'svc': opens at 25% failures of >= 8 calls")
    assert text.endswith(plural)
    assert "<CircuitBreaker 'svc'>" == repr(breaker)


def test_a_guard_describes_its_budget_and_breaker() -> None:
    """A policy's guard gives one line for its budget and one for its breaker."""
    policy = Policy(budget=RetryBudget("svc"), breaker=CircuitBreaker("svc"))
    assert policy.guard is not None
    lines = policy.guard.describe()
    assert 2 == len(lines)
    assert lines[1].startswith("circuit breaker 'svc'")


@pytest.mark.parametrize(
    ("state", "outcome", "after"),
    [(OPEN, (5, 0), OPEN), (HALF_OPEN, (0, 0), HALF_OPEN), (HALF_OPEN, (1, 0), 0), (HALF_OPEN, (0, 1), OPEN)],
    ids=["open-ignores-late", "half-open-nothing", "half-open-success", "half-open-failure"],
)
def test_outcomes_move_an_open_or_half_open_breaker_only_as_they_should(
    state: int, outcome: tuple[int, int], after: int
) -> None:
    """Open ignores late outcomes; half-open closes on a success, opens on a failure, waits on neither."""
    store = MemoryOverloadStore()
    breaker = CircuitBreaker("svc", store=store)
    held = store.breaker(breaker)
    held.state = state
    breaker.record(*outcome)
    assert after == held.state
    assert (0, 0) == held.slots.sums(breaker.clock())  # nothing counted in the window


class _Unreadable(RetryBudget):
    def state(self) -> dict[str, Any]:
        raise ConnectionError("store down")


def test_the_report_survives_an_unreadable_part_and_keeps_twins_apart() -> None:
    """An unreadable budget is reported with its error; one key with two shapes shows twice, by shape."""
    store = MemoryOverloadStore()
    budgets, _ = overload_states(
        [_Unreadable("down", store=store), RetryBudget("svc"), RetryBudget.quota("svc", 5)]
    )
    assert {"error": "ConnectionError"} == budgets["down"]
    assert ["down", "svc", "svc [quota]"] == sorted(budgets)


def test_a_budget_with_a_share_of_the_fleet_reports_it() -> None:
    """A local budget that is one process's share of a fleet's says which share in its state."""
    store = MemoryOverloadStore()
    budget = RetryBudget("svc", store=store)
    store.budget(budget).set_share(0.25)
    assert 0.25 == budget.state()["share"]
