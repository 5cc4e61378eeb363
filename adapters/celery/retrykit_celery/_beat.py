"""Beat monitoring: the periodic tasks that analyse the statistics (alerts) and drop old ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import celery
from celery.schedules import schedule

from retrykit import ConfigError
from retrykit.stats import Alert, Thresholds, cleanup_old_errors, monitor


def register_monitoring(
    app: celery.Celery,
    thresholds: Thresholds,
    *,
    on_alert: Callable[[Alert], Any] | None = None,
    every: float = 300.0,
    window: float = 3600.0,
    cleanup_hours: float = 24.0,
    cleanup_every: float = 3600.0,
) -> tuple[Any, Any]:
    """
    Register the Beat tasks for alerts and cleanup on *app*, and add them to its schedule.

    ``retrykit.monitor_errors`` analyses the last *window* seconds every *every* seconds and passes
    each alert to *on_alert* (or logs it); ``retrykit.cleanup_errors`` drops statistics older than
    *cleanup_hours* every *cleanup_every* seconds. With ``stats_redis_url`` configured, the monitor
    sees every worker's figures.

    Args:
        app: The Celery app.
        thresholds: When to alert.
        on_alert: Called with each ``Alert``. Default: log it as a warning.
        every: Seconds between two runs of the monitor.
        window: Seconds of statistics the monitor analyses.
        cleanup_hours: The age beyond which statistics are dropped.
        cleanup_every: Seconds between two cleanups.

    Returns:
        The two tasks, the monitor and the cleanup.

    Raises:
        ConfigError: *thresholds* is not a ``Thresholds``, or a period is not a positive number.
    """
    _check(thresholds, every=every, window=window, cleanup_every=cleanup_every)

    def monitor_errors() -> list[dict[str, Any]]:
        return [alert.__dict__ for alert in monitor(thresholds, on_alert, since=window)]

    def cleanup_errors() -> int:
        return cleanup_old_errors(cleanup_hours)

    monitor_errors.__qualname__, cleanup_errors.__qualname__ = "monitor_errors", "cleanup_errors"
    monitor_task = app.task(name="retrykit.monitor_errors", ignore_result=False)(monitor_errors)
    cleanup_task = app.task(name="retrykit.cleanup_errors")(cleanup_errors)
    beat = dict(app.conf.beat_schedule or {})
    beat["retrykit.monitor_errors"] = {"task": "retrykit.monitor_errors", "schedule": schedule(every)}
    beat["retrykit.cleanup_errors"] = {"task": "retrykit.cleanup_errors", "schedule": schedule(cleanup_every)}
    app.conf.beat_schedule = beat
    return monitor_task, cleanup_task


def _check(thresholds: object, **periods: object) -> None:
    if not isinstance(thresholds, Thresholds):
        raise ConfigError("thresholds", thresholds, "must be retrykit.stats.Thresholds", "build one")
    for name, value in periods.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(name, value, "must be a number of seconds > 0", f"pass e.g. {name}=300")
