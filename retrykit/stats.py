"""
Error statistics and their analysis: ``analyze()``, ``error_statistics()``,
``cleanup_old_errors()``, threshold alerts and ``monitor()``.

Every retrykit event is counted (per operation, category and minute) in this process, and in
Redis too when ``retrykit.configure(stats_redis_url="redis://...")`` is set, so that
``analyze()`` sees the whole fleet.
"""

from __future__ import annotations

from ._analysis import (
    Alert,
    Analysis,
    OperationFigures,
    Thresholds,
    analyze,
    cleanup_old_errors,
    error_statistics,
    monitor,
)
from ._logging import sink_failures
from ._stats import (
    MemoryStore,
    RedisStore,
    StatsRecorder,
    StatsUnavailable,
    recorder,
    use_recorder,
)

__all__ = [
    "Alert",
    "Analysis",
    "MemoryStore",
    "OperationFigures",
    "RedisStore",
    "StatsRecorder",
    "StatsUnavailable",
    "Thresholds",
    "analyze",
    "cleanup_old_errors",
    "error_statistics",
    "monitor",
    "recorder",
    "sink_failures",
    "use_recorder",
]
