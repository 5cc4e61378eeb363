"""
The Celery binding. This part: periodic tasks for Celery Beat that watch and clean the
error statistics (the seeds' ``monitor_retry_errors`` and ``cleanup_retry_history``).

``celery`` is imported by this module only; ``import retrykit`` never imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from retrykit._analysis import Alert, Thresholds, cleanup_old_errors, monitor
from retrykit._errors import ConfigError

try:
    import celery
    from celery.schedules import schedule
except ImportError:  # pragma: no cover - celery is in the dev extra
    raise ImportError('retrykit.adapters.celery needs Celery: pip install "retrykit[celery]"') from None


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
    Register ``retrykit.monitor_errors`` (every *every* seconds: analyse the last *window*
    seconds and pass each alert to *on_alert*, or log it) and ``retrykit.cleanup_errors`` (every
    *cleanup_every* seconds: drop statistics older than *cleanup_hours*) on *app*, and add both
    to ``app.conf.beat_schedule``. Returns the two tasks.

    With ``stats_redis_url`` configured, the monitor sees every worker's figures.
    """
    if not isinstance(thresholds, Thresholds):
        raise ConfigError("thresholds", thresholds, "must be retrykit.stats.Thresholds", "build one")
    for name, value in (("every", every), ("window", window), ("cleanup_every", cleanup_every)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(name, value, "must be a number of seconds > 0", f"pass e.g. {name}=300")

    @app.task(name="retrykit.monitor_errors", ignore_result=False)
    def monitor_errors() -> list[dict[str, Any]]:
        alerts = monitor(thresholds, on_alert, since=window)
        return [a.__dict__ for a in alerts]

    @app.task(name="retrykit.cleanup_errors")
    def cleanup_errors() -> int:
        return cleanup_old_errors(cleanup_hours)

    beat = dict(app.conf.beat_schedule or {})
    beat["retrykit.monitor_errors"] = {"task": "retrykit.monitor_errors", "schedule": schedule(every)}
    beat["retrykit.cleanup_errors"] = {"task": "retrykit.cleanup_errors", "schedule": schedule(cleanup_every)}
    app.conf.beat_schedule = beat
    return monitor_errors, cleanup_errors


__all__ = ["register_monitoring"]
