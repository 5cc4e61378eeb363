"""
Budgets and breakers shared by a fleet through Redis.

Each budget and each breaker is one Redis hash, ``<prefix>:{<key>}:budget:<shape>`` or
``<prefix>:{<key>}:breaker`` (the ``{...}`` hash tag keeps a key's state in one Redis Cluster
slot), changed only by server-side Lua scripts that read the time with ``TIME`` (no client clock
skew) and do the whole check-and-charge atomically.

What costs a round trip: a retry's withdrawal (one ``EVALSHA``), and a breaker's admission only
while it is open past its period or half-open. What does not: first attempts and successes are
counted locally and sent in numbered batches by a background thread every ``flush_interval``
(each batch applied at most once, so a batch resent after a timeout is never counted twice),
and the breaker's state comes back with each batch, so a closed or open breaker is read locally.

When Redis is slow or down the caller never waits more than ``timeout`` (10 ms) once: the store
logs one warning and answers from its local fallback (an in-memory budget and breaker fed with
this process's own traffic all along) until the background thread reaches Redis again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote

from ._breaker import CLOSED, HALF_OPEN, OPEN, STATE_NAMES
from ._budget import SLOTS, MemoryOverloadStore
from ._errors import ConfigError, redact_url

_log = logging.getLogger("retrykit")

_BUDGET = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local shape = ARGV[1]
local slot = math.floor(now / tonumber(ARGV[2]))
local seq = tonumber(ARGV[11])
if seq > 0 then
  local last = tonumber(redis.call('HGET', key, 'seq:' .. ARGV[10]) or '0')
  if seq > last then
    local req, acc, refund = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
    if req > 0 then
      redis.call('HINCRBY', key, 'a:' .. slot, req)
      redis.call('HINCRBY', key, 'total_requests', req)
    end
    if acc > 0 then redis.call('HINCRBY', key, 'b:' .. slot, acc) end
    if refund > 0 then
      local tokens = tonumber(redis.call('HGET', key, 'tokens') or ARGV[5])
      redis.call('HSET', key, 'tokens', math.min(tonumber(ARGV[5]), tokens + refund))
    end
    redis.call('HSET', key, 'seq:' .. ARGV[10], seq)
  end
end
local cost = tonumber(ARGV[12])
local allowed = 1
if cost > 0 then
  if shape == 'quota' then
    local tokens = tonumber(redis.call('HGET', key, 'tokens') or ARGV[5])
    if tokens >= cost then redis.call('HSET', key, 'tokens', tokens - cost) else allowed = 0 end
  else
    local a, b = 0, 0
    for s = slot - 9, slot do
      a = a + tonumber(redis.call('HGET', key, 'a:' .. s) or '0')
      b = b + tonumber(redis.call('HGET', key, 'b:' .. s) or '0')
    end
    if shape == 'ratio' then
      if b + 1 <= tonumber(ARGV[4]) + tonumber(ARGV[3]) * a then
        redis.call('HINCRBY', key, 'b:' .. slot, 1)
      else
        allowed = 0
      end
    else
      local p = math.max(0, (a - tonumber(ARGV[6]) * b) / (a + 1))
      if tonumber(ARGV[13]) >= p then redis.call('HINCRBY', key, 'a:' .. slot, 1) else allowed = 0 end
    end
  end
  if allowed == 1 then
    redis.call('HINCRBY', key, 'spent', 1)
  else
    redis.call('HINCRBY', key, 'refused', 1)
  end
end
for s = slot - 13, slot - 10 do redis.call('HDEL', key, 'a:' .. s, 'b:' .. s) end
redis.call('PEXPIRE', key, ARGV[14])
return allowed
"""

_BREAKER = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local slot = math.floor(now / tonumber(ARGV[2]))
local state = tonumber(redis.call('HGET', key, 'state') or '0')
local untl = tonumber(redis.call('HGET', key, 'until') or '0')
local open_for = tonumber(ARGV[5])
local refused = 0
local function clear()
  for s = slot - 9, slot do redis.call('HDEL', key, 's:' .. s, 'f:' .. s) end
end
if ARGV[1] == 'record' then
  local seq = tonumber(ARGV[10])
  local last = tonumber(redis.call('HGET', key, 'seq:' .. ARGV[9]) or '0')
  if seq > last then
    redis.call('HSET', key, 'seq:' .. ARGV[9], seq)
    local succ, fail = tonumber(ARGV[7]), tonumber(ARGV[8])
    if state == 2 then
      if fail > 0 then
        state = 1
        untl = now + open_for
      elseif succ > 0 then
        state = 0
        clear()
      end
    elseif state == 0 then
      if succ > 0 then redis.call('HINCRBY', key, 's:' .. slot, succ) end
      if fail > 0 then
        redis.call('HINCRBY', key, 'f:' .. slot, fail)
        local ok, bad = 0, 0
        for s = slot - 9, slot do
          ok = ok + tonumber(redis.call('HGET', key, 's:' .. s) or '0')
          bad = bad + tonumber(redis.call('HGET', key, 'f:' .. s) or '0')
        end
        if ok + bad >= tonumber(ARGV[3]) and bad / (ok + bad) >= tonumber(ARGV[4]) then
          state = 1
          untl = now + open_for
          clear()
        end
      end
    end
  end
elseif state ~= 0 then
  if now >= untl then
    state = 2
    untl = now + open_for
    redis.call('HSET', key, 'probes_left', ARGV[6])
  end
  local left = tonumber(redis.call('HGET', key, 'probes_left') or '0')
  if state == 2 and left > 0 then
    redis.call('HSET', key, 'probes_left', left - 1)
  else
    redis.call('HINCRBY', key, 'rejected', 1)
    refused = 1
  end
end
for s = slot - 13, slot - 10 do redis.call('HDEL', key, 's:' .. s, 'f:' .. s) end
redis.call('HSET', key, 'state', state, 'until', string.format('%.3f', untl))
redis.call('PEXPIRE', key, ARGV[11])
local remaining = 0
if state ~= 0 then remaining = math.max(untl - now, 0) end
return {refused, state, string.format('%.3f', remaining)}
"""


class _Batch:
    """Counts waiting to be sent for one key, and the numbered batch in flight (if any)."""

    __slots__ = ("inflight", "owner", "pending", "seq")

    def __init__(self, owner: Any) -> None:
        self.owner = owner  # the RetryBudget or CircuitBreaker (its settings go with each batch)
        self.pending = [0, 0, 0]
        self.inflight: list[int] | None = None
        self.seq = 0


class RedisOverloadStore:
    """
    Budget and breaker state shared through Redis at *url* (keys ``<prefix>:{<key>}:...``);
    pass it as ``store=`` to ``RetryBudget`` and ``CircuitBreaker``. *timeout*: the longest a
    caller waits for Redis, once per outage; *flush_interval*: how often counts are sent.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "retrykit-overload",
        timeout: float = 0.01,
        flush_interval: float = 0.1,
        flush_timeout: float = 0.25,
        client: Any = None,
        background: bool = True,
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:  # pragma: no cover - redis is in the dev extra
            raise ConfigError(
                "url", url, "needs the redis package", 'pip install "retrykit[redis]"'
            ) from None
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("url", url, "must be a Redis URL", "use e.g. redis://127.0.0.1:6379/0")
        self.url = url
        self.shown_url = redact_url(url)
        self.prefix = prefix
        self.flush_interval = flush_interval

        def connect(seconds: float) -> Any:
            return redis.Redis.from_url(
                url,
                socket_connect_timeout=seconds,
                socket_timeout=seconds,
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
            )

        self.client = client or connect(timeout)
        self.flush_client = client or connect(flush_timeout)
        self._budget_script = self.client.register_script(_BUDGET)
        self._breaker_script = self.client.register_script(_BREAKER)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.local = MemoryOverloadStore()
        """The fallback: this process's own budgets and breakers, fed all along."""
        self.writer = uuid.uuid4().hex
        self.down = False
        self.fallbacks = 0
        """Decisions answered locally because Redis was unreachable."""
        self._budgets: dict[str, _Batch] = {}
        self._breakers: dict[str, _Batch] = {}
        self._cache: dict[str, tuple[int, float]] = {}  # breaker key -> (state, until on monotonic)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="retrykit-overload", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ keys

    def budget_key(self, budget: Any) -> str:
        """The Redis key of *budget*'s state."""
        return f"{self.prefix}:{{{quote(budget.key, safe='')}}}:budget:{budget.shape}"

    def breaker_key(self, breaker: Any) -> str:
        """The Redis key of *breaker*'s state."""
        return f"{self.prefix}:{{{quote(breaker.key, safe='')}}}:breaker"

    # ------------------------------------------------------------------ failures

    def _failed(self, err: BaseException) -> None:
        with self._lock:
            first = not self.down
            self.down = True
        if first:
            _log.warning(
                "retrykit: overload protection cannot reach Redis at %s (%s); budgets and breakers "
                "use this process's own state until it is back",
                self.shown_url,
                type(err).__name__,
            )

    def _recovered(self) -> None:
        if self.down:
            self.down = False
            _log.info("retrykit: overload protection reaches Redis at %s again", self.shown_url)

    # ------------------------------------------------------------------ budgets

    def _budget_args(self, budget: Any, batch: list[int], seq: int, cost: int, roll: float) -> list[Any]:
        ttl = int(budget.window * 3000) + 60_000
        return [
            budget.shape,
            budget.window / SLOTS,
            budget.ratio,
            budget.reserve(),
            budget.capacity,
            budget.k,
            batch[0],
            batch[1],
            batch[2],
            self.writer,
            seq,
            cost,
            roll,
            ttl,
        ]

    def deposit(self, budget: Any, requests: int, accepts: int, refund: int) -> None:
        """Count locally (fallback) and queue for the next batch: no round trip."""
        self.local.deposit(budget, requests, accepts, refund)
        name = self.budget_key(budget)
        with self._lock:
            entry = self._budgets.get(name)
            if entry is None:
                entry = self._budgets[name] = _Batch(budget)
            pending = entry.pending
            pending[0] += requests
            pending[1] += accepts
            pending[2] += refund

    def withdraw(self, budget: Any, cost: int, roll: float) -> bool:
        """Charge a retry in Redis (one round trip); locally while Redis is unreachable."""
        if not self.down:
            try:
                args = self._budget_args(budget, [0, 0, 0], 0, cost, roll)
                allowed = bool(self._budget_script(keys=[self.budget_key(budget)], args=args))
            except self._errors as err:
                self._failed(err)
            else:
                if allowed:  # the fallback knows what the fleet let this process spend
                    self.local.budget(budget).charge(budget.clock(), cost)
                return allowed
        self.fallbacks += 1
        return self.local.withdraw(budget, cost, roll)

    def budget_state(self, budget: Any) -> dict[str, Any]:
        """What Redis holds for *budget* (the local fallback's view while it is unreachable)."""
        try:
            found = self.client.hgetall(self.budget_key(budget))
            seconds, micros = self.client.time()
        except self._errors:
            return {**self.local.budget_state(budget), "store": "memory (Redis unreachable)"}
        now = seconds + micros / 1e6
        width = budget.window / SLOTS
        low = int(now // width) - SLOTS
        a = sum(float(v) for k, v in found.items() if k.startswith("a:") and float(k[2:]) > low)
        b = sum(float(v) for k, v in found.items() if k.startswith("b:") and float(k[2:]) > low)
        out: dict[str, Any] = {
            "store": "redis",
            "spent": int(found.get("spent", 0)),
            "refused": int(found.get("refused", 0)),
            "total_requests": int(found.get("total_requests", 0)),
        }
        if budget.shape == "ratio":
            out.update(calls=a, retries=b, balance=budget.reserve() + budget.ratio * a - b)
        elif budget.shape == "quota":
            out.update(balance=float(found.get("tokens", budget.capacity)))
        else:
            out.update(requests=a, accepts=b, reject_probability=max(0.0, (a - budget.k * b) / (a + 1)))
        return out

    # ------------------------------------------------------------------ breakers

    def _breaker_args(self, breaker: Any, op: str, succ: int, fail: int, seq: int) -> list[Any]:
        ttl = int(max(breaker.window, breaker.open_for) * 3000) + 60_000
        return [
            op,
            breaker.window / SLOTS,
            breaker.min_throughput,
            breaker.failure_ratio,
            breaker.open_for,
            breaker.probes,
            succ,
            fail,
            self.writer,
            seq,
            ttl,
        ]

    def _remember(self, breaker: Any, reply: Any) -> float:
        state, remaining = int(reply[1]), float(reply[2])
        self._cache[breaker.key] = (state, time.monotonic() + remaining)
        return remaining

    def allow(self, breaker: Any) -> float:
        """0.0: go ahead; else seconds left open. A round trip only when open is over or half-open."""
        if self.down:
            self.fallbacks += 1
            return self.local.allow(breaker)
        state, until = self._cache.get(breaker.key, (CLOSED, 0.0))
        if state == CLOSED:
            return 0.0
        now = time.monotonic()
        if state == OPEN and now < until:
            return until - now
        try:
            reply = self._breaker_script(
                keys=[self.breaker_key(breaker)], args=self._breaker_args(breaker, "allow", 0, 0, 0)
            )
        except self._errors as err:
            self._failed(err)
            self.fallbacks += 1
            return self.local.allow(breaker)
        remaining = self._remember(breaker, reply)
        return max(remaining, 1e-3) if int(reply[0]) else 0.0

    def record(self, breaker: Any, successes: int, failures: int) -> None:
        """Count locally (fallback) and queue for the next batch: no round trip."""
        self.local.record(breaker, successes, failures)
        with self._lock:
            entry = self._breakers.get(breaker.key)
            if entry is None:
                entry = self._breakers[breaker.key] = _Batch(breaker)
            entry.pending[0] += successes
            entry.pending[1] += failures

    def peek(self, breaker: Any) -> float:
        """Seconds the breaker stays open, as last seen (no round trip)."""
        if self.down:
            return self.local.peek(breaker)
        state, until = self._cache.get(breaker.key, (CLOSED, 0.0))
        return max(0.0, until - time.monotonic()) if state == OPEN else 0.0

    def breaker_state(self, breaker: Any) -> dict[str, Any]:
        """What Redis holds for *breaker* (the local fallback's view while it is unreachable)."""
        try:
            found = self.client.hgetall(self.breaker_key(breaker))
            seconds, micros = self.client.time()
        except self._errors:
            return {**self.local.breaker_state(breaker), "store": "memory (Redis unreachable)"}
        now = seconds + micros / 1e6
        state = int(found.get("state", CLOSED))
        low = int(now // (breaker.window / SLOTS)) - SLOTS
        ok = sum(float(v) for k, v in found.items() if k.startswith("s:") and float(k[2:]) > low)
        bad = sum(float(v) for k, v in found.items() if k.startswith("f:") and float(k[2:]) > low)
        return {
            "store": "redis",
            "state": STATE_NAMES[state],
            "remaining": max(0.0, float(found.get("until", 0)) - now) if state != CLOSED else 0.0,
            "successes": ok,
            "failures": bad,
            "rejected": int(found.get("rejected", 0)),
        }

    # ------------------------------------------------------------------ the background batches

    def _take(self, table: dict[str, _Batch], every: bool) -> list[tuple[str, _Batch, list[int], int]]:
        out = []
        with self._lock:
            for name, entry in table.items():
                if entry.inflight is None and any(entry.pending):
                    entry.seq += 1
                    entry.inflight, entry.pending = entry.pending, [0, 0, 0]
                if entry.inflight is not None or every:  # breakers: also to refresh their state
                    out.append((name, entry, entry.inflight or [0, 0, 0], entry.seq if entry.inflight else 0))
        return out

    def flush(self) -> bool:
        """Send the waiting counts (and refresh the breakers' states); False if Redis failed."""
        budgets = self._take(self._budgets, False)
        breakers = self._take(self._breakers, True)
        if not budgets and not breakers:
            return True
        try:
            pipe = self.flush_client.pipeline(transaction=False)
            for name, entry, batch, seq in budgets:
                self._budget_script(
                    keys=[name], args=self._budget_args(entry.owner, batch, seq, 0, 1.0), client=pipe
                )
            for _, entry, batch, seq in breakers:
                breaker = entry.owner
                self._breaker_script(
                    keys=[self.breaker_key(breaker)],
                    args=self._breaker_args(breaker, "record", batch[0], batch[1], seq),
                    client=pipe,
                )
            replies = pipe.execute()
        except self._errors as err:
            self._failed(err)
            return False
        with self._lock:
            for _, entry, _, _ in budgets + breakers:
                entry.inflight = None
        for (_, entry, _, _), reply in zip(breakers, replies[len(budgets) :], strict=False):
            self._remember(entry.owner, reply)
        self._recovered()
        return True

    def _run(self) -> None:
        try:  # connect and load the scripts here, not in a caller's first retry
            self.client.script_load(_BUDGET)
            self.client.script_load(_BREAKER)
        except self._errors as err:
            self._failed(err)
        while not self._stop.wait(self.flush_interval):
            try:
                if self.down:
                    self.flush_client.ping()  # is it back?
                    self._recovered()
                self.flush()
            except self._errors:
                pass
            except Exception as err:  # the thread must outlive any bug: say so, go on
                _log.error("retrykit: overload protection flush failed: %s", type(err).__name__)

    def close(self, timeout: float = 1.0) -> None:
        """Stop the background thread after a last flush."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if not self.down:
            self.flush()


__all__ = ["HALF_OPEN", "RedisOverloadStore"]
