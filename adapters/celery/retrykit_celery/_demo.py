"""
The Celery part of ``retrykit demo``: tasks on a ``memory://`` broker and an in-process worker.

Retries go through the broker (``self.retry(countdown=...)``; the worker never sleeps), a data
error fails at once, and a retrying helper inside a task makes one attempt per task attempt.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, TextIO

from . import _events
from ._classify import ErrorCategory
from ._errors import DISTRIBUTION, install_hint
from ._events import GaveUp, RetryScheduled
from ._policy import Policy
from ._strategy import Strategy

POLICY = Policy(
    strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(0.2, max_retries=3)},
    max_attempts=4,
    name="demo-celery",
)


def _checkout(folder: Path) -> bool:
    """Whether *folder* is a source checkout of this project (its pyproject.toml names it)."""
    try:
        return f'name = "{DISTRIBUTION}"' in (folder / "pyproject.toml").read_text(errors="replace")
    except OSError:
        return False


def install_hint_here(extra: str) -> str:
    """
    The install command for *extra* that works where the user stands: ``pip install ".[celery]"``
    in a checkout, the checkout's path when retrykit was installed from one elsewhere (an
    editable install), else the package's name on the index.
    """
    here = Path.cwd()
    source = Path(__file__).resolve().parent.parent
    if _checkout(here):
        return f'pip install ".[{extra}]"'
    if _checkout(source):
        return f'pip install "{os.path.relpath(source, here)}[{extra}]"'
    return install_hint(extra)


def run(out: TextIO) -> bool:  # noqa: PLR0915 - a script
    """Run the Celery scenarios; True when each ended as scripted."""
    try:
        import celery
        from celery.contrib.testing.worker import start_worker

        from .adapters import celery as binding
        from .adapters import retry
    except ImportError:
        print(f"\nCelery part skipped: {install_hint_here('celery')}", file=out)
        return True
    app = celery.Celery("retrykit_demo", broker="memory://", backend="cache+memory://")
    app.conf.update(broker_transport_options={"polling_interval": 0.01}, worker_hijack_root_logger=False)
    calls: dict[str, list[float]] = {"sync_inventory": [], "helper": []}

    @binding.task(POLICY, app=app, bind=True, name="demo.sync_inventory")
    def sync_inventory(self: Any) -> str:
        calls["sync_inventory"].append(time.monotonic())
        if self.request.retries < 2:
            raise ConnectionResetError("inventory service reset the connection")
        return "synced"

    @binding.task(POLICY, app=app, name="demo.import_row")
    def import_row(row: str) -> None:
        raise ValueError(f"row {row!r} has no tracking number")

    @retry(POLICY, operation="demo.helper")
    def helper() -> None:
        calls["helper"].append(time.monotonic())
        raise ConnectionResetError("helper down")

    @binding.task(POLICY, app=app, name="demo.nested")
    def nested() -> None:
        helper()

    def show(event: _events.Event) -> None:
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

    print("\nCelery: the same policies on tasks (memory:// broker, a worker in this process)", file=out)
    unsubscribe = _events.subscribe(show)
    trace_log = logging.getLogger("celery.app.trace")
    level = trace_log.level
    trace_log.setLevel(logging.CRITICAL)  # the failures are the point; the demo reports them itself
    try:
        with start_worker(app, perform_ping_check=False, loglevel="error", shutdown_timeout=30):
            results = {}
            for name, task, args in (
                ("sync_inventory", sync_inventory, ()),
                ("import_row", import_row, ("17",)),
                ("nested", nested, ()),
            ):
                print(f"  {name}.delay{args!r}", file=out)
                result = task.apply_async(args=args)
                try:
                    value: Any = result.get(timeout=30, interval=0.02)
                    outcome = f"SUCCESS {value!r}"
                except Exception as exc:
                    outcome = f"FAILURE {type(exc).__name__}"
                results[name] = outcome
                print(f"    => {outcome}", file=out)
    finally:
        trace_log.setLevel(level)
        unsubscribe()
    gaps = [b - a for a, b in zip(calls["sync_inventory"], calls["sync_inventory"][1:], strict=False)]
    print(
        f"  sync_inventory ran {len(calls['sync_inventory'])} times, "
        f"{', '.join(f'{g:.2f}s' for g in gaps)} apart (the broker held the waits)",
        file=out,
    )
    print(
        f"  the retrying helper inside 'nested' ran {len(calls['helper'])} times, "
        f"one per task attempt (not 4 x 4)",
        file=out,
    )
    return (
        results
        == {
            "sync_inventory": "SUCCESS 'synced'",
            "import_row": "FAILURE ValueError",
            "nested": "FAILURE ConnectionResetError",
        }
        and len(calls["helper"]) == 4
    )
