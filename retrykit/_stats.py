"""
Error statistics: counts per operation, category and time bucket, from the event stream.

Memory is bounded: counts live in time buckets (60 s by default) kept for a retention period
(24 h), at most ``max_operations`` operation names (the rest count as ``"<other>"``), and a fixed
set of fields per bucket. The Redis store gives every worker one shared view: each process
buffers its counts and a background thread adds them to Redis hashes (``HINCRBY``) that expire on
their own. When Redis is unreachable, retried calls are never slowed or broken: counts stay
buffered (merged, so still bounded), one warning is logged, and reads fall back to this
process's own counts.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any
from urllib.parse import quote, unquote

from . import _config, _events
from ._classify import UNRECOGNISED, ErrorCategory
from ._errors import ConfigError, redact_url
from ._redis import connector, errors

_log = logging.getLogger("retrykit")
OTHER = "<other>"
CLASSIFIER = "<classifier>"
SINKS = "<sinks>"
OVERFLOWED = "overflowed"
"""The field that counts events of names beyond the cap, counted as ``"<other>"``."""
MAX_ATTEMPT_FIELD = 10


_FAILED = {c: f"failed:{c.value}" for c in ErrorCategory}
_RETRIED = {c: f"retried:{c.value}" for c in ErrorCategory}
_WAITED = {c: f"waited_ms:{c.value}" for c in ErrorCategory}
_GAVE_UP = {(c, r): f"gave_up:{c.value}:{r.value}" for c in ErrorCategory for r in _events.StopReason}
_RETRY_FAILED = {
    (c, n): f"retry_failed:{c.value}:{n}" for c in ErrorCategory for n in range(1, MAX_ATTEMPT_FIELD + 1)
}
_RETRY_OK = {
    (c, n): f"retry_ok:{c.value}:{n}" for c in ErrorCategory for n in range(1, MAX_ATTEMPT_FIELD + 1)
}


UNRECOGNISED_TYPES = 100
"""At most this many exception types are counted by name as unrecognised; the rest as ``<other>``."""
_unrecognised_names: set[str] = set()


def _unrecognised(event: Any) -> str | None:
    """The type a failure no rule recognised is counted by (``module.Class``); None if recognised."""
    if event.classification.rule != UNRECOGNISED:
        return None
    error = event.error
    name: str = event.error_type
    if isinstance(error, BaseException):
        cls = type(error)
        module = getattr(cls, "__module__", "")
        name = (
            f"{module}.{cls.__qualname__}"
            if isinstance(module, str) and module != "builtins"
            else cls.__qualname__
        )
    if name not in _unrecognised_names:
        if len(_unrecognised_names) >= UNRECOGNISED_TYPES:
            name = OTHER
        else:
            _unrecognised_names.add(name)
    return name


# A tally is what alone decides which counter fields an event adds 1 to (a small tuple, the same
# for every retry of a kind): the memory store counts tallies, and names their fields on read.
_RETRIED_TALLY, _GAVE_UP_TALLY, _SUCCEEDED_TALLY, _RULE_TALLY, _OVERFLOW_TALLY = range(5)
Tally = tuple[Any, ...]
TallyKey = tuple[int, str, Tally]
"""What the memory store counts: (bucket, operation, tally)."""


def tally_of(event: Any) -> tuple[str, Tally | None, float | None]:
    """
    The operation an event counts for, its tally (None: it adds to no field) and the seconds a
    retry waited. A failed attempt is counted once, from the event that says what became of it
    (``RetryScheduled`` or ``GaveUp``); ``AttemptFailed`` adds nothing (nor is it subscribed).
    """
    kind = type(event)
    tally: Tally
    if kind is _events.RetryScheduled:
        attempt, after = event.attempt, event.after
        tally = (
            _RETRIED_TALLY,
            event.classification.category,
            attempt == 1,
            after,
            0 if after is None else min(attempt, MAX_ATTEMPT_FIELD),
            _unrecognised(event),
        )
        return event.operation, tally, event.delay
    if kind is _events.GaveUp:
        attempts, after = event.attempts, event.after
        if event.rescheduled:  # the failure was counted with its RetryScheduled
            return event.operation, (_GAVE_UP_TALLY, event.classification.category, event.reason), None
        tally = (
            _GAVE_UP_TALLY,
            event.classification.category,
            event.reason,
            attempts == 1,
            after,
            0 if after is None else min(attempts, MAX_ATTEMPT_FIELD),
            _unrecognised(event),
        )
        return event.operation, tally, None
    if kind is _events.Succeeded:
        if event.after is None:
            return event.operation, None, None
        return event.operation, (_SUCCEEDED_TALLY, event.after, min(event.attempts, MAX_ATTEMPT_FIELD)), None
    if kind is _events.RuleFailed:
        return CLASSIFIER, (_RULE_TALLY, event.rule), None
    return getattr(event, "operation", ""), None, None  # AttemptFailed


def _failure_names(
    first: bool, after: ErrorCategory | None, attempt: int, unrecognised: str | None
) -> list[str]:
    names = ["first_failed"] if first else []
    if after is not None:
        names.append(_RETRY_FAILED[after, attempt])
    if unrecognised is not None:
        names.append(f"unrecognised:{unrecognised}")
    return names


def _compute_names(tally: Tally) -> tuple[str, ...]:
    kind = tally[0]
    if kind == _RETRIED_TALLY:
        _, cat, first, after, attempt, unrecognised = tally
        return (_FAILED[cat], _RETRIED[cat], *_failure_names(first, after, attempt, unrecognised))
    if kind == _GAVE_UP_TALLY:
        if len(tally) == 3:
            return (_GAVE_UP[tally[1], tally[2]],)
        _, cat, reason, first, after, attempt, unrecognised = tally
        return (_GAVE_UP[cat, reason], _FAILED[cat], *_failure_names(first, after, attempt, unrecognised))
    if kind == _SUCCEEDED_TALLY:
        return ("succeeded", _RETRY_OK[tally[1], tally[2]])
    if kind == _RULE_TALLY:
        return (f"rule_failed:{tally[1]}",)
    return (OVERFLOWED,)


_NAMES: dict[Tally, tuple[str, ...]] = {}


def field_names(tally: Tally) -> tuple[str, ...]:
    """The counter fields a tally adds to (computed once per tally)."""
    names = _NAMES.get(tally)
    if names is None:
        if len(_NAMES) >= 4096:
            _NAMES.clear()
        names = _NAMES[tally] = _compute_names(tally)
    return names


def fields_of(event: _events.Event) -> tuple[str, dict[str, int]]:
    """The operation an event counts for, and the counter fields it adds to (see ``tally_of``)."""
    operation, tally, waited = tally_of(event)
    if tally is None:
        return operation, {}
    fields = dict.fromkeys(field_names(tally), 1)
    if waited is not None:
        fields[_WAITED[tally[1]]] = round(waited * 1000)
    return operation, fields


_RAW_LIMIT = 10_000
"""Tallies a memory store holds before it names their fields (a read names them too)."""
QUEUED_LIMIT = 256
"""Events a memory store queues before it counts them (a read counts them too)."""


class MemoryStore:
    """
    Counts in this process, thread-safe and bounded: the statistics' local store.

    Args:
        bucket_seconds: The width of a bucket.
        retention_hours: How long buckets are kept.
        max_operations: Operation names counted; others go under ``<other>`` (and
            ``overflowed``).
        clock: A wall clock in seconds, for tests.

    Raises:
        ConfigError: A value out of range.
    """

    def __init__(
        self,
        *,
        bucket_seconds: int = 60,
        retention_hours: float = 24,
        max_operations: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(bucket_seconds, int) or isinstance(bucket_seconds, bool) or bucket_seconds < 1:
            raise ConfigError("bucket_seconds", bucket_seconds, "must be a whole number >= 1", "use 60")
        if not isinstance(retention_hours, (int, float)) or not retention_hours > 0:
            raise ConfigError("retention_hours", retention_hours, "must be > 0", "use 24")
        if not isinstance(max_operations, int) or max_operations < 1:
            raise ConfigError("max_operations", max_operations, "must be a whole number >= 1", "use 1000")
        self.bucket_seconds = bucket_seconds
        self.retention: float = retention_seconds(retention_hours)
        self.max_operations = max_operations
        self.clock = clock
        self.overflowed: int = 0
        """Counts of names beyond *max_operations*, counted as ``"<other>"``."""
        self._counts: dict[tuple[int, str], Counter[str]] = {}
        self._tallies: dict[TallyKey, list[int]] = {}
        """Tallies counted since their fields were last named: (bucket, operation, tally) -> [n, ms
        waited]."""
        self._operations: set[str] = set()
        self._lock = threading.Lock()
        self._newest = 0
        self.queued: deque[tuple[TallyKey, float]] = deque()
        """Events not counted yet: their key and the seconds they waited (see ``tally``)."""

    def bucket(self, timestamp: float) -> int:
        """The bucket number of a wall-clock *timestamp*."""
        return int(timestamp // self.bucket_seconds)

    def operation_key(self, operation: str) -> str:
        """*operation*, or ``"<other>"`` once ``max_operations`` names are known."""
        if operation in self._operations or operation in _UNCAPPED:
            return operation
        if len(self._operations) >= self.max_operations:
            return OTHER
        self._operations.add(operation)
        return operation

    def add(self, operation: str, fields: dict[str, int], timestamp: float | None = None) -> None:
        """Add *fields* to *operation*'s counts in the bucket of *timestamp* (now)."""
        bucket = self.bucket(self.clock() if timestamp is None else timestamp)
        with self._lock:
            key = (bucket, self.operation_key(operation))
            if key[1] == OTHER and operation != OTHER:
                self.overflowed += 1
                fields = {**fields, OVERFLOWED: 1}
            counter = self._counts.get(key)
            if counter is None:
                counter = self._counts[key] = Counter()
            for name, value in fields.items():
                counter[name] = counter.get(name, 0) + value
            if bucket > self._newest:
                self._newest = bucket
                self._expire(bucket)

    def tally(self, operation: str, tally: Tally, waited: float | None, timestamp: float) -> None:
        """
        Count one event of *tally* (and the *waited* seconds, counted in whole ms) for *operation*,
        in *timestamp*'s bucket. It is queued without the lock (``deque.append`` is atomic) and
        counted in a batch under it, once ``QUEUED_LIMIT`` events are queued or when anything
        reads the store. The statistics' direct entries (every retry) queue alike, inline.
        """
        queued = self.queued
        queued.append(((int(timestamp // self.bucket_seconds), operation, tally), waited or 0.0))
        if len(queued) >= QUEUED_LIMIT:
            self.count_queued()

    def count_queued(self) -> None:
        """Count the queued events (see ``tally``)."""
        with self._lock:
            self._count_queued()

    def _count_queued(self) -> None:
        """``count_queued`` with the lock held: the events queued now, each (key, wait) handled once."""
        queued = self.queued
        # popleft, as many as are queued now (events queued meanwhile wait for the next batch),
        # counted by Counter in C: a batch holds few distinct keys and waits
        for (key, waited), n in Counter(islice(iter(queued.popleft, None), len(queued))).items():
            self._add(key, n, round(waited * 1000) * n)  # (each event's wait in whole ms)

    def _add(self, key: TallyKey, n: int, waited: int) -> None:
        entry = self._tallies.get(key)
        if entry is None:
            self._first_tally(key, n, waited)
        else:
            entry[0] += n
            entry[1] += waited

    def _first_tally(self, key: TallyKey, n: int, waited: int) -> None:
        """``_add`` for a key not counted yet in its bucket (the operation may be capped)."""
        tallies = self._tallies
        bucket, operation, tally = key
        op = operation if operation in self._operations else self.operation_key(operation)
        if op == OTHER and operation != OTHER:
            self.overflowed += n
            entry = tallies.setdefault((bucket, op, (_OVERFLOW_TALLY,)), [0, 0])
            entry[0] += n
            key = (bucket, op, tally)
        entry = tallies.setdefault(key, [0, 0])
        entry[0] += n
        entry[1] += waited
        if bucket > self._newest:
            self._newest = bucket
            self._expire(bucket)
        elif len(tallies) >= _RAW_LIMIT:
            self._name_tallies()

    def _name_tallies(self) -> None:
        """Add the tallies counted so far to the named counters (the lock is held)."""
        if self.queued:  # (called again from counting a new bucket: it counts what was queued since)
            self._count_queued()
        counts = self._counts
        for (bucket, op, tally), (n, waited) in self._tallies.items():
            counter = counts.get((bucket, op))
            if counter is None:
                counter = counts[bucket, op] = Counter()
            for name in field_names(tally):
                counter[name] = counter.get(name, 0) + n
            if tally[0] == _RETRIED_TALLY:  # a retry's wait, in ms (0 included, as the field exists)
                name = _WAITED[tally[1]]
                counter[name] = counter.get(name, 0) + waited
        self._tallies.clear()

    def _expire(self, newest: int) -> None:
        self._name_tallies()
        oldest = newest - int(self.retention // self.bucket_seconds)
        for key in [k for k in self._counts if k[0] < oldest]:
            del self._counts[key]

    def cleanup(self, hours: float = 24) -> int:
        """Drop counts older than *hours*; returns how many buckets were dropped."""
        cutoff = self.bucket(self.clock() - hours * 3600)
        with self._lock:
            self._name_tallies()
            old = [k for k in self._counts if k[0] < cutoff]
            for key in old:
                del self._counts[key]
            self._operations = {op for _, op in self._counts}
        return len(old)

    def read(self, operation: str | None, since: float, until: float) -> dict[str, Counter[str]]:
        """Summed counts per operation for buckets in [*since*, *until*]."""
        low, high = self.bucket(since), self.bucket(until)
        result: dict[str, Counter[str]] = {}
        with self._lock:
            self._name_tallies()
            for (bucket, op), counter in self._counts.items():
                if low <= bucket <= high and (operation is None or op == operation):
                    result.setdefault(op, Counter()).update(counter)
        return result

    def size(self) -> int:
        """How many (bucket, operation) counters are held."""
        with self._lock:
            self._name_tallies()
            return len(self._counts)


class StatsUnavailable(RuntimeError):
    """
    The shared statistics store could not be read.
    """


CALLER_TIMEOUT = 0.25
"""Seconds a Redis command may take when it runs in a caller's thread (``analyze()``, a read)."""
EXIT_TIMEOUT = 1.0
"""Seconds interpreter exit waits, at most, for the last counts to reach Redis."""
_SAFE = "-._~:/@!$&'*+,;=()[]<>|^"

# One operation's share of a batch, applied at most once: a writer's sequence number per
# operation says which batch was applied last, so a batch retried after a failure whose first
# try did reach Redis (a timeout, a dropped connection) is skipped instead of counted twice. A
# script runs whole: under maxmemory its first write is refused before anything is changed.
_APPLY = """
local seq = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last >= seq then return 0 end
local ttl = ARGV[2]
local i = 4
for k = 2, #KEYS do
  local n = tonumber(ARGV[i])
  i = i + 1
  for j = 1, n do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  redis.call('EXPIRE', KEYS[k], ttl)
end
redis.call('SET', KEYS[1], seq, 'EX', ARGV[3])
return 1
"""


def encode_name(name: str) -> str:
    """*name* as ASCII for a Redis key or field: reversible, distinct, no ``{}`` (lone surrogates too)."""
    return quote(name, safe=_SAFE, errors="surrogatepass")


def decode_name(text: str) -> str:
    """The name :func:`encode_name` encoded."""
    return unquote(text, errors="surrogatepass")


_live_stores: weakref.WeakSet[RedisStore] = weakref.WeakSet()


class RedisStore:
    """
    Counts shared through Redis, so that ``analyze()`` sees every worker.

    ``HINCRBY`` on ``<prefix>:{<operation>}:<bucket>`` hashes that expire after the retention
    period (the hash tag keeps an operation's keys in one Redis Cluster slot; names are
    percent-encoded). Counts are buffered and sent by a background thread in numbered batches,
    each applied exactly once however often it is resent. While Redis is unreachable the buffer
    holds at most *max_operations* names. Usually built for you from ``stats_redis_url``.

    Args:
        url: The Redis URL (credentials are never shown).
        prefix: The prefix of every key.
        bucket_seconds: The width of a bucket.
        retention_hours: How long buckets are kept.
        flush_interval: How often the background thread sends counts, in seconds.
        clock: A wall clock in seconds, for tests.
        client: A ``redis.Redis`` client to use instead of connecting to *url*.
        background: Whether a background thread sends the counts (else ``flush()`` does).
        max_operations: Operation names buffered while Redis is down.
        timeout: The background thread's socket timeout, in seconds.
        caller_timeout: The longest a Redis step from a caller's thread (``analyze()``, a read)
            waits, in seconds.

    Raises:
        ConfigError: A bad URL, or the redis package missing (the message says what to install).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "retrykit",
        bucket_seconds: int = 60,
        retention_hours: float = 24,
        flush_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        client: Any = None,
        background: bool = True,
        max_operations: int = 1000,
        timeout: float = 1.0,
        caller_timeout: float = CALLER_TIMEOUT,
    ) -> None:
        connect = connector("stats_redis_url", url)
        self.url = url
        self.shown_url: str = redact_url(url)
        self.prefix = prefix
        self.bucket_seconds = bucket_seconds
        self.retention: float = retention_seconds(retention_hours)
        self.flush_interval = flush_interval
        self.clock = clock
        self.max_operations = max_operations
        self.caller_timeout = caller_timeout

        # redis.Redis clients with decode_responses=True (redis-py types replies as bytes | str)
        self.client: Any = client or connect(timeout)
        self.caller_client: Any = client or connect(caller_timeout)
        self._apply = self.client.register_script(_APPLY)
        self._errors = errors()
        self.background = background
        self.overflowed: int = 0
        """Counts of names beyond *max_operations* that the buffer counted as ``"<other>"``."""
        self.dropped: int = 0
        """Counts dropped because they could not be encoded or sent (an error other than Redis's)."""
        self._reported: set[str] = set()
        self._stop = threading.Event()
        self._reset_state()
        _live_stores.add(self)

    def _reset_state(self) -> None:
        """Fresh buffers, locks, writer id and thread (at construction, and in a forked child)."""
        self._pending: dict[tuple[int, str], Counter[str]] = {}
        self._inflight: dict[tuple[int, str], Counter[str]] | None = None
        self._names: set[str] = set()
        self._writer = uuid.uuid4().hex
        self._seq = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._failing = False
        self._thread: threading.Thread | None = None
        if self.background and not self._stop.is_set():
            # a reader (the command line) needs no writer thread
            self._thread = threading.Thread(target=self._run, name="retrykit-stats", daemon=True)
            self._thread.start()

    def key(self, operation: str, bucket: int) -> str:
        """The Redis key of *operation*'s counts in *bucket*."""
        return f"{self.prefix}:{{{encode_name(operation)}}}:{bucket}"

    def _seq_key(self, operation: str) -> str:
        return f"{self.prefix}:seq:{{{encode_name(operation)}}}:{self._writer}"

    def add(self, operation: str, fields: dict[str, int], timestamp: float | None = None) -> None:
        """Buffer *fields*; the background thread sends them."""
        bucket = int((self.clock() if timestamp is None else timestamp) // self.bucket_seconds)
        with self._lock:
            slot = (bucket, operation)
            counter = self._pending.get(slot)
            if counter is None:
                if operation not in self._names and operation not in _UNCAPPED:
                    if len(self._names) >= self.max_operations:
                        self.overflowed += 1
                        slot = (bucket, OTHER)
                        fields = {**fields, OVERFLOWED: 1}
                    else:
                        self._names.add(operation)
                counter = self._pending.get(slot)
                if counter is None:
                    counter = self._pending[slot] = Counter()
            counter.update(fields)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            self._flush_safely(self.client)
        self._flush_safely(self.caller_client)  # the last counts, within close()'s wait

    def _flush_safely(self, client: Any, timeout: float | None = None) -> bool:
        try:
            return self._flush(client, timeout)
        except Exception as err:  # the thread must outlive any bug: say so once, go on
            self._report_once(err, "statistics flush failed")
            return False

    def _report_once(self, err: BaseException, what: str) -> None:
        kind = type(err).__name__
        if kind not in self._reported:
            self._reported.add(kind)
            _log.error(
                "retrykit: %s (%s); the counts concerned are dropped and counted in "
                "RedisStore.dropped, later counts are sent as usual",
                what,
                kind,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """
        Send buffered counts now; False (counts kept for later) if Redis is unreachable. With a
        *timeout* (a caller's thread), wait at most about that long: a short socket timeout,
        and no wait at all while the background thread sees Redis down.
        """
        if timeout is not None:
            if self._failing and self._thread is not None:
                return False  # the background thread resends them when Redis is back
            return self._flush_safely(self.caller_client, timeout)
        return self._flush_safely(self.client)

    def _flush(self, client: Any, timeout: float | None) -> bool:
        if not self._flush_lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            for _ in range(2):  # a batch left by a failure first, then what came since
                with self._lock:
                    if self._inflight is None:
                        if not self._pending:
                            return True
                        self._inflight, self._pending = self._pending, {}
                        self._seq += 1
                    batch, seq = self._inflight, self._seq
                try:
                    sent = self._send(client, batch, seq)
                except Exception as err:  # not Redis's error: resending cannot help, drop it
                    self.dropped += sum(sum(c.values()) for c in batch.values())
                    self._report_once(err, "statistics could not send a batch")
                    sent = True
                if not sent:
                    return False
                with self._lock:
                    self._inflight = None
                    self._names = {op for _, op in self._pending if op not in _UNCAPPED}
            return True
        finally:
            self._flush_lock.release()

    def _send(self, client: Any, batch: dict[tuple[int, str], Counter[str]], seq: int) -> bool:
        """
        Send *batch* in one pipeline: True once it is sent or dropped (counts that cannot be sent
        anywhere), False while Redis is unreachable (the batch is kept and resent).
        """
        per_op: dict[str, list[tuple[int, Counter[str]]]] = {}
        for (bucket, operation), counter in batch.items():
            per_op.setdefault(operation, []).append((bucket, counter))
        ttl = int(self.retention + self.bucket_seconds)
        try:
            pipe = client.pipeline(transaction=False)
            for operation, slots in per_op.items():
                try:
                    keys, args = self._script_input(operation, slots, seq, ttl)
                except Exception as err:  # an unencodable name: drop its counts, keep the rest
                    self.dropped += sum(sum(c.values()) for _, c in slots)
                    self._report_once(err, f"statistics could not encode an operation's counts ({seq})")
                    continue
                self._apply(keys=keys, args=args, client=pipe)
                pipe.sadd(f"{self.prefix}:operations", encode_name(operation))
            pipe.execute()
        except self._errors as err:
            self._unreachable(err)
            return False
        except Exception as err:
            self.dropped += sum(sum(c.values()) for c in batch.values())
            self._report_once(err, "statistics could not send a batch")
            return True  # dropped: the next batch must not wait behind one that cannot go
        if self._failing:
            self._failing = False
            _log.info("retrykit: statistics reach Redis at %s again", self.shown_url)
        return True

    def _script_input(
        self, operation: str, slots: list[tuple[int, Counter[str]]], seq: int, ttl: int
    ) -> tuple[list[str], list[int | str]]:
        """The keys and arguments of the script adding *operation*'s counts of each bucket in *slots*."""
        keys = [self._seq_key(operation)]
        args: list[int | str] = [seq, ttl, ttl]
        for bucket, counter in slots:
            keys.append(self.key(operation, bucket))
            args.append(len(counter))
            for field, value in counter.items():
                args.extend((encode_name(field), int(value)))
        return keys, args

    def _unreachable(self, err: BaseException) -> None:
        """Redis did not answer: said once, until it answers again (counts are kept meanwhile)."""
        if not self._failing:
            self._failing = True
            _log.warning(
                "retrykit: statistics cannot reach Redis at %s (%s); counts are kept "
                "in this process and sent when it is back",
                self.shown_url,
                redact_url(type(err).__name__ + ": " + str(err)),
            )

    def buffered(self) -> int:
        """How many (bucket, operation) counters wait to be sent."""
        with self._lock:
            return len(self._pending) + len(self._inflight or ())

    def _unavailable(self, what: str, err: BaseException) -> StatsUnavailable:
        detail = redact_url(f"{type(err).__name__}: {err}")
        return StatsUnavailable(f"cannot {what} Redis at {self.shown_url}: {detail}")

    def operations(self) -> list[str]:
        """Every operation name any worker recorded."""
        try:
            members = self.caller_client.smembers(f"{self.prefix}:operations")
        except self._errors as err:
            raise self._unavailable("read statistics from", err) from None
        return sorted(decode_name(m) for m in members)

    def read(self, operation: str | None, since: float, until: float) -> dict[str, Counter[str]]:
        """Summed counts per operation for buckets in [*since*, *until*], from every worker."""
        if self._failing and self._thread is not None:
            raise StatsUnavailable(
                f"cannot read statistics from Redis at {self.shown_url}: it is unreachable"
            )
        operations = [operation] if operation is not None else self.operations()
        low = int(since // self.bucket_seconds)
        high = int(until // self.bucket_seconds)
        buckets = range(max(low, high - int(self.retention // self.bucket_seconds)), high + 1)
        result: dict[str, Counter[str]] = {}
        try:
            pipe = self.caller_client.pipeline(transaction=False)
            for op in operations:
                for bucket in buckets:
                    pipe.hgetall(self.key(op, bucket))
            replies = iter(pipe.execute())
        except self._errors as err:
            raise self._unavailable("read statistics from", err) from None
        for op in operations:
            total: Counter[str] = Counter()
            for _ in buckets:
                total.update({decode_name(k): int(v) for k, v in next(replies).items()})
            if total:
                result[op] = total
        return result

    def cleanup(self, hours: float = 24) -> int:
        """Delete buckets older than *hours* (they would also expire on their own)."""
        now = self.clock()
        high = int((now - hours * 3600) // self.bucket_seconds) - 1
        low = int((now - self.retention) // self.bucket_seconds) - 1
        keys = [self.key(op, b) for op in self.operations() for b in range(low, high + 1)]
        deleted = 0
        try:
            for start in range(0, len(keys), 500):
                deleted += int(self.caller_client.delete(*keys[start : start + 500]))
        except self._errors as err:
            raise self._unavailable("clean statistics in", err) from None
        return deleted

    def close(self, timeout: float = EXIT_TIMEOUT, *, wait: bool = True) -> None:
        """
        Stop the background thread after a last flush, waiting at most *timeout* seconds for it
        (not at all with ``wait=False``: the thread finishes on its own).
        """
        first = not self._stop.is_set()
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            if first:
                self.flush(timeout=min(timeout, self.caller_timeout))
            return
        if wait and thread is not threading.current_thread():
            thread.join(timeout)


_UNCAPPED = frozenset({CLASSIFIER, SINKS})


def retention_seconds(hours: float) -> float:
    """*hours* in seconds, at most ``_config.MAX_RETENTION_HOURS`` (so every TTL is a sane int)."""
    return min(float(hours), _config.MAX_RETENTION_HOURS) * 3600


def _close_all_at_exit() -> None:
    """Interpreter exit: every store's last flush, together, within ``EXIT_TIMEOUT`` in all."""
    stores = list(_live_stores)
    for store in stores:
        store.close(wait=False)
    deadline = time.monotonic() + EXIT_TIMEOUT
    for store in stores:
        store.close(max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    for store in list(_live_stores):  # the parent sends its own counts; the child starts afresh
        store._reset_state()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class StatsRecorder:
    """
    The statistics sink: every event counted in this process, and in Redis when configured.

    Args:
        local: The in-process store.
        shared: The Redis store, if the counts are shared.
    """

    def __init__(self, local: MemoryStore, shared: RedisStore | None = None) -> None:
        self.local = local
        self.shared = shared

    def __call__(self, event: _events.Event) -> None:
        if self.shared is None:  # counted as a tally, its fields named when read
            operation, tally, waited = tally_of(event)
            if tally is not None:
                self.local.tally(operation, tally, waited, self.local.clock())
            return
        operation, fields = fields_of(event)
        if not fields:
            return
        now = self.local.clock()
        self.local.add(operation, fields, now)
        self.shared.add(operation, fields, now)

    def read(self, operation: str | None, since: float, until: float) -> tuple[dict[str, Counter[str]], str]:
        """Counts and where they came from (``"redis"`` or ``"memory"``)."""
        if self.shared is not None:
            # A caller's thread: each Redis step waits CALLER_TIMEOUT at most, none while the
            # background thread sees Redis down; then this process's own counts answer.
            self.shared.flush(timeout=self.shared.caller_timeout)
            try:
                return self.shared.read(operation, since, until), "redis"
            except StatsUnavailable as err:
                _log.warning("retrykit: %s; analysing this process's own counts instead", err)
        return self.local.read(operation, since, until), "memory"

    def cleanup(self, hours: float = 24) -> int:
        """Drop counts older than *hours* in every store."""
        dropped = self.local.cleanup(hours)
        if self.shared is not None:
            try:
                dropped += self.shared.cleanup(hours)
            except StatsUnavailable as err:
                _log.warning("retrykit: %s", err)
        return dropped

    def close(self, *, wait: bool = True) -> None:
        """Flush and stop the shared store's background thread (waiting ``EXIT_TIMEOUT`` at most)."""
        if self.shared is not None:
            self.shared.close(wait=wait)


_recorder: StatsRecorder | None = None
_recorder_gen = -1
_recorder_lock = threading.Lock()


def recorder() -> StatsRecorder:
    """
    The process's statistics recorder, built from the current settings.

    Returns:
        The recorder (rebuilt when the statistics settings change).
    """
    global _recorder, _recorder_gen
    cfg = _config.settings
    if _recorder is not None and _recorder_gen == cfg.generation:
        return _recorder
    current = _recorder
    if current is not None and (_recorder_gen == cfg.generation or not _stats_changed(current, cfg)):
        _recorder_gen = cfg.generation
        return current
    with _recorder_lock:
        if _recorder is not None and not _stats_changed(_recorder, cfg):
            _recorder_gen = cfg.generation
            return _recorder
        if _recorder is not None:
            _recorder.close(wait=False)  # a retried call is running: its thread sends the rest
        local = MemoryStore(
            bucket_seconds=cfg.stats_bucket_seconds,
            retention_hours=cfg.stats_retention_hours,
            max_operations=cfg.stats_max_operations,
        )
        shared = None
        if cfg.stats_redis_url:
            shared = RedisStore(
                cfg.stats_redis_url,
                bucket_seconds=cfg.stats_bucket_seconds,
                retention_hours=cfg.stats_retention_hours,
                max_operations=cfg.stats_max_operations,
            )
        _recorder = StatsRecorder(local, shared)
        _recorder_gen = cfg.generation
        return _recorder


def _stats_changed(current: StatsRecorder, cfg: _config.Settings) -> bool:
    shared_url = current.shared.url if current.shared is not None else ""
    return (
        shared_url != (cfg.stats_redis_url or "")
        or current.local.bucket_seconds != cfg.stats_bucket_seconds
        or current.local.retention != retention_seconds(cfg.stats_retention_hours)
        or current.local.max_operations != cfg.stats_max_operations
    )


def record_event(event: _events.Event) -> None:
    """The sink subscribed at import: count *event* (never raises into the retried call)."""
    cfg = _config.settings
    if not cfg.stats_enabled:
        return
    current = _recorder
    if current is None or _recorder_gen != cfg.generation:
        current = recorder()
    current(event)


def count_retry(
    operation: str,
    attempt: int,
    error_type: str,
    classification: Any,
    decision: Any,
    delay: float,
    elapsed: float,
    after: ErrorCategory | None,
    error: BaseException | None,
) -> None:
    """``record_event`` for a retry, given its fields (no ``RetryScheduled`` built)."""
    cfg = _config.settings
    if not cfg.stats_enabled:
        return
    current = _recorder
    if current is None or _recorder_gen != cfg.generation:
        current = recorder()
    if current.shared is not None or classification.rule == UNRECOGNISED:
        current(
            _events.RetryScheduled(
                operation, attempt, error_type, classification, decision, delay, elapsed, after, error
            )
        )
        return
    tally = (
        _RETRIED_TALLY,
        classification.category,
        attempt == 1,
        after,
        0 if after is None else min(attempt, MAX_ATTEMPT_FIELD),
        None,
    )
    local = current.local  # (``local.tally``, inline: this runs on every retry)
    queued = local.queued
    queued.append(((int(local.clock() // local.bucket_seconds), operation, tally), delay))
    if len(queued) >= QUEUED_LIMIT:
        local.count_queued()


def record_sink_failure(sink: str, error_type: str) -> None:
    """Count a sink's failure (``<sinks>`` in the statistics, shared through Redis too)."""
    if _config.settings.stats_enabled:
        rec = recorder()
        fields = {f"sink_failed:{sink}:{error_type}": 1}
        now = rec.local.clock()
        rec.local.add(SINKS, fields, now)
        if rec.shared is not None:
            rec.shared.add(SINKS, fields, now)


def use_recorder(new: StatsRecorder) -> StatsRecorder | None:
    """
    Install *new* as the process's statistics recorder (tests, tools).

    Args:
        new: The recorder to use from now on.

    Returns:
        The previous recorder, to put back.
    """
    global _recorder, _recorder_gen
    with _recorder_lock:
        old, _recorder = _recorder, new
        _recorder_gen = _config.settings.generation
    return old


def merge(counters: Iterable[Counter[str]]) -> Counter[str]:
    """The sum of several counters."""
    total: Counter[str] = Counter()
    for counter in counters:
        total.update(counter)
    return total


def _count_sink_failure(sink: _events.Sink, err: BaseException, event: _events.Event) -> None:
    if sink is record_event:
        return  # the statistics are the failing sink: the log layer's count still holds
    record_sink_failure(_events.sink_name(sink), type(err).__name__)


_events.on_sink_failure(_count_sink_failure)


def count_success(operation: str, attempts: int, elapsed: float, after: ErrorCategory | None) -> None:
    """``record_event`` for a success after failures, given its fields (no ``Succeeded`` built)."""
    cfg = _config.settings
    if not cfg.stats_enabled:
        return
    current = _recorder
    if current is None or _recorder_gen != cfg.generation:
        current = recorder()
    if current.shared is not None or after is None:
        current(_events.Succeeded(operation, attempts, elapsed, after))
        return
    local = current.local  # (``local.tally``, inline)
    tally = (_SUCCEEDED_TALLY, after, min(attempts, MAX_ATTEMPT_FIELD))
    queued = local.queued
    queued.append(((int(local.clock() // local.bucket_seconds), operation, tally), 0.0))
    if len(queued) >= QUEUED_LIMIT:
        local.count_queued()


_events.take_directly(record_event, _events.RetryScheduled, count_retry)
_events.take_directly(record_event, _events.Succeeded, count_success)
