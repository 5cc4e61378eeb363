"""
The Celery part of ``retrykit demo``: tasks on a ``memory://`` broker and an in-process worker.

Retries go through the broker (``self.retry(countdown=...)``; the worker never sleeps), a data
error fails at once, and a retrying helper inside a task makes one attempt per task attempt.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any, TextIO

from retrykit import ErrorCategory, Policy, Strategy, retry
from retrykit.events import Event, GaveUp, RetryScheduled, subscribe

POLICY = Policy(
    strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(0.2, max_retries=3)},
    max_attempts=4,
    name="demo-celery",
)


_EXPECTED = {
    "sync_inventory": "SUCCESS 'synced'",
    "import_row": "FAILURE ValueError",
    "nested": "FAILURE ConnectionResetError",
}


def run(out: TextIO) -> bool:
    """Run the Celery scenarios; True when each ended as scripted."""
    import celery

    app = celery.Celery("retrykit_demo", broker="memory://", backend="cache+memory://")
    app.conf.update(broker_transport_options={"polling_interval": 0.01}, worker_hijack_root_logger=False)
    calls: dict[str, list[float]] = {"sync_inventory": [], "helper": []}
    tasks = _tasks(app, calls)
    print("\nCelery: the same policies on tasks (memory:// broker, a worker in this process)", file=out)
    results = _run_tasks(app, tasks, out)
    times = calls["sync_inventory"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    print(
        f"  sync_inventory ran {len(times)} times, "
        f"{', '.join(f'{g:.2f}s' for g in gaps)} apart (the broker held the waits)",
        file=out,
    )
    print(
        f"  the retrying helper inside 'nested' ran {len(calls['helper'])} times, "
        f"one per task attempt (not 4 x 4)",
        file=out,
    )
    return results == _EXPECTED and len(calls["helper"]) == 4


def _tasks(app: Any, calls: dict[str, list[float]]) -> list[tuple[str, Any, tuple[str, ...]]]:
    """The demo's tasks on *app*, each with its arguments; *calls* records when bodies ran."""
    from ._bind import task

    @task(POLICY, app=app, bind=True, name="demo.sync_inventory")
    def sync_inventory(self: Any) -> str:
        calls["sync_inventory"].append(time.monotonic())
        if self.request.retries < 2:
            raise ConnectionResetError("inventory service reset the connection")
        return "synced"

    @task(POLICY, app=app, name="demo.import_row")
    def import_row(row: str) -> None:
        raise ValueError(f"row {row!r} has no tracking number")

    @retry(POLICY, operation="demo.helper")
    def helper() -> None:
        calls["helper"].append(time.monotonic())
        raise ConnectionResetError("helper down")

    @task(POLICY, app=app, name="demo.nested")
    def nested() -> None:
        helper()

    return [
        ("sync_inventory", sync_inventory, ()),
        ("import_row", import_row, ("17",)),
        ("nested", nested, ()),
    ]


def _run_tasks(app: Any, tasks: list[tuple[str, Any, tuple[str, ...]]], out: TextIO) -> dict[str, str]:
    """Run each task in a worker in this process, printing its retries as they are decided."""
    from celery.contrib.testing.worker import start_worker

    unsubscribe = subscribe(lambda event: _show(event, out))
    trace_log = logging.getLogger("celery.app.trace")
    level = trace_log.level
    trace_log.setLevel(logging.CRITICAL)  # the failures are the point; the demo reports them itself
    results: dict[str, str] = {}
    try:
        with start_worker(app, perform_ping_check=False, loglevel="error", shutdown_timeout=30):
            for name, task, args in tasks:
                print(f"  {name}.delay{args!r}", file=out)
                try:
                    value: Any = task.apply_async(args=args).get(timeout=30, interval=0.02)
                    results[name] = f"SUCCESS {value!r}"
                except Exception as exc:
                    results[name] = f"FAILURE {type(exc).__name__}"
                print(f"    => {results[name]}", file=out)
    finally:
        trace_log.setLevel(level)
        unsubscribe()
    return results


def _show(event: Event, out: TextIO) -> None:
    """A retry or a give-up of a demo task, as it is decided."""
    if isinstance(event, RetryScheduled) and event.operation.startswith("demo."):
        print(
            f"    {event.operation} attempt {event.attempt}: "
            f"{event.classification.category.value} -> self.retry(countdown={event.delay:g})",
            file=out,
        )
    elif isinstance(event, GaveUp) and event.operation.startswith("demo."):
        print(
            f"    {event.operation} attempt {event.attempts}: "
            f"{event.classification.category.value} -> give up ({event.reason.value})",
            file=out,
        )
