"""
The attempt ledger of the Celery binding: each attempt ``(task id, request.retries)`` of a task
runs its body at most once, and an attempt whose worker died is found and counted.

Two Redis keys per attempt, hash-tagged by task id (Redis Cluster):

* ``<prefix>:{id}:<retries>`` -- the attempt's state: ``running`` once a delivery started the
  body, ``done`` once it finished (result stored, retry published, or the loss handled);
* ``<prefix>:{id}:<retries>:lease`` -- present while the body runs: a short expiry that a thread
  of the running process renews. A live lease means "still running somewhere" (a redelivery past
  Redis' visibility timeout, for instance); ``running`` without a lease means "started, and its
  process died".

A delivery claims the attempt with one atomic script (``begin``): ``run`` (first delivery: run
the body), ``done`` (skip it), ``busy`` (running elsewhere: come back later) or ``lost`` (started
and died: the caller counts a failed attempt; the state turns ``done`` in the same step, so exactly
one delivery sees ``lost``). The worker's main process, seeing its child die mid-body, claims the
loss the same way (``claim_lost``). If Redis cannot be reached the ledger lets the attempt run
(nothing is lost) and logs one warning.

The hot path costs one round trip per attempt. Each thread that runs task bodies has a connection
of its own: ``begin`` sends its script and waits for the answer (the body must not start before
it); ``end`` writes its commands on that connection before the attempt's outcome is reported (so
before the message is acknowledged) but does not wait for Redis' reply, which is read before the
thread's next command. Redis runs the commands of one connection in order, so the next ``begin``
of the thread sees the ``end``; an ``end`` whose process dies after writing it still reaches
Redis (the bytes are in the socket); an error reply is logged when it is read.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from typing import Any, NamedTuple, cast

from retrykit import ConfigError
from retrykit.queues import check_redis_url

_log = logging.getLogger("retrykit")

_BEGIN = """
local s = redis.call('GET', KEYS[1])
if not s then
  redis.call('SET', KEYS[1], 'running', 'EX', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[1])
  return 'run'
end
if s == 'running' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 'busy' end
  redis.call('SET', KEYS[1], 'done', 'EX', ARGV[2])
  return 'lost'
end
return 'done'
"""

_CLAIM_LOST = """
local s = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[2])
if s == 'done' then return 0 end
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[1])
return 1
"""

UNREAD_LIMIT = 64
"""Replies a thread leaves unread at most; past it, ``end`` reads them before writing more."""

_RENEW = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[2] then redis.call('PEXPIRE', key, ARGV[1]) end
end
return 0
"""


class AttemptLedger:
    """
    The attempt ledger in Redis: each attempt of a bound task runs its body at most once.

    An attempt is ``(task id, request.retries)``; an attempt whose worker died is counted as lost.
    ``RetrykitTask`` builds one from ``retrykit_guard`` (by default the broker's or the result
    backend's Redis). A delivery claims its attempt with ``begin()``: ``"run"`` (run the body),
    ``"done"`` (already finished: skip it), ``"busy"`` (running elsewhere, its lease still renewed:
    come back later) or ``"lost"`` (started, and its process died: count a failed attempt).

    Args:
        url: The Redis URL.
        prefix: The prefix of the keys ``<prefix>:{<task id>}:<retries>``.
        ttl: Seconds the keys are kept (7 days).
        lease: Seconds a running attempt's lease lasts without renewal.

    Raises:
        ConfigError: Not a Redis URL, or a lease under 0.3 s.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "retrykit:attempt",
        ttl: float = 7 * 86400,
        lease: float = 30.0,
    ) -> None:
        import redis

        check_redis_url("retrykit_guard", url)
        given = cast("object", lease)  # untyped callers can pass anything
        if not isinstance(given, (int, float)) or isinstance(given, bool) or given < 0.3:
            raise ConfigError("retrykit_lease", lease, "must be a number of seconds >= 0.3", "pass e.g. 30")
        self.url = url
        self.prefix = prefix
        self.ttl: int = int(ttl)
        self.lease: float = float(lease)
        self.client: redis.Redis = redis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
            url, socket_connect_timeout=1.0, socket_timeout=2.0, decode_responses=True
        )
        self._errors = (redis.RedisError, OSError)
        self._reply_error = redis.ResponseError
        self._no_script: type[Exception] = importlib.import_module("redis.exceptions").NoScriptError
        self._warned = False
        self._line = threading.local()
        self.failed_at: float = float("-inf")
        """When a call to Redis last failed (``time.monotonic()``)."""
        self._begin = self.client.register_script(_BEGIN)
        self._claim = self.client.register_script(_CLAIM_LOST)
        self._renew = self.client.register_script(_RENEW)
        self._token = ""
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pid = 0
        self._wake = threading.Event()

    # ----------------------------------------------------------------- keys

    def key(self, task_id: str, retries: int) -> str:
        """The Redis key of one attempt's state."""
        return f"{self.prefix}:{{{task_id}}}:{retries}"

    def _keys(self, task_id: str, retries: int) -> list[str]:
        key = self.key(task_id, retries)
        return [key, key + ":lease"]

    # ----------------------------------------------------------------- the thread's connection

    def _connection(self) -> Any:
        """This thread's connection for ``begin`` and ``end`` (a forked child makes its own)."""
        line = self._line
        pid = os.getpid()
        conn = getattr(line, "conn", None)
        if conn is None or line.pid != pid:
            pool = self.client.connection_pool
            conn = line.conn = pool.connection_class(**pool.connection_kwargs)
            line.pid, line.unread = pid, 0
        return conn

    def _read_unread(self, conn: Any) -> None:
        line = self._line
        while line.unread:
            line.unread -= 1
            try:
                conn.read_response()
            except self._reply_error as err:  # the connection is fine; the command failed
                self._warn(err)

    def _drop_connection(self) -> None:
        line = self._line
        conn = getattr(line, "conn", None)
        line.conn, line.unread = None, 0
        if conn is not None and line.pid == os.getpid():
            conn.disconnect()

    def _begin_on(self, conn: Any, keys: list[str]) -> str:
        args = (int(self.lease * 1000), self.ttl, self._token)
        conn.send_command("EVALSHA", self._begin.sha, 2, *keys, *args)
        try:
            return str(conn.read_response())
        except self._no_script:  # a new or flushed script cache: EVAL also caches it
            conn.send_command("EVAL", _BEGIN, 2, *keys, *args)
            return str(conn.read_response())

    # ----------------------------------------------------------------- claims

    def begin(self, task_id: str, retries: int) -> str:
        """``"run"``, ``"done"``, ``"busy"`` or ``"lost"``; a ``"run"`` lease is renewed till ``stop``."""
        self._ensure_renewer()
        keys = self._keys(task_id, retries)
        try:
            conn = self._connection()
            self._read_unread(conn)
            status = self._begin_on(conn, keys)
        except self._errors as err:
            self._drop_connection()
            self._warn(err)
            return "run"
        if status == "run":
            with self._lock:
                self._running[keys[1]] = self._running.get(keys[1], 0) + 1
        return status

    def stop(self, task_id: str, retries: int) -> None:
        """The body returned: stop renewing its lease (it lapses unless ``end`` comes first)."""
        lease = self._keys(task_id, retries)[1]
        with self._lock:
            left = self._running.get(lease, 0) - 1
            if left > 0:
                self._running[lease] = left
            else:
                self._running.pop(lease, None)

    def end(self, task_id: str, retries: int) -> None:
        """Mark the attempt finished: written now, its reply read later (see the module docstring)."""
        self.stop(task_id, retries)
        state, lease = self._keys(task_id, retries)
        try:
            conn = self._connection()
            if self._line.unread >= UNREAD_LIMIT:
                self._read_unread(conn)
            conn.send_packed_command(
                conn.pack_commands([("SET", state, "done", "EX", self.ttl), ("DEL", lease)])
            )
            self._line.unread += 2
        except self._errors as err:
            self._drop_connection()
            self._warn(err)

    def release(self, task_id: str, retries: int) -> None:
        """Forget the attempt (``Reject(requeue=True)``: the requeued delivery runs it afresh)."""
        self.stop(task_id, retries)
        try:
            self.client.delete(*self._keys(task_id, retries))
        except self._errors as err:
            self._warn(err)

    def claim_lost(self, task_id: str, retries: int) -> bool:
        """The attempt's process died: True if the caller handles the loss (nobody finished it)."""
        try:
            return bool(self._claim(keys=self._keys(task_id, retries), args=[self.ttl]))
        except self._errors as err:
            self._warn(err)
            return True

    def lease_left(self, task_id: str, retries: int) -> float:
        """Seconds until the running attempt's lease lapses if not renewed (0 if none)."""
        try:
            left = int(self.client.pttl(self._keys(task_id, retries)[1]))
        except self._errors as err:
            self._warn(err)
            return 0.0
        return max(0.0, left / 1000.0)

    # ----------------------------------------------------------------- the renewer

    def after_fork(self) -> None:
        """In a forked pool child: locks of its own (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def _ensure_renewer(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        with _ledgers_lock:
            if self._pid == pid:
                return
            self._pid = pid  # a forked pool child starts its own thread, and forgets the parent's leases
            self._running = {}
            self._token = f"{os.uname().nodename}:{pid}:{id(self):x}"
            thread = threading.Thread(target=self._renew_forever, name="retrykit-lease", daemon=True)
            thread.start()

    def _renew_forever(self) -> None:
        pid = os.getpid()
        every = self.lease / 3.0
        while self._pid == pid:
            self._wake.wait(every)
            with self._lock:
                keys = list(self._running)
            if not keys:
                continue
            try:
                self._renew(keys=keys, args=[int(self.lease * 1000), self._token])
            except self._errors as err:
                self._warn(err)
            except Exception:  # pragma: no cover - never let the renewer die
                _log.exception("retrykit: renewing attempt leases failed")

    def _warn(self, err: BaseException) -> None:
        self.failed_at = time.monotonic()
        if not self._warned:
            self._warned = True
            _log.warning(
                "retrykit: the attempt ledger cannot reach Redis at %s (%s); attempts run unguarded",
                self.url,
                err,
            )


_ledgers: dict[tuple[str, float], AttemptLedger] = {}
_ledgers_lock = threading.Lock()


def _after_fork() -> None:  # pragma: no cover - runs in pool children
    global _ledgers_lock
    _ledgers_lock = threading.Lock()
    for ledger in _ledgers.values():
        ledger.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class Claim(NamedTuple):
    """One attempt ``(task id, retries)`` of a delivery that claimed it in *ledger*."""

    ledger: AttemptLedger
    task_id: str
    retries: int

    def begin(self) -> str:
        """Claim it: ``"run"``, ``"done"``, ``"busy"`` or ``"lost"`` (``AttemptLedger.begin``)."""
        return self.ledger.begin(self.task_id, self.retries)

    def stop(self) -> None:
        """The body stopped running here (its lease is no longer renewed)."""
        self.ledger.stop(self.task_id, self.retries)

    def end(self) -> None:
        """The attempt is finished: its result stored or its retry published."""
        self.ledger.end(self.task_id, self.retries)

    def release(self) -> None:
        """The attempt goes back to the broker unrun (a requeue): the next delivery runs it."""
        self.ledger.release(self.task_id, self.retries)

    def lease_left(self) -> float:
        """Seconds the running attempt's lease has left."""
        return self.ledger.lease_left(self.task_id, self.retries)


def ledger_for(url: str, lease: float = 30.0) -> AttemptLedger:
    """The process-wide ledger for *url* (one client and one renewer thread per URL and lease)."""
    key = (url, float(lease))
    ledger = _ledgers.get(key)
    if ledger is None:
        with _ledgers_lock:
            ledger = _ledgers.get(key)
            if ledger is None:
                ledger = _ledgers[key] = AttemptLedger(url, lease=lease)
    return ledger


def redis_url_of(value: object) -> str | None:
    """*value* if it is a Redis URL Celery uses (broker or result backend), else None."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None  # pyright: ignore[reportUnknownVariableType]  # Celery's setting
    if not isinstance(value, str):
        return None
    if value.startswith(("redis://", "rediss://", "unix://")):
        return value.split(";")[0]
    return None


AttemptGuard = AttemptLedger
"""
The attempt ledger's class: each attempt of a bound task runs its body at most once.

``AttemptGuard(url, prefix="retrykit:attempt", ttl=604800, lease=30.0)``. ``RetrykitTask``
builds one from ``retrykit_guard`` (by default the broker's or the result backend's Redis);
you need one yourself only to inspect or clear the ledger. A delivery claims its attempt
``(task id, request.retries)`` with ``begin()``: ``"run"`` (run the body), ``"done"``
(already finished: skip it), ``"busy"`` (running elsewhere, its lease still renewed: come back
later) or ``"lost"`` (started, and its process died: count a failed attempt).

Args:
    url: The Redis URL.
    prefix: The prefix of the keys ``<prefix>:{<task id>}:<retries>``.
    ttl: Seconds the keys are kept (7 days).
    lease: Seconds a running attempt's lease lasts without renewal.
"""
