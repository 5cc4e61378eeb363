"""
retrykit: classify every failure, retry it in exactly one layer, and say what happened.

Decorate a function or coroutine function with ``@retrykit.retry`` (a preset name such as
``"http"``, or a ``Policy``), or retry a block with ``for attempt in retrykit.attempts(...)``.
Every failure is classified into an ``ErrorCategory``; the policy's ``Strategy`` for that
category says whether and when to retry. The events of what happened are in
``retrykit.events``, statistics in ``retrykit.stats``, test helpers in ``retrykit.testing``,
and Celery tasks in the retrykit-celery distribution (``retrykit_celery``).
"""

from __future__ import annotations

from typing import Any

from . import _config, _errors, _events, _logging, _stats
from . import events as events  # retrykit.events.GaveUp works after a bare `import retrykit`
from ._breaker import CircuitBreaker, CircuitOpen
from ._budget import RetryBudget
from ._classify import Classification, Classifier, ErrorCategory, Rule
from ._config import classify, configure, configure_from_env, configure_from_settings, explain
from ._errors import ConfigError
from ._layers import InnerRetries, inner_retrier
from ._policy import Policy, get_preset, register_preset
from ._scope import remaining
from ._strategy import Decision, Jitter, Strategy
from .adapters import attempts, retry

__all__ = [
    "CircuitBreaker",
    "CircuitOpen",
    "Classification",
    "Classifier",
    "ConfigError",
    "Decision",
    "ErrorCategory",
    "InnerRetries",
    "Jitter",
    "Policy",
    "RetryBudget",
    "Rule",
    "Strategy",
    "attempts",
    "classify",
    "configure",
    "configure_from_env",
    "configure_from_settings",
    "explain",
    "get_preset",
    "inner_retrier",
    "register_preset",
    "remaining",
    "retry",
]

_OUTCOMES = (
    _events.RetryScheduled,
    _events.GaveUp,
    _events.Succeeded,
    _events.RuleFailed,
)  # AttemptFailed: neither needs it
_events.subscribe(_logging.log_event, kinds=_OUTCOMES)
_events.subscribe(_stats.record_event, kinds=_OUTCOMES)
_config.load_env_at_import()


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version(_errors.DISTRIBUTION)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
