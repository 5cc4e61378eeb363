"""Error statistics and analysis: known answers, bounded memory, Redis (real, many, absent)."""

from __future__ import annotations

import io
import logging
import multiprocessing
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import retrykit
import retrykit.events
import retrykit.stats
from retrykit import Classification, ConfigError, ErrorCategory, _analysis, _stats
from retrykit._analysis import from_counts, render_analysis
from retrykit.events import AttemptFailed, GaveUp, RetryScheduled, StopReason, Succeeded
from retrykit.stats import MemoryStore, RedisStore, StatsRecorder, Thresholds, analyze, use_recorder
from retrykit.testing import no_wait

from .flaky import Flaky

NET = ErrorCategory.NETWORK_ERROR
DATA = ErrorCategory.DATA_ERROR
RATE = ErrorCategory.API_RATE_LIMIT
T0 = 1_800_000_000.0


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _c(category: ErrorCategory) -> Classification:
    return Classification(category, "test")


def call(
    rec: StatsRecorder, op: str, failures: list[ErrorCategory], outcome: str, reason: StopReason | None = None
) -> None:
    """Feed the events of one call: failures in order, then success or a give-up."""
    previous = None
    for n, category in enumerate(failures, start=1):
        rec(AttemptFailed(op, n, "E", _c(category), 0.0, previous))
        last = n == len(failures)
        if not last or outcome == "ok":
            decision = retrykit.Decision.RETRY_WITH_DELAY
            rec(RetryScheduled(op, n, "E", _c(category), decision, 1.5, 0.0, after=previous))
        else:
            stop = reason or StopReason.CATEGORY_EXHAUSTED
            rec(GaveUp(op, n, "E", _c(category), stop, 0.0, after=previous))
        previous = category
    if outcome == "ok":
        rec(Succeeded(op, len(failures) + 1, 0.0, previous))


@pytest.fixture
def rec() -> Iterator[StatsRecorder]:
    """A recorder on an in-memory store with a fixed clock."""
    return StatsRecorder(MemoryStore(clock=Clock()))


def test_analysis_of_a_constructed_history(rec: StatsRecorder) -> None:
    """Known history in, known figures out."""
    for _ in range(10):
        call(rec, "a", [NET], "ok")
    for _ in range(5):
        call(rec, "b", [DATA], "gave_up", StopReason.NON_RETRYABLE)
    for _ in range(4):
        call(rec, "a", [NET, NET, NET], "gave_up")
    a = analyze(recorder=rec)
    assert (a.total_errors, a.calls_with_errors, a.retries, a.late_successes, a.gave_up) == (
        27,
        19,
        18,
        10,
        9,
    )
    assert {"network_error": 22, "data_error": 5} == a.category_distribution
    assert {"non_retryable": 5, "category_retries_exhausted": 4} == a.give_up_reasons
    assert a.retry_success_by_attempt == {2: 10 / 14, 3: 0.0}
    assert a.retry_samples_by_attempt == {2: 14, 3: 4}
    assert a.retry_success_rate == pytest.approx(10 / 18)
    assert {"network_error": pytest.approx(10 / 18)} == a.retry_success_by_category
    assert a.waited_seconds == pytest.approx(18 * 1.5)
    assert (18, 18) == (a.operations["a"].retries, a.operations["a"].errors - 4)
    assert "memory" == a.source


def test_analysis_of_one_operation_and_a_window(rec: StatsRecorder) -> None:
    """name= restricts to one operation; since= to a window."""
    clock: Clock = rec.local.clock  # type: ignore[assignment]
    call(rec, "old", [NET], "ok")
    clock.now += 7200
    call(rec, "new", [NET], "ok")
    assert 1 == analyze("new", recorder=rec).total_errors
    assert 0 == analyze("old", since=3600, recorder=rec).total_errors
    assert 2 == analyze(since=3 * 3600, recorder=rec).total_errors


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([("a", [DATA, DATA], "ok")], "data_error failures were retried 2 times"),
        (
            [("a", [NET], "ok")] * 15 + [("a", [NET, NET, NET, NET, NET], "gave_up")] * 8,
            "Retries from attempt 3 on succeeded 0 of 24 times",
        ),
        ([("a", [RATE], "ok")] * 15 + [("a", [NET], "ok")] * 5, "Rate limits are 75% of failures"),
        ([("hot", [NET, NET], "ok")] * 12 + [("cold", [NET], "ok")] * 3, "hot accounts for 24 of 27 retries"),
        ([("a", [NET], "gave_up", StopReason.DEADLINE)] * 25, "25 of 25 give-ups hit the deadline"),
        ([("a", [NET, NET, NET, NET], "gave_up")] * 10, "Only 0% of retries succeeded"),
    ],
    ids=[
        "data-retried",
        "late-retries-futile",
        "rate-limits-dominate",
        "retry-loop",
        "deadline",
        "not-transient",
    ],
)
def test_suggestions(rec: StatsRecorder, history: list[tuple[Any, ...]], expected: str) -> None:
    """Each pattern in the figures yields its plain-language suggestion."""
    for entry in history:
        call(rec, *entry)
    tips = analyze(recorder=rec).suggestions
    assert any(expected in tip for tip in tips), tips


def test_no_suggestions_for_a_healthy_history(rec: StatsRecorder) -> None:
    """A few retries that work give no suggestions."""
    for _ in range(5):
        call(rec, "a", [NET], "ok")
    assert [] == analyze(recorder=rec).suggestions


def test_real_calls_are_counted() -> None:
    """Decorated calls feed the process's statistics through the event stream."""
    flaky = iter([ConnectionResetError(), ConnectionResetError()])

    @retrykit.retry(operation="fetch")
    def fetch() -> str:
        err = next(flaky, None)
        if err is not None:
            raise err
        return "ok"

    with no_wait():
        fetch()
    a = retrykit.stats.analyze("fetch")
    assert (2, 2, 1, 0.5) == (a.total_errors, a.retries, a.late_successes, a.retry_success_rate)


def test_memory_is_bounded_in_time_and_names() -> None:
    """Old buckets expire and operation names beyond the cap count as <other>."""
    clock = Clock()
    store = MemoryStore(bucket_seconds=60, retention_hours=1, max_operations=3, clock=clock)
    for minute in range(3 * 60):
        clock.now = T0 + minute * 60
        for op in ("a", "b", "c", f"dynamic-{minute}"):
            store.add(op, {"failed:network_error": 1})
    assert store.size() <= 61 * 4
    ops = store.read(None, T0, clock.now)
    assert {"a", "b", "c", "<other>"} == set(ops)


def test_counts_are_exact_under_threads() -> None:
    """Eight threads adding at once lose nothing."""
    store = MemoryStore(clock=Clock())

    def work() -> None:
        for _ in range(5000):
            store.add("op", {"failed:network_error": 1, "first_failed": 1})

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 40_000 == store.read("op", T0, T0)["op"]["failed:network_error"]


@pytest.mark.parametrize("delay", [0.0, 0.25], ids=["no wait", "a wait"])
def test_retries_counted_from_threads_at_once_are_all_counted(delay: float) -> None:
    """Retries counted by eight threads at once, while a ninth reads, lose nothing (waits included)."""
    rec = StatsRecorder(MemoryStore(clock=Clock()))
    old = use_recorder(rec)
    classification = retrykit.classify(ConnectionError("refused"))
    decision = retrykit.Decision.RETRY_WITH_DELAY
    done = threading.Event()

    def work() -> None:
        for n in range(3000):
            _stats.count_retry("op", 1 + n % 3, "E", classification, decision, delay, 0.0, None, None)

    def read() -> None:
        while not done.is_set():
            rec.local.size()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        reader = threading.Thread(target=read)
        reader.start()
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        reader.join()
    finally:
        sys.setswitchinterval(switch)
        if old is not None:
            use_recorder(old)
    counts = rec.local.read("op", T0, T0)["op"]
    assert 24_000 == counts["retried:network_error"]
    assert round(delay * 1000) * 24_000 == counts["waited_ms:network_error"]


def test_a_queued_event_counts_in_its_own_minute_however_late_it_is_read() -> None:
    """An event still queued when its minute ends is counted in that minute's bucket."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    for minute in range(3):
        store.tally("op", (_stats._SUCCEEDED_TALLY, NET, 2), None, T0 + minute * 60)
    clock.now = T0 + 3600
    assert 3 == len(store.queued)
    assert [1, 1, 1] == [store.read("op", T0 + m * 60, T0 + m * 60)["op"]["succeeded"] for m in range(3)]
    assert not store.queued


def test_the_queue_of_events_is_counted_once_it_is_full() -> None:
    """A store queues at most ``QUEUED_LIMIT`` events before it counts them, with nobody reading."""
    store = MemoryStore(clock=Clock())
    for _ in range(_stats.QUEUED_LIMIT * 3):
        store.tally("op", (_stats._SUCCEEDED_TALLY, NET, 2), None, T0)
        assert len(store.queued) < _stats.QUEUED_LIMIT
    assert _stats.QUEUED_LIMIT * 3 == store.read("op", T0, T0)["op"]["succeeded"]


def test_cleanup_old_errors() -> None:
    """cleanup_old_errors(hours) drops what is older and keeps the rest."""
    clock = Clock()
    use_recorder(StatsRecorder(MemoryStore(clock=clock)))
    call(retrykit.stats.recorder(), "a", [NET], "ok")
    clock.now += 5 * 3600
    call(retrykit.stats.recorder(), "a", [NET], "ok")
    assert 1 == retrykit.stats.cleanup_old_errors(hours=2)
    assert 1 == retrykit.stats.analyze(since=10 * 3600).total_errors
    with pytest.raises(retrykit.ConfigError, match="hours"):
        retrykit.stats.cleanup_old_errors(hours=-1)


def test_thresholds_and_monitor(rec: StatsRecorder) -> None:
    """Crossed thresholds become alerts; monitor() hands them to the callback."""
    for _ in range(30):
        call(rec, "a", [DATA], "gave_up", StopReason.NON_RETRYABLE)
    for _ in range(25):
        call(rec, "a", [NET, NET], "gave_up")
    thresholds = Thresholds(total_errors=50, categories={"data_error": 10}, min_retry_success_rate=0.5)
    alerts = thresholds.check(analyze(recorder=rec))
    assert ["total_errors", "category:data_error", "retry_success_rate"] == [a.kind for a in alerts]
    assert "80 failed attempts in all operations (threshold 50)" == alerts[0].message
    use_recorder(rec)
    seen: list[Any] = []
    assert 3 == len(retrykit.stats.monitor(thresholds, seen.append, since=3600))
    assert 3 == len(seen)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"total_errors": -1}, "total_errors"),
        ({"categories": {"nope": 1}}, "categories"),
        ({"categories": {"data_error": -2}}, "categories['data_error']"),
        ({"min_retry_success_rate": 2}, "min_retry_success_rate"),
    ],
)
def test_bad_thresholds(kwargs: dict[str, Any], argument: str) -> None:
    """Bad thresholds fail at construction, naming the argument."""
    with pytest.raises(retrykit.ConfigError) as info:
        Thresholds(**kwargs)
    assert argument == info.value.argument


# --------------------------------------------------------------------------- Redis


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"rktest-{uuid.uuid4().hex[:8]}"


def test_redis_store_shares_exact_counts(redis_url: str, prefix: str) -> None:
    """Counts sent to the real Redis come back exact, in expiring keys."""
    store = RedisStore(redis_url, prefix=prefix, flush_interval=3600, clock=Clock())
    rec = StatsRecorder(MemoryStore(clock=Clock()), store)
    try:
        for _ in range(7):
            call(rec, "svc.op", [NET, RATE], "ok")
        assert store.flush()
        a = analyze(recorder=rec)
        assert ("redis", 14, 7, 14) == (a.source, a.total_errors, a.late_successes, a.retries)
        key = store.key("svc.op", int(T0 // 60))
        assert 0 < store.client.ttl(key) <= 24 * 3600 + 60
        assert key.startswith(f"{prefix}:{{svc.op}}:")
    finally:
        store.close()
        store.client.delete(*store.client.keys(f"{prefix}:*"))


def _writer(url: str, prefix: str, n: int) -> None:
    store = RedisStore(url, prefix=prefix, flush_interval=0.05)
    rec = StatsRecorder(MemoryStore(), store)
    for i in range(n):
        call(rec, f"op{i % 3}", [NET], "ok")
    store.close()


def test_many_processes_writing_at_once(redis_url: str, prefix: str) -> None:
    """Four processes writing concurrently give exact totals afterwards."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(redis_url, prefix, 1500)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = RedisStore(redis_url, prefix=prefix, flush_interval=3600)
    try:
        now = time.time()
        counts = store.read(None, now - 3600, now)
        total = sum(c["failed:network_error"] for c in counts.values())
        assert 6000 == total
        assert {"op0", "op1", "op2"} == set(counts)
        assert 6000 == sum(c["succeeded"] for c in counts.values())
    finally:
        store.close()
        store.client.delete(*store.client.keys(f"{prefix}:*"))


def test_unreachable_redis_never_breaks_calls(caplog: pytest.LogCaptureFixture) -> None:
    """With Redis down, retried calls work, one warning is logged, analysis falls back to memory."""
    retrykit.configure(stats_redis_url="redis://127.0.0.1:1/10")
    rec = retrykit.stats.recorder()
    assert rec.shared is not None
    calls = 0

    @retrykit.retry(operation="down")
    def fn() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionResetError
        return "ok"

    with caplog.at_level(logging.INFO, logger="retrykit"), no_wait():
        assert "ok" == fn()
        for _ in range(3):
            assert rec.shared.flush() is False
        a = retrykit.stats.analyze("down")
    warnings = [r for r in caplog.records if "cannot reach Redis" in r.getMessage()]
    assert 1 == len(warnings)
    assert ("memory", 2) == (a.source, a.total_errors)


def test_configured_redis_is_used_by_analyze(redis_url: str, prefix: str) -> None:
    """configure(stats_redis_url=...) makes decorated calls count in Redis for analyze()."""
    retrykit.configure(stats_redis_url=redis_url)
    rec = retrykit.stats.recorder()
    assert rec.shared is not None
    rec.shared.prefix = prefix
    try:
        with no_wait():
            retrykit.retry(operation="shared")(Flaky.failing(1))()
        a = retrykit.stats.analyze("shared")
        assert ("redis", 1) == (a.source, a.total_errors)
    finally:
        rec.close()
        rec.shared.client.delete(*rec.shared.client.keys(f"{prefix}:*"))


def test_bad_stats_settings() -> None:
    """A malformed Redis URL or retention is refused naming the key."""
    with pytest.raises(retrykit.ConfigError, match="stats_redis_url"):
        retrykit.configure(stats_redis_url="localhost:6379")
    with pytest.raises(retrykit.ConfigError, match="stats_retention_hours"):
        retrykit.configure(stats_retention_hours=0)


# --------------------------------------------------------------------------- the analysis at its edges


def _analysis_of(
    counts: dict[str, Counter[str]], **overload: dict[str, dict[str, object]]
) -> _analysis.Analysis:
    parts = (overload.get("budgets", {}), overload.get("breakers", {}))
    return from_counts(counts, operation=None, since=0.0, until=60.0, source="memory", overload=parts)


def test_a_timedelta_window_ends_now_and_reaches_back_that_long() -> None:
    """since=timedelta(minutes=5) is the five minutes before the window's end."""
    assert (700.0, 1000.0) == _analysis._window(timedelta(minutes=5), None, lambda: 1000.0)


@pytest.mark.parametrize("since", ["an hour", float("nan"), True])
def test_a_window_start_that_is_no_number_is_refused(since: object) -> None:
    """since must be seconds back, a timestamp or a timedelta: anything else is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="since"):
        _analysis._window(since, None, lambda: 1000.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("permanent", "suggested"),
    [(10, True), (2, False)],
)
def test_permanent_errors_past_a_fifth_of_failures_are_called_bugs(permanent: int, suggested: bool) -> None:
    """A suggestion names permanent errors when they are more than 20 % of at least 20 failures."""
    counts = {"op": Counter({"failed:permanent_error": permanent, "failed:network_error": 30})}
    tips = _analysis_of(counts).suggestions
    assert suggested == any("permanent errors" in tip for tip in tips)


@pytest.mark.parametrize(
    ("a_retries", "b_retries", "named"),
    [(30, 5, "a"), (15, 15, None)],
)
def test_an_operation_is_named_only_when_it_has_most_of_the_retries(
    a_retries: int, b_retries: int, named: str | None
) -> None:
    """With 20+ retries over several operations, the one with more than half of them is pointed at."""
    counts = {
        "a": Counter({"retried:network_error": a_retries}),
        "b": Counter({"retried:network_error": b_retries}),
    }
    tips = [tip for tip in _analysis_of(counts).suggestions if "accounts for" in tip]
    assert ([] if named is None else [named]) == [tip.split()[0] for tip in tips]


@pytest.mark.parametrize(("state", "tips"), [("open", 1), ("closed", 0), ("half_open", 0)])
def test_only_an_open_breaker_makes_a_suggestion(state: str, tips: int) -> None:
    """A breaker in the report yields a suggestion only while it is open."""
    analysis = _analysis_of({}, breakers={"payments": {"state": state, "rejected": 3}})
    assert tips == sum("circuit breaker 'payments'" in tip for tip in analysis.suggestions)


def test_monitor_without_a_callback_logs_each_alert(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """monitor() with no on_alert writes each alert as a warning on the retrykit logger."""
    counts = {"op": Counter({"failed:network_error": 5})}
    monkeypatch.setattr(_analysis, "analyze", lambda name, since: _analysis_of(counts))
    with caplog.at_level(logging.WARNING, logger="retrykit"):
        alerts = _analysis.monitor(Thresholds(total_errors=1))
    assert ["total_errors"] == [alert.kind for alert in alerts]
    assert "retrykit alert: 5 failed attempts in all operations" in caplog.text


@pytest.mark.parametrize(
    ("budget", "shown"),
    [
        ({"shape": "adaptive", "spent": 1, "reject_probability": 0.25}, "refusing 25% now"),
        ({"shape": "ratio", "error": "ConnectionError"}, "(unreadable: ConnectionError)"),
        ({"shape": "quota", "balance": 0.5, "store": "redis"}, "balance 0.5 (exhausted) [redis]"),
    ],
)
def test_the_report_shows_what_each_budget_state_holds(budget: dict[str, object], shown: str) -> None:
    """The human report shows an adaptive budget's refusal rate, an unreadable state, a shared balance."""
    out = io.StringIO()
    render_analysis(_analysis_of({}, budgets={"svc": budget}), out)
    assert shown in out.getvalue()


# --------------------------------------------------------------------------- statistics at their edges


def _gave_up(operation: str = "op") -> retrykit.events.GaveUp:
    return retrykit.events.GaveUp(
        operation,
        1,
        "E",
        retrykit.Classification(retrykit.ErrorCategory.NETWORK_ERROR, "t"),
        retrykit.events.StopReason.NON_RETRYABLE,
        0,
    )


@pytest.mark.parametrize(
    ("settings", "argument"),
    [
        ({"bucket_seconds": 0}, "bucket_seconds"),
        ({"bucket_seconds": 1.5}, "bucket_seconds"),
        ({"retention_hours": 0}, "retention_hours"),
        ({"retention_hours": "1d"}, "retention_hours"),
        ({"max_operations": 0}, "max_operations"),
    ],
)
def test_memory_store_refuses_bad_settings(settings: dict[str, Any], argument: str) -> None:
    """A MemoryStore with a bad setting fails at construction, naming it."""
    with pytest.raises(retrykit.ConfigError, match=argument):
        MemoryStore(**settings)


def test_an_attempt_failed_event_is_not_counted() -> None:
    """AttemptFailed adds nothing: the retry or give-up that follows is what is counted."""
    failed = retrykit.events.AttemptFailed(
        "op", 1, "E", retrykit.Classification(retrykit.ErrorCategory.NETWORK_ERROR, "t"), 0
    )
    assert ("op", {}) == _stats.fields_of(failed)


@pytest.mark.parametrize("what", ["event", "sink failure"])
def test_nothing_is_counted_when_statistics_are_off(what: str) -> None:
    """With stats_enabled off, neither events nor sink failures reach the recorder."""
    retrykit.configure(stats_enabled=False)
    if what == "event":
        _stats.record_event(_gave_up())
    else:
        _stats.record_sink_failure("sink", "ValueError")
    assert 0 == _stats.recorder().local.size()


def test_the_statistics_sink_failing_is_not_counted_by_itself() -> None:
    """When the statistics sink itself fails, it does not try to count its own failure."""
    _stats._count_sink_failure(_stats.record_event, ValueError(), _gave_up())
    assert 0 == _stats.recorder().local.size()


@pytest.mark.parametrize("failures", [1, 3], ids=["one retry", "three retries"])
def test_a_call_is_counted_the_same_whether_or_not_its_events_are_built(failures: int) -> None:
    """A retried call adds the same counts whether its events are built (a sink listens) or not."""
    counts = []
    for listening in (False, True):
        rec = StatsRecorder(MemoryStore(clock=Clock()))
        old = use_recorder(rec)
        unsubscribe = retrykit.events.subscribe(lambda event: None) if listening else None
        try:
            with no_wait():
                fixed = {"network_error": retrykit.Strategy.delay(0.5, max_retries=5)}
                retrykit.retry("default", operation="op", strategies=fixed)(Flaky.failing(failures))()
        finally:
            if unsubscribe is not None:
                unsubscribe()
            if old is not None:
                use_recorder(old)
        counts.append(rec.local.read(None, 0, T0 + 3600))
    assert counts[0] == counts[1]
    assert failures == counts[0]["op"]["retried:network_error"]


class _BrokenQueue(deque[Any]):
    """A queue that takes nothing."""

    def append(self, item: Any) -> None:
        raise RuntimeError("broken")


class _BrokenStore(MemoryStore):
    """A memory store whose counting raises (its queue of events too)."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = _BrokenQueue()

    def add(self, operation: str, fields: dict[str, int], timestamp: float | None = None) -> None:
        raise RuntimeError("broken")

    def tally(self, operation: str, tally: Any, waited: float | None, timestamp: float) -> None:
        raise RuntimeError("broken")


@pytest.mark.parametrize("failures", [1, 2], ids=["one retry", "two retries"])
def test_statistics_that_fail_to_count_a_retry_never_break_the_call(failures: int) -> None:
    """When the statistics fail to count a retry, the call still succeeds and the failure is counted."""
    old = use_recorder(StatsRecorder(_BrokenStore()))
    before = retrykit.stats.sink_failures().get("retrykit._stats.record_event:RuntimeError", 0)
    try:
        with no_wait():
            assert "ok" == retrykit.retry("default", operation="op")(Flaky.failing(failures))()
    finally:
        if old is not None:
            use_recorder(old)
    after = retrykit.stats.sink_failures()["retrykit._stats.record_event:RuntimeError"]
    assert failures + 1 == after - before  # each retry and the recovery
