"""
The wire format: the ``retrykit`` message header that carries a call's state between deliveries,
the broker's longest safe countdown, and the hops a longer wait is split into.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, cast

import celery
from celery.app.task import Context

from retrykit import ErrorCategory
from retrykit.queues import LONGEST_DELAY, Delivery, RunState

HEADER = "retrykit"
"""The message header that carries per-category counters between attempts."""
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
"""kombu's Redis default, used when ``broker_transport_options`` does not say."""
RABBITMQ_CONSUMER_TIMEOUT = 1800.0
"""RabbitMQ's default ``consumer_timeout`` (30 min): an ETA message held longer kills the channel."""
SQS_VISIBILITY_TIMEOUT = 1800.0
"""kombu's SQS default ``visibility_timeout`` (30 min)."""
COUNTDOWN_MARGIN = 0.5
"""A single countdown is at most this fraction of the broker's limit; longer waits go in hops."""
DUE_TOLERANCE = 0.5
"""A hop arriving at most this many seconds before the retry is due runs the attempt."""


def max_countdown(app: celery.Celery) -> float | None:
    """
    The longest single countdown that is safe on *app*'s broker.

    Half the Redis/SQS ``visibility_timeout`` (an ETA message held longer is delivered again) or
    of RabbitMQ's ``consumer_timeout``. A longer delay is not shortened: it is waited in hops of
    at most this length, re-published without running the body until due.

    Args:
        app: The Celery app.

    Returns:
        Seconds, or ``None`` for a broker with no such limit (the memory transport).
    """
    conf: Any = app.conf  # Celery's settings, untyped
    options: dict[str, Any] = conf.broker_transport_options or {}
    url = str(conf.broker_url or "")
    if "visibility_timeout" in options:
        return float(options["visibility_timeout"]) * COUNTDOWN_MARGIN
    if url.startswith(("redis", "rediss", "sentinel", "unix")):
        return DEFAULT_VISIBILITY_TIMEOUT * COUNTDOWN_MARGIN
    if url.startswith("sqs"):
        return SQS_VISIBILITY_TIMEOUT * COUNTDOWN_MARGIN
    if url.startswith(("amqp", "pyamqp", "rabbitmq", "amqps")):
        return RABBITMQ_CONSUMER_TIMEOUT * COUNTDOWN_MARGIN
    return None


def _meta(request: Context) -> dict[str, Any]:
    headers: dict[str, Any] = request.headers or {}
    found: object = headers.get(HEADER)
    return dict(cast("dict[str, Any]", found)) if isinstance(found, dict) else {}


def state_of(request: Context) -> RunState:
    """The call's state as the message carries it: attempt number, counters, start, last category."""
    meta = _meta(request)
    last = meta.get("last")
    return RunState(
        request.retries + 1,
        float(meta.get("started", time.time())),
        {ErrorCategory(k): int(v) for k, v in dict(meta.get("counts", {})).items()},
        {ErrorCategory(k): float(v) for k, v in dict(meta.get("previous", {})).items()},
        None if last is None else ErrorCategory(last),
    )


def retry_options(
    request: Context, delivery: Delivery, delay: float, hop: float | None
) -> tuple[float, dict[str, Any]]:
    """The countdown and message options of the retry *delay* seconds from now (*hop*: the longest)."""
    delay = min(delay, LONGEST_DELAY)  # e.g. a breaker's open time: never an eta that overflows
    state = delivery.state()
    meta: dict[str, Any] = {
        "counts": {c.value: n for c, n in state.counts.items()},
        "previous": {c.value: d for c, d in state.previous.items()},
        "started": state.started,
        "last": None if state.last is None else state.last.value,
    }
    countdown = delay
    if hop is not None and delay > hop:
        meta["due"] = time.time() + delay
        countdown = hop
    options: dict[str, Any] = {"headers": {**(request.headers or {}), HEADER: meta}}
    strategy = delivery.strategy
    if strategy is not None and strategy.queue is not None:
        options["queue"] = strategy.queue
    return countdown, options


def due_in(request: Context) -> float | None:
    """Seconds until the retry this hop of a long wait leads to is due; None: due now (run it)."""
    due = _meta(request).get("due")
    if not isinstance(due, (int, float)):
        return None
    left = float(due) - time.time()
    return left if left > DUE_TOLERANCE else None


def expires_at(request: Context) -> float | None:
    """The Unix time the task expires (``expires``), or None."""
    expires = getattr(request, "expires", None)
    if isinstance(expires, str) and expires:
        try:
            expires = datetime.fromisoformat(expires)
        except ValueError:
            return None
    return timestamp(expires) if isinstance(expires, datetime) else None


def timestamp(moment: datetime) -> float:
    """*moment* as a Unix time; a naive datetime is UTC, as Celery writes ``eta`` and ``expires``."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def requested_delay(countdown: float | None, eta: object) -> float | None:
    """The delay a body's ``self.retry(countdown=..., eta=...)`` asks for (None: the policy's)."""
    if countdown is not None:
        return min(max(0.0, float(countdown)), LONGEST_DELAY)
    if isinstance(eta, datetime):
        return min(max(0.0, timestamp(eta) - time.time()), LONGEST_DELAY)
    return None
