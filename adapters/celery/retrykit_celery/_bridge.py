"""
The bridge from Celery's retry options to a retrykit policy: ``policy_from_celery``.

A task switched over with ``retrykit_policy=policy_from_celery(...)`` (the same keywords it had)
retries what it retried before, as often and after the same waits; what changes is what a
policy adds (attempts counted across worker loss, each attempt's body run once, long waits held
by the broker, events and statistics). ``retrykit explain module:task`` shows the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from retrykit import Classifier, ConfigError, ErrorCategory, Jitter, Policy, Rule, Strategy
from retrykit.queues import LONGEST_DELAY

CELERY_DEFAULTS: dict[str, Any] = {
    "autoretry_for": (),
    "dont_autoretry_for": (),
    "max_retries": 3,
    "retry_backoff": False,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "default_retry_delay": 180,
    "retry_kwargs": {},
}
"""Celery's own defaults for the options the bridge reads (``celery.app.task.Task``)."""
RETRIED = ErrorCategory.TEMPORARY_ERROR
"""The category of what ``autoretry_for`` retries (and of an explicit ``self.retry()``)."""
NOT_RETRIED = ErrorCategory.PERMANENT_ERROR
"""The category of everything else: not retried, as with Celery."""
_UNSET: Any = object()


def policy_from_celery(
    task: Any = None,
    *,
    autoretry_for: Any = _UNSET,
    dont_autoretry_for: Any = _UNSET,
    max_retries: Any = _UNSET,
    retry_backoff: Any = _UNSET,
    retry_backoff_max: Any = _UNSET,
    retry_jitter: Any = _UNSET,
    default_retry_delay: Any = _UNSET,
    retry_kwargs: Any = _UNSET,
    name: str | None = None,
) -> Policy:
    """
    The policy equivalent to Celery's retry options: those given here, else those of *task* (a
    Celery task or task class), else Celery's defaults.

    ``autoretry_for`` is what is retried (the exception itself, as Celery matches it, not its
    causes; ``dont_autoretry_for`` wins), everything else fails at once; ``max_retries`` (or
    ``retry_kwargs["max_retries"]``) is the attempts, ``max_retries + 1``; the wait is
    ``retry_backoff``'s exponential backoff (factor ``retry_backoff``, doubled each retry, capped at
    ``retry_backoff_max``, full jitter unless ``retry_jitter=False``), else a fixed
    ``retry_kwargs["countdown"]`` or ``default_retry_delay``. ``max_retries=None`` (retry for ever)
    has no policy equivalent: a ``ConfigError``. Every category but ``permanent_error`` gets the
    same strategy: a lost worker's attempt (``system_error``) waits as a retry Celery makes.

    Args:
        task: A Celery task or task class whose options are read (None: only the keywords).
        autoretry_for: The exception classes retried (Celery's option).
        dont_autoretry_for: Classes never retried, even if in *autoretry_for*.
        max_retries: Retries after the first attempt (``None``, for ever, is refused).
        retry_backoff: ``True`` (1 s) or the first backoff in seconds; doubled each retry.
        retry_backoff_max: The longest backoff (600 s unless given).
        retry_jitter: ``False`` for no jitter (full jitter otherwise).
        default_retry_delay: The fixed wait without *retry_backoff*.
        retry_kwargs: Celery's ``retry_kwargs`` (``max_retries``, ``countdown``).
        name: The policy's name (``"celery:<task name>"`` when a task is given).

    Returns:
        The equivalent ``Policy``.

    Raises:
        ConfigError: an option with no policy equivalent, or of the wrong type.
    """
    given = {
        "autoretry_for": autoretry_for,
        "dont_autoretry_for": dont_autoretry_for,
        "max_retries": max_retries,
        "retry_backoff": retry_backoff,
        "retry_backoff_max": retry_backoff_max,
        "retry_jitter": retry_jitter,
        "default_retry_delay": default_retry_delay,
        "retry_kwargs": retry_kwargs,
    }
    options = {
        key: value if value is not _UNSET else _of(task, key, CELERY_DEFAULTS[key])
        for key, value in given.items()
    }
    extra = _retry_kwargs(options["retry_kwargs"] or {})
    retries = _retries(extra.get("max_retries", options["max_retries"]))
    label = name or f"celery:{getattr(task, 'name', None) or 'options'}"
    return _policy(options, _strategy(options, extra, retries), retries + 1, label)


def _policy(options: dict[str, Any], strategy: Strategy, attempts: int, name: str) -> Policy:
    """The policy: *strategy* for what ``autoretry_for`` names (less ``dont_autoretry_for``), else none."""
    retried = _exceptions("autoretry_for", options["autoretry_for"])
    kept = _exceptions("dont_autoretry_for", options["dont_autoretry_for"])
    rules = [
        *([Rule(NOT_RETRIED, types=kept, reason="in dont_autoretry_for")] if kept else []),
        *([Rule(RETRIED, types=retried, reason="in autoretry_for")] if retried else []),
        Rule(NOT_RETRIED, types=BaseException, reason="not in autoretry_for"),
    ]
    return Policy(
        strategies={c: strategy if c is not NOT_RETRIED else Strategy.no_retry() for c in ErrorCategory},
        classifier=Classifier(rules, default=NOT_RETRIED, builtin=False),
        max_attempts=attempts,
        name=name,
    )


def _retry_kwargs(extra: object) -> Mapping[str, Any]:
    """Celery's ``retry_kwargs``, checked: a mapping of ``max_retries`` and ``countdown`` only."""
    if not isinstance(extra, Mapping):
        raise ConfigError(
            "retry_kwargs", extra, "must be a mapping", "pass e.g. retry_kwargs={'max_retries': 5}"
        )
    given: Mapping[str, Any] = extra  # pyright: ignore[reportUnknownVariableType]  # the user's own mapping
    unknown = sorted(set(given) - {"max_retries", "countdown"})
    if unknown:
        raise ConfigError(
            "retry_kwargs",
            dict(given),
            f"has options the bridge does not translate ({', '.join(unknown)})",
            "keep max_retries and countdown in retry_kwargs; set queue and the like on the task",
        )
    return given


def _retries(retries: object) -> int:
    """Celery's ``max_retries``, checked: a whole number (``None``, for ever, has no equivalent)."""
    if retries is None:
        raise ConfigError(
            "max_retries",
            None,
            "Celery's max_retries=None retries for ever; a retrykit policy is bounded",
            "pass max_retries=N (the attempts are N + 1)",
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(
            "max_retries", retries, "must be a whole number 0 or more", "pass e.g. max_retries=3"
        )
    return retries


def _of(task: Any, key: str, default: Any) -> Any:
    if task is None:
        return default
    value = getattr(task, key, default)
    return default if value is None and key != "max_retries" else value


def _exceptions(argument: str, value: object) -> tuple[type[BaseException], ...]:
    found: tuple[object, ...] = (value,) if value else ()
    if isinstance(value, (tuple, list)):
        found = tuple(cast("tuple[object, ...]", value))
    classes = tuple(item for item in found if isinstance(item, type) and issubclass(item, BaseException))
    if len(classes) != len(found):
        raise ConfigError(
            argument, value, "must be exception classes", f"pass e.g. {argument}=(ConnectionError,)"
        )
    return classes


def _strategy(options: dict[str, Any], extra: Mapping[str, Any], retries: int) -> Strategy:
    if retries == 0:
        return Strategy.no_retry()
    backoff = options["retry_backoff"]
    if backoff:
        factor = 1 if backoff is True else backoff
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0:
            raise ConfigError("retry_backoff", backoff, "must be True or a number of seconds", "pass e.g. 2")
        cap = options["retry_backoff_max"]
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap < 0:
            raise ConfigError("retry_backoff_max", cap, "must be a number of seconds", "pass e.g. 600")
        cap = min(float(cap), LONGEST_DELAY)
        jitter = Jitter.FULL if options["retry_jitter"] else Jitter.NONE
        return Strategy.backoff(min(float(factor), cap), cap, max_retries=retries, jitter=jitter)
    countdown = extra.get("countdown", options["default_retry_delay"])
    if countdown is None:
        countdown = 0
    return Strategy.delay(countdown, max_retries=retries)
