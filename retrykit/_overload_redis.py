"""
Budgets and breakers shared by a fleet through Redis.

Each budget and each breaker is one Redis hash, ``<prefix>:{<key>}:budget:<shape>`` or
``<prefix>:{<key>}:breaker`` (the ``{...}`` hash tag keeps a key's state in one Redis Cluster
slot), changed only by server-side Lua scripts that read the time with ``TIME`` (no client clock
skew) and do the whole check-and-charge atomically.

What costs the caller a round trip: a breaker's admission only while it is open past its period
or half-open, and a budget's first retry in a process. What does not: first attempts and
successes are counted locally and sent in numbered batches by a background thread every
``flush_interval`` (each batch applied at most once, so a batch resent after a timeout is never
counted twice; its counts go to the bucket of the oldest, never a later one than they were made
in); the breaker's state comes back with each batch, so a closed or open breaker is read locally;
and retries are charged from an allowance: with each batch the thread leases from Redis about
twice what this process spent since the last one (counted there as retries at once, so the
fleet's bound holds), callers spend it under a lock, and what is left goes back to its bucket
with the next batch. An allowance is spent only within the Redis bucket it was leased in. When
it runs out before the fleet's budget does, the caller wakes the thread and waits at most
``wait`` (5 ms) for a refill; when the last refill found the fleet's budget spent, it is refused
at once. The adaptive shape decides locally on the fleet's counts of the last batch.

When Redis is slow or down the caller never waits more than ``timeout`` (10 ms) once: the store
logs one warning and answers from its local fallback (an in-memory budget and breaker fed with
this process's own traffic all along) until the background thread reaches Redis again. The
fallback is this process's share of the budget: each batch registers its writer in a sorted set
beside the budget (``...:members``), Redis answers how many writers it heard from within
``fleet_ttl``, and a process among N takes 1/N of the floor (ratio) or of the tokens (quota).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from ._budget import SHAPES
from ._errors import redact_url
from ._overload_memory import CLOSED, HALF_OPEN, OPEN, SLOTS, STATE_NAMES, MemoryOverloadStore
from ._redis import connector, errors

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker
    from ._budget import RetryBudget

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
    -- counts made over the last ARGV[17] s go to the bucket of the oldest: never later than made
    local made = math.floor((now - tonumber(ARGV[17])) / tonumber(ARGV[2]))
    if req > 0 then
      redis.call('HINCRBY', key, 'a:' .. made, req)
      redis.call('HINCRBY', key, 'total_requests', req)
    end
    if acc > 0 then redis.call('HINCRBY', key, 'b:' .. made, acc) end
    if refund > 0 then
      local tokens = tonumber(redis.call('HGET', key, 'tokens') or ARGV[5])
      redis.call('HSET', key, 'tokens', math.min(tonumber(ARGV[5]), tokens + refund))
    end
    if tonumber(ARGV[15]) > 0 then redis.call('HINCRBY', key, 'spent', ARGV[15]) end
    if tonumber(ARGV[16]) > 0 then redis.call('HINCRBY', key, 'refused', ARGV[16]) end
    for i = 20, #ARGV, 2 do
      local back = tonumber(ARGV[i + 1])
      if shape == 'quota' then
        local tokens = tonumber(redis.call('HGET', key, 'tokens') or ARGV[5])
        redis.call('HSET', key, 'tokens', math.min(tonumber(ARGV[5]), tokens + back))
      elseif redis.call('HEXISTS', key, 'b:' .. ARGV[i]) == 1 then
        redis.call('HINCRBY', key, 'b:' .. ARGV[i], -back)
      end
    end
    redis.call('HSET', key, 'seq:' .. ARGV[10], seq)
  end
end
local cost = tonumber(ARGV[12])
local lease = ARGV[18] == 'lease'
local granted = 0
local a, b = 0, 0
if shape ~= 'quota' then
  for s = slot - 9, slot do
    a = a + tonumber(redis.call('HGET', key, 'a:' .. s) or '0')
    b = b + tonumber(redis.call('HGET', key, 'b:' .. s) or '0')
  end
  if shape == 'ratio' then b = b + tonumber(redis.call('HGET', key, 'b:' .. (slot - 10)) or '0') end
end
if cost > 0 then
  if shape == 'quota' then
    local tokens = tonumber(redis.call('HGET', key, 'tokens') or ARGV[5])
    granted = cost
    if lease then granted = math.min(cost, math.max(0, tokens)) end
    if granted > 0 and tokens >= granted then
      redis.call('HSET', key, 'tokens', tokens - granted)
    else
      granted = 0
    end
  elseif shape == 'ratio' then
    local left = math.floor(tonumber(ARGV[4]) + tonumber(ARGV[3]) * a - b)
    granted = cost
    if lease then granted = math.min(cost, math.max(0, left)) end
    if granted > 0 and granted <= left then
      redis.call('HINCRBY', key, 'b:' .. slot, granted)
      b = b + granted
    else
      granted = 0
    end
  else
    local p = math.max(0, (a - tonumber(ARGV[6]) * b) / (a + 1))
    if tonumber(ARGV[13]) >= p then
      redis.call('HINCRBY', key, 'a:' .. slot, 1)
      granted = 1
    end
  end
  if not lease then
    if granted > 0 then
      redis.call('HINCRBY', key, 'spent', 1)
    else
      redis.call('HINCRBY', key, 'refused', 1)
    end
  end
end
for s = slot - 14, slot - 11 do redis.call('HDEL', key, 'a:' .. s, 'b:' .. s) end
-- the settings, for readers that have no RetryBudget of their own (retrykit stats --redis)
redis.call('HSET', key, 'cfg:width', ARGV[2], 'cfg:ratio', ARGV[3], 'cfg:reserve', ARGV[4],
  'cfg:capacity', ARGV[5], 'cfg:k', ARGV[6])
redis.call('PEXPIRE', key, ARGV[14])
-- the fleet: the writers heard from within ARGV[19] s (a local fallback's share is 1/fleet)
local members = KEYS[2]
redis.call('ZADD', members, now, ARGV[10])
redis.call('ZREMRANGEBYSCORE', members, '-inf', '(' .. (now - tonumber(ARGV[19])))
redis.call('PEXPIRE', members, ARGV[14])
local fleet = redis.call('ZCARD', members)
local tokens = redis.call('HGET', key, 'tokens') or ARGV[5]
return {granted, slot, tostring(a), tostring(b), tostring(tokens), tostring(now), fleet}
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
redis.call('HSET', key, 'state', state, 'until', string.format('%.3f', untl), 'cfg:width', ARGV[2],
  'cfg:open_for', ARGV[5])
redis.call('PEXPIRE', key, ARGV[11])
local remaining = 0
if state ~= 0 then remaining = math.max(untl - now, 0) end
return {refused, state, string.format('%.3f', remaining)}
"""


class _Batch:
    """Counts waiting to be sent for one key, and the numbered batch in flight (if any)."""

    __slots__ = ("inflight", "inflight_since", "owner", "pending", "seq", "since")

    def __init__(self, owner: Any, size: int = 3) -> None:
        self.owner = owner  # the RetryBudget or CircuitBreaker (its settings go with each batch)
        self.pending = [0] * size
        self.inflight: list[int] | None = None
        self.seq = 0
        self.since = 0.0  # when the first pending count was made (monotonic; 0: none yet)
        self.inflight_since = 0.0


class _Lease:
    """
    One budget's local allowance: retries (ratio) or tokens (quota) the background thread took
    from Redis for this process, spent by callers without a round trip. What is left at the next
    refill goes back to Redis (to the bucket it was taken from) in the next numbered batch.
    """

    __slots__ = ("a", "b", "demand", "exhausted", "give_back", "slot", "units", "until")

    def __init__(self) -> None:
        self.units = 0
        self.slot = -1
        self.until = 0.0
        """When the bucket it was taken in ends (this process's monotonic clock): spent after
        that, a retry would be counted in a bucket older than its own."""
        self.exhausted = False
        """The last refill found the fleet's budget spent: refuse at once, do not wait."""
        self.demand = 0
        """Units callers asked for since the last refill (the next lease's size)."""
        self.give_back: dict[int, int] = {}
        self.a = 0.0  # the fleet's window sums at the last refill (adaptive: requests, accepts)
        self.b = 0.0

    def usable(self, cost: int) -> bool:
        """Whether *cost* units can be spent now (taken in the bucket that is still current)."""
        return self.units >= cost and time.monotonic() < self.until


class RedisOverloadStore:
    """
    Budget and breaker state shared by a fleet through Redis; pass it as ``store=``.

    Give the same store to ``RetryBudget`` and ``CircuitBreaker`` in every process: each key is
    one hash in Redis (``<prefix>:{<key>}:...``, Redis Cluster safe), changed only by scripts that
    use the server's time. Counts are sent in batches by a background thread; retries are charged
    from an allowance leased with each batch, so a caller does not wait for Redis. When Redis is
    slow or down, a caller waits at most *timeout* once, one warning is logged, and the budgets
    and breakers fall back to this process's own state, each process taking its share of the
    fleet's floor.

    Args:
        url: The Redis URL (``redis://host:6379/0``; credentials are never shown).
        prefix: The prefix of every key.
        timeout: The longest a caller waits for Redis, once per outage, in seconds.
        flush_interval: How often counts are sent and allowances refilled, in seconds.
        flush_timeout: The background thread's socket timeout, in seconds.
        client: A ``redis.Redis`` client to use instead of connecting to *url*
            (``decode_responses=True``).
        background: Whether a background thread sends the batches; without one (readers, tests)
            each retry's charge is one round trip.
        wait: The longest a retry waits for a refill when this process's allowance ran out but
            the fleet's budget had some left (then it is refused), in seconds.
        fleet_ttl: How long after its last batch a process still counts in a budget's fleet.
            Default: 2 s, or 20 x *flush_interval*.

    Raises:
        ConfigError: A bad URL, or the redis package missing (the message says what to install).
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
        wait: float = 0.005,
        fleet_ttl: float | None = None,
    ) -> None:
        connect = connector("url", url)
        self.url = url
        self.shown_url: str = redact_url(url)
        self.prefix = prefix
        self.flush_interval = flush_interval
        self.fleet_ttl: float = max(2.0, 20 * flush_interval) if fleet_ttl is None else fleet_ttl
        """A process counts in a budget's fleet until this long after its last batch for it."""

        self.client: Any = client or connect(timeout)  # redis.Redis clients (decode_responses=True)
        self.flush_client: Any = client or connect(flush_timeout)
        self._budget_script = self.client.register_script(_BUDGET)
        self._breaker_script = self.client.register_script(_BREAKER)
        self._errors = errors()
        self.local: MemoryOverloadStore = MemoryOverloadStore()
        """The fallback: this process's own budgets and breakers, fed all along."""
        self.down: bool = False
        self.fallbacks: int = 0
        """Decisions answered locally because Redis was unreachable."""
        self.background = background
        self.wait = wait
        self._stop = threading.Event()
        self._reset_state()
        _live_stores.add(self)

    def _reset_state(self) -> None:
        """Fresh batches, leases, locks, writer id and thread (at construction, in a forked child)."""
        self.writer: str = uuid.uuid4().hex
        self._budgets: dict[str, _Batch] = {}
        self._breakers: dict[str, _Batch] = {}
        self._leases: dict[str, _Lease] = {}
        self._cache: dict[str, tuple[int, float]] = {}  # breaker key -> (state, until on monotonic)
        self._lock = threading.Lock()
        self._refilled = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        if self.background and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="retrykit-overload", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ keys

    def budget_key(self, budget: RetryBudget) -> str:
        """The Redis key of *budget*'s state."""
        return f"{self.prefix}:{{{quote(budget.key, safe='')}}}:budget:{budget.shape}"

    def members_key(self, budget: RetryBudget) -> str:
        """The Redis key of the processes that use *budget* (a sorted set: writer -> last seen)."""
        return self.budget_key(budget) + ":members"

    def breaker_key(self, breaker: CircuitBreaker) -> str:
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

    def _budget_args(
        self,
        budget: RetryBudget,
        batch: list[int],
        seq: int,
        cost: int,
        roll: float,
        mode: str = "one",
        give_back: dict[int, int] | None = None,
        age: float = 0.0,
    ) -> list[Any]:
        ttl = int(budget.window * 3000) + 60_000
        back = [x for pair in (give_back or {}).items() for x in pair]
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
            batch[3] if len(batch) > 3 else 0,
            batch[4] if len(batch) > 4 else 0,
            round(age, 4),
            mode,
            self.fleet_ttl,
            *back,
        ]

    def _budget_batch(self, name: str, budget: RetryBudget) -> _Batch:
        entry = self._budgets.get(name)
        if entry is None:
            entry = self._budgets[name] = _Batch(budget, 5)  # requests, accepts, refund, spent, refused
        return entry

    def _budget_keys(self, budget: RetryBudget) -> list[str]:
        return [self.budget_key(budget), self.members_key(budget)]

    def _saw_fleet(self, budget: RetryBudget, reply: Any) -> None:
        """Redis counted *reply*'s fleet of processes for *budget*: the fallback takes 1/N of it."""
        fleet = max(1, int(reply[6])) if len(reply) > 6 else 1
        state = self.local.budget(budget)
        if state.share != 1.0 / fleet:
            state.set_share(1.0 / fleet)

    def deposit(self, budget: RetryBudget, requests: int, accepts: int, refund: int) -> None:
        """Count locally (fallback) and queue for the next batch: no round trip."""
        self.local.deposit(budget, requests, accepts, refund)
        name = self.budget_key(budget)
        with self._lock:
            entry = self._budget_batch(name, budget)
            if not entry.since:
                entry.since = time.monotonic()
            pending = entry.pending
            pending[0] += requests
            pending[1] += accepts
            pending[2] += refund

    def withdraw(self, budget: RetryBudget, cost: int, roll: float) -> bool:
        """
        Charge a retry: from this process's allowance (no round trip; the background thread
        refills it from Redis), or in Redis directly without a background thread; locally while
        Redis is unreachable.
        """
        if not self.down:
            allowed = self._spend(budget, cost, roll) if self._thread is not None else None
            if allowed is None:  # no background thread, or no allowance taken yet: one round trip
                with self._lock:  # known to this store (``retrykit analyze`` lists it)
                    self._budget_batch(self.budget_key(budget), budget)
                try:
                    args = self._budget_args(budget, [0, 0, 0], 0, cost, roll)
                    reply = self._budget_script(keys=self._budget_keys(budget), args=args)
                except self._errors as err:
                    self._failed(err)
                    self.fallbacks += 1
                    return bool(self.local.withdraw(budget, cost, roll))
                self._saw_fleet(budget, reply)
                allowed = int(reply[0]) > 0
                if self._thread is not None:
                    if not allowed:  # a refill of this process's may just have taken the tokens
                        allowed = bool(self._spend(budget, cost, roll))
                    self._wake.set()  # the first refill, after this retry was charged in Redis
            if allowed:  # the fallback knows what the fleet let this process spend
                self.local.budget(budget).charge(budget.clock(), cost)
            return allowed
        self.fallbacks += 1
        return bool(self.local.withdraw(budget, cost, roll))

    def _spend(self, budget: RetryBudget, cost: int, roll: float) -> bool | None:
        """The decision from this process's allowance; None before its first refill."""
        name = self.budget_key(budget)
        with self._lock:
            entry = self._budget_batch(name, budget)
            lease = self._leases.get(name)
            if lease is None:
                lease = self._leases[name] = _Lease()
            if lease.slot < 0:  # a budget new to this process: refilled after the caller's round trip
                lease.demand += cost
                return None
            if budget.shape == "adaptive":  # decided on the fleet's counts at the last refill
                requests = lease.a + entry.pending[0]
                accepts = lease.b + entry.pending[1]
                allowed = roll >= max(0.0, (requests - budget.k * accepts) / (requests + 1))
                if allowed:
                    entry.pending[0] += 1  # the retry is a request too
                    entry.since = entry.since or time.monotonic()
            else:
                lease.demand += cost
                if not lease.usable(cost) and not lease.exhausted:
                    self._wake.set()  # ran out before the fleet did: refill now, wait a little
                    deadline = time.monotonic() + self.wait
                    while not lease.usable(cost) and not lease.exhausted and not self.down:
                        left = deadline - time.monotonic()
                        if left <= 0 or not self._refilled.wait(left):
                            break
                allowed = lease.usable(cost)
                if allowed:
                    lease.units -= cost
            entry.pending[3 if allowed else 4] += 1
            return bool(allowed)

    def budget_state(self, budget: RetryBudget) -> dict[str, Any]:
        """What Redis holds for *budget* (the local fallback's view while it is unreachable)."""
        try:
            found = self.flush_client.hgetall(self.budget_key(budget))
            seconds, micros = self.flush_client.time()
        except self._errors:
            return {**self.local.budget_state(budget), "store": "memory (Redis unreachable)"}
        now = seconds + micros / 1e6
        width = budget.window / SLOTS
        low = int(now // width) - SLOTS
        a = sum(float(v) for k, v in found.items() if k.startswith("a:") and float(k[2:]) > low)
        low_b = low - 1 if budget.shape == "ratio" else low  # retries: one bucket longer
        b = sum(float(v) for k, v in found.items() if k.startswith("b:") and float(k[2:]) > low_b)
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

    def _breaker_args(self, breaker: CircuitBreaker, op: str, succ: int, fail: int, seq: int) -> list[Any]:
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

    def _remember(self, breaker: CircuitBreaker, reply: Any) -> float:
        state, remaining = int(reply[1]), float(reply[2])
        self._cache[breaker.key] = (state, time.monotonic() + remaining)
        return remaining

    def allow(self, breaker: CircuitBreaker) -> float:
        """
        0.0: go ahead; else seconds left open. A round trip only when open is over or half-open,
        and the first time this process asks about *breaker* (a process that never recorded an
        outcome would otherwise take it for closed).
        """
        if self.down:
            self.fallbacks += 1
            return self.local.allow(breaker)
        cached = self._cache.get(breaker.key)
        if cached is None:  # new to this process: asked now, then refreshed with every batch
            with self._lock:
                if breaker.key not in self._breakers:
                    self._breakers[breaker.key] = _Batch(breaker)
        else:
            state, until = cached
            if state == CLOSED:
                return 0.0
            left = until - time.monotonic()
            if state == OPEN and left > 0:
                return left
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

    def record(self, breaker: CircuitBreaker, successes: int, failures: int) -> None:
        """Count locally (fallback) and queue for the next batch: no round trip."""
        self.local.record(breaker, successes, failures)
        with self._lock:
            entry = self._breakers.get(breaker.key)
            if entry is None:
                entry = self._breakers[breaker.key] = _Batch(breaker)
            entry.pending[0] += successes
            entry.pending[1] += failures

    def peek(self, breaker: CircuitBreaker) -> float:
        """Seconds the breaker stays open, as last seen (no round trip)."""
        if self.down:
            return self.local.peek(breaker)
        state, until = self._cache.get(breaker.key, (CLOSED, 0.0))
        return max(0.0, until - time.monotonic()) if state == OPEN else 0.0

    def breaker_state(self, breaker: CircuitBreaker) -> dict[str, Any]:
        """What Redis holds for *breaker* (the local fallback's view while it is unreachable)."""
        try:
            found = self.flush_client.hgetall(self.breaker_key(breaker))
            seconds, micros = self.flush_client.time()
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

    # ------------------------------------------------------------------ the fleet, for readers

    def fleet(self) -> list[Any]:
        """
        Every budget and breaker any process keeps under this store's prefix, rebuilt from the
        settings their hashes hold (``retrykit stats --redis``: a reader has no objects of its
        own); their ``state()`` reads the fleet's figures. Raises what redis-py raises.
        """
        from ._breaker import CircuitBreaker
        from ._budget import RetryBudget

        found: list[Any] = []
        head = self.prefix + ":{"
        pattern = "".join(f"[{c}]" if c in "*?[]\\" else c for c in self.prefix) + ":{*}:*"
        for name in sorted(set(self.flush_client.scan_iter(match=pattern, count=1000))):
            quoted, _, kind = name[len(head) :].rpartition("}:")
            key = unquote(quoted)
            if kind == "breaker":
                width, open_for = self.flush_client.hmget(name, "cfg:width", "cfg:open_for")
                kept: dict[str, Any] = (
                    {} if width is None else {"window": float(width) * SLOTS, "open_for": float(open_for)}
                )
                found.append(CircuitBreaker(key, store=self, **kept))
            elif kind.startswith("budget:") and kind[7:] in SHAPES:
                fields = ("cfg:width", "cfg:ratio", "cfg:reserve", "cfg:capacity", "cfg:k")
                values = self.flush_client.hmget(name, *fields)
                if None in values:  # written before the settings were kept: the defaults
                    found.append(RetryBudget(key, shape=kind[7:], store=self))
                    continue
                width, ratio, reserve, capacity, k = (float(v) for v in values)
                window = width * SLOTS
                found.append(
                    RetryBudget(
                        key,
                        shape=kind[7:],
                        ratio=ratio,
                        min_per_second=reserve / window,
                        window=window,
                        capacity=max(1, round(capacity)),
                        k=k,
                        store=self,
                    )
                )
        return found

    # ------------------------------------------------------------------ the background batches

    def _take(
        self, table: dict[str, _Batch], every: bool, numbered: bool = False
    ) -> list[tuple[str, _Batch, list[int], int]]:
        out = []
        with self._lock:
            for name, entry in table.items():
                if entry.inflight is None and (numbered or any(entry.pending)):
                    entry.seq += 1
                    entry.inflight, entry.pending = entry.pending, [0] * len(entry.pending)
                    entry.inflight_since, entry.since = entry.since, 0.0
                if entry.inflight is not None or every:  # breakers: also to refresh their state
                    batch = entry.inflight or [0] * len(entry.pending)
                    out.append((name, entry, batch, entry.seq if entry.inflight else 0))
        return out

    def _plan_leases(
        self, budgets: list[tuple[str, _Batch, list[int], int]], leasing: bool
    ) -> list[tuple[_Lease | None, dict[int, int], int]]:
        """Per budget: its lease, the units going back (by bucket), the top-up to ask for."""
        closing = self._stop.is_set()
        wants: list[tuple[_Lease | None, dict[int, int], int]] = []
        with self._lock:
            for name, entry, _, seq in budgets:
                lease = self._leases.get(name) if leasing else None
                if lease is None and leasing:
                    lease = self._leases[name] = _Lease()
                if lease is None:
                    wants.append((None, {}, 0))
                    continue
                if closing and lease.units and lease.slot >= 0:  # the last batch: all of it back
                    lease.give_back[lease.slot] = lease.give_back.get(lease.slot, 0) + lease.units
                    lease.units = 0
                want = 0
                if entry.owner.shape != "adaptive" and not closing:
                    unit = max(entry.owner.costs.values()) if entry.owner.shape == "quota" else 1
                    want = max(0, max(unit, 2 * lease.demand) - lease.units)  # a top-up
                wants.append((lease, dict(lease.give_back) if seq else {}, want))
        return wants

    def _apply_leases(
        self,
        budgets: list[tuple[str, _Batch, list[int], int]],
        wants: list[tuple[_Lease | None, dict[int, int], int]],
        replies: list[Any],
    ) -> None:
        """Take Redis's replies into the leases (under the lock)."""
        for (_, entry, _, _), (lease, back, want), reply in zip(budgets, wants, replies, strict=False):
            if lease is None:
                continue
            for slot, units in back.items():  # sent in a batch Redis applied: returned
                lease.give_back[slot] -= units
                if lease.give_back[slot] <= 0:
                    del lease.give_back[slot]
            granted, slot = int(reply[0]), int(reply[1])
            if lease.units and lease.slot >= 0 and lease.slot != slot:
                # taken in an older bucket: it goes back there with the next batch, so a
                # retry is never counted in a bucket older than the refill before it
                lease.give_back[lease.slot] = lease.give_back.get(lease.slot, 0) + lease.units
                lease.units = 0
            lease.units += granted
            lease.slot = slot
            width = entry.owner.window / SLOTS
            lease.until = time.monotonic() + (slot + 1) * width - float(reply[5])
            lease.exhausted = granted < want  # the fleet had no more: refuse without waiting
            lease.demand = 0
            lease.a, lease.b = float(reply[2]), float(reply[3])

    def flush(self) -> bool:
        """Send the waiting counts (and refresh the breakers' states); False if Redis failed."""
        leasing = self._thread is not None
        budgets = self._take(self._budgets, leasing, leasing)  # leases: a numbered batch each time
        breakers = self._take(self._breakers, True)
        if not budgets and not breakers:
            return True
        wants = self._plan_leases(budgets, leasing)
        try:
            pipe = self.flush_client.pipeline(transaction=False)
            now = time.monotonic()
            for (name, entry, batch, seq), (_, back, want) in zip(budgets, wants, strict=True):
                age = now - entry.inflight_since if entry.inflight_since else 0.0
                args = self._budget_args(entry.owner, batch, seq, want, 1.0, "lease", back, age)
                self._budget_script(keys=[name, name + ":members"], args=args, client=pipe)
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
                entry.inflight, entry.inflight_since = None, 0.0
            self._apply_leases(budgets, wants, replies)
            self._refilled.notify_all()
        for (_, entry, _, _), reply in zip(budgets, replies, strict=False):
            self._saw_fleet(entry.owner, reply)
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
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
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
        """Stop the background thread after a last flush (the allowance left goes back)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if not self.down:
            self.flush()


_live_stores: weakref.WeakSet[RedisOverloadStore] = weakref.WeakSet()


def forget_stores() -> None:
    """Forget the Redis stores made so far (``retrykit.testing.isolated()``): analyses list none."""
    _live_stores.clear()


def _after_fork_in_child() -> None:
    # the parent's thread, batches, leases and locks stay the parent's: the child starts afresh
    # (a lock held by a parent thread at fork() would never be released in the child)
    for store in list(_live_stores):
        store._reset_state()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


__all__ = ["HALF_OPEN", "RedisOverloadStore"]
