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
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from . import _config, _events
from ._classify import ErrorCategory
from ._errors import ConfigError

_log = logging.getLogger("retrykit")
OTHER = "<other>"
CLASSIFIER = "<classifier>"
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


def fields_of(event: _events.Event) -> tuple[str, dict[str, int]]:
    """The operation an event counts for, and the counter fields it adds to."""
    if isinstance(event, _events.AttemptFailed):
        fields = {_FAILED[event.classification.category]: 1}
        if event.attempt == 1:
            fields["first_failed"] = 1
        if event.after is not None:
            fields[_RETRY_FAILED[event.after, min(event.attempt, MAX_ATTEMPT_FIELD)]] = 1
        return event.operation, fields
    if isinstance(event, _events.RetryScheduled):
        cat = event.classification.category
        return event.operation, {_RETRIED[cat]: 1, _WAITED[cat]: round(event.delay * 1000)}
    if isinstance(event, _events.GaveUp):
        return event.operation, {_GAVE_UP[event.classification.category, event.reason]: 1}
    if isinstance(event, _events.Succeeded):
        if event.after is None:
            return event.operation, {}
        return event.operation, {
            "succeeded": 1,
            _RETRY_OK[event.after, min(event.attempts, MAX_ATTEMPT_FIELD)]: 1,
        }
    return CLASSIFIER, {f"rule_failed:{event.rule}": 1}  # RuleFailed


class MemoryStore:
    """Counts in this process: ``{(bucket, operation): Counter}``, thread-safe, bounded."""

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
        self.retention = float(retention_hours) * 3600
        self.max_operations = max_operations
        self.clock = clock
        self._counts: dict[tuple[int, str], Counter[str]] = {}
        self._operations: set[str] = set()
        self._lock = threading.Lock()
        self._newest = 0

    def bucket(self, timestamp: float) -> int:
        """The bucket number of a wall-clock *timestamp*."""
        return int(timestamp // self.bucket_seconds)

    def operation_key(self, operation: str) -> str:
        """*operation*, or ``"<other>"`` once ``max_operations`` names are known."""
        if operation in self._operations:
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
            counter = self._counts.get(key)
            if counter is None:
                counter = self._counts[key] = Counter()
            for name, value in fields.items():
                counter[name] = counter.get(name, 0) + value
            if bucket > self._newest:
                self._newest = bucket
                self._expire(bucket)

    def _expire(self, newest: int) -> None:
        oldest = newest - int(self.retention // self.bucket_seconds)
        for key in [k for k in self._counts if k[0] < oldest]:
            del self._counts[key]

    def cleanup(self, hours: float = 24) -> int:
        """Drop counts older than *hours*; returns how many buckets were dropped."""
        cutoff = self.bucket(self.clock() - hours * 3600)
        with self._lock:
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
            for (bucket, op), counter in self._counts.items():
                if low <= bucket <= high and (operation is None or op == operation):
                    result.setdefault(op, Counter()).update(counter)
        return result

    def size(self) -> int:
        """How many (bucket, operation) counters are held."""
        with self._lock:
            return len(self._counts)


class StatsUnavailable(RuntimeError):
    """The shared statistics store could not be read."""


class RedisStore:
    """
    Counts shared through Redis: ``HINCRBY`` on ``<prefix>:{<operation>}:<bucket>`` hashes that
    expire after the retention period. The ``{...}`` hash tag keeps an operation's keys in one
    Redis Cluster slot.
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
    ) -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - redis is in the dev extra
            raise ConfigError(
                "stats_redis_url", url, "needs the redis package", 'pip install "retrykit[redis]"'
            ) from None
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("url", url, "must be a Redis URL", "use e.g. redis://127.0.0.1:6379/0")
        self.url = url
        self.prefix = prefix
        self.bucket_seconds = bucket_seconds
        self.retention = float(retention_hours) * 3600
        self.flush_interval = flush_interval
        self.clock = clock
        self.client = client or redis.Redis.from_url(
            url, socket_connect_timeout=0.5, socket_timeout=2.0, decode_responses=True
        )
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._pending: dict[tuple[int, str], Counter[str]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._failing = False
        self._stop = threading.Event()
        if background:  # a reader (the command line) needs no writer thread
            threading.Thread(target=self._run, name="retrykit-stats", daemon=True).start()
            atexit.register(self.close)

    def key(self, operation: str, bucket: int) -> str:
        """The Redis key of *operation*'s counts in *bucket*."""
        safe = operation.replace("{", "(").replace("}", ")")
        return f"{self.prefix}:{{{safe}}}:{bucket}"

    def add(self, operation: str, fields: dict[str, int], timestamp: float | None = None) -> None:
        """Buffer *fields*; the background thread sends them."""
        bucket = int((self.clock() if timestamp is None else timestamp) // self.bucket_seconds)
        with self._lock:
            counter = self._pending.get((bucket, operation))
            if counter is None:
                counter = self._pending[(bucket, operation)] = Counter()
            counter.update(fields)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()

    def flush(self) -> bool:
        """Send buffered counts now; False (counts kept for later) if Redis is unreachable."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return True
            ttl = int(self.retention + self.bucket_seconds)
            try:
                pipe = self.client.pipeline(transaction=False)
                for (bucket, operation), counter in pending.items():
                    key = self.key(operation, bucket)
                    for field, value in counter.items():
                        pipe.hincrby(key, field, value)
                    pipe.expire(key, ttl)
                    pipe.sadd(f"{self.prefix}:operations", operation)
                pipe.execute()
            except self._errors as err:
                with self._lock:
                    for slot, counter in pending.items():
                        self._pending.setdefault(slot, Counter()).update(counter)
                if not self._failing:
                    self._failing = True
                    _log.warning(
                        "retrykit: statistics cannot reach Redis at %s (%s); counts are kept "
                        "in this process and sent when it is back",
                        self.url,
                        err,
                    )
                return False
            if self._failing:
                self._failing = False
                _log.info("retrykit: statistics reach Redis at %s again", self.url)
            return True

    def operations(self) -> list[str]:
        """Every operation name any worker recorded."""
        try:
            return sorted(self.client.smembers(f"{self.prefix}:operations"))
        except self._errors as err:
            raise StatsUnavailable(f"cannot read statistics from Redis at {self.url}: {err}") from None

    def read(self, operation: str | None, since: float, until: float) -> dict[str, Counter[str]]:
        """Summed counts per operation for buckets in [*since*, *until*], from every worker."""
        operations = [operation] if operation is not None else self.operations()
        low = int(since // self.bucket_seconds)
        high = int(until // self.bucket_seconds)
        buckets = range(max(low, high - int(self.retention // self.bucket_seconds)), high + 1)
        result: dict[str, Counter[str]] = {}
        try:
            pipe = self.client.pipeline(transaction=False)
            for op in operations:
                for bucket in buckets:
                    pipe.hgetall(self.key(op, bucket))
            replies = iter(pipe.execute())
        except self._errors as err:
            raise StatsUnavailable(f"cannot read statistics from Redis at {self.url}: {err}") from None
        for op in operations:
            total: Counter[str] = Counter()
            for _ in buckets:
                total.update({k: int(v) for k, v in next(replies).items()})
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
                deleted += int(self.client.delete(*keys[start : start + 500]))
        except self._errors as err:
            raise StatsUnavailable(f"cannot clean statistics in Redis at {self.url}: {err}") from None
        return deleted

    def close(self) -> None:
        """Stop the background thread after a last flush."""
        if not self._stop.is_set():
            self._stop.set()
            self.flush()


class StatsRecorder:
    """The statistics sink: every event counted in this process, and in Redis when configured."""

    def __init__(self, local: MemoryStore, shared: RedisStore | None = None) -> None:
        self.local = local
        self.shared = shared

    def __call__(self, event: _events.Event) -> None:
        operation, fields = fields_of(event)
        if not fields:
            return
        now = self.local.clock()
        self.local.add(operation, fields, now)
        if self.shared is not None:
            self.shared.add(operation, fields, now)

    def read(self, operation: str | None, since: float, until: float) -> tuple[dict[str, Counter[str]], str]:
        """Counts and where they came from (``"redis"`` or ``"memory"``)."""
        if self.shared is not None:
            self.shared.flush()
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

    def close(self) -> None:
        """Flush and stop the shared store's background thread."""
        if self.shared is not None:
            self.shared.close()


_recorder: StatsRecorder | None = None
_recorder_gen = -1
_recorder_lock = threading.Lock()


def recorder() -> StatsRecorder:
    """The process's recorder, built from the current settings (rebuilt when they change)."""
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
            _recorder.close()
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
            )
        _recorder = StatsRecorder(local, shared)
        _recorder_gen = cfg.generation
        return _recorder


def _stats_changed(current: StatsRecorder, cfg: Any) -> bool:
    shared_url = current.shared.url if current.shared is not None else ""
    return (
        shared_url != (cfg.stats_redis_url or "")
        or current.local.bucket_seconds != cfg.stats_bucket_seconds
        or current.local.retention != cfg.stats_retention_hours * 3600
        or current.local.max_operations != cfg.stats_max_operations
    )


def record_event(event: _events.Event) -> None:
    """The sink subscribed at import: count *event* (never raises into the retried call)."""
    if _config.settings.stats_enabled:
        recorder()(event)


def use_recorder(new: StatsRecorder) -> StatsRecorder | None:
    """Install *new* as the process's recorder (tests, tools); returns the previous one."""
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
