"""
The bridge from Celery's options: which policy a task names, and the refusals of a second retry
authority (Celery's ``autoretry_for`` and ``retry_*`` options, ``retry_on_worker_lost``,
``@retrykit.retry`` or tenacity on the task function, a contradicting ``max_retries``).
"""

from __future__ import annotations

from typing import Any

import celery

from retrykit import ConfigError, Policy, Strategy, get_preset

CELERY_RETRY_OPTIONS = (
    "autoretry_for",
    "retry_backoff",
    "retry_backoff_max",
    "retry_jitter",
    "retry_kwargs",
)


def policy_named(named: object) -> Policy:
    """The policy *named* (a ``Policy``, a preset name, None: the default) is now."""
    if named is None:
        return get_preset("default")
    if isinstance(named, str):
        return get_preset(named)  # a preset follows configure() and register_preset()
    if isinstance(named, Policy):
        return named
    if isinstance(named, Strategy):
        raise ConfigError(
            "policy",
            named,
            "a Strategy covers one category, a Policy all of them",
            "pass Policy(strategies={ErrorCategory.X: strategy}) or a preset name",
        )
    raise ConfigError(
        "policy",
        named,
        "must be a Policy, a preset name or None",
        "pass e.g. task('http') or task(Policy(...))",
    )


def max_retries_of(policy: Policy) -> int | None:
    """Celery's ``max_retries`` matching *policy*: attempts - 1, or the categories' total."""
    if policy.max_attempts is not None:
        return policy.max_attempts - 1
    counts = [s.max_retries for s in policy.strategies.values() if s.retries]
    if any(c is None for c in counts):
        return None
    return sum(c for c in counts if c is not None)


def named_policy(cls: type, app: object, base: type) -> Policy | str | None:
    """The policy *cls* names (itself or a class below *base*), else *app*'s ``retrykit_policy``."""
    for klass in cls.__mro__:
        if klass is base:
            break
        if "retrykit_policy" in klass.__dict__:
            named: Policy | str | None = klass.__dict__["retrykit_policy"]
            return named
    conf = getattr(app, "conf", None)
    found = conf.get("retrykit_policy") if conf is not None else None
    return found if isinstance(found, (str, Policy)) else None


def builtin(cls: type) -> bool:
    """Celery's own tasks (``celery.chord_unlock``...) keep Celery's behaviour under ``task_cls``."""
    name = cls.__dict__.get("name") or getattr(cls, "name", None) or ""
    return isinstance(name, str) and name.startswith("celery.")


def check_task_class(cls: type) -> None:
    """Refuse a task class with a policy and a second retry authority."""
    name = getattr(cls, "name", cls.__name__)
    given = [option for option in CELERY_RETRY_OPTIONS if cls.__dict__.get(option) or _inherited(cls, option)]
    if given:
        raise ConfigError(
            given[0],
            getattr(cls, given[0]),
            f"task {name} has a retrykit policy and Celery's own retry options (two retry authorities)",
            f"move {', '.join(given)} into retrykit_policy=policy_from_celery(...) (the same keywords), "
            "or drop the policy to keep Celery's retries",
        )
    if getattr(cls, "retry_on_worker_lost", None):
        raise ConfigError(
            "retry_on_worker_lost",
            True,
            f"task {name} has a retrykit policy, which already counts a lost "
            "worker as a failed attempt (two retry authorities)",
            "drop retry_on_worker_lost (and task_retry_on_worker_lost) for tasks with a retrykit policy",
        )
    run = cls.__dict__.get("run")
    _check_run(name, getattr(run, "__func__", run))


def _check_run(name: str, target: object) -> None:
    if hasattr(target, "__retrykit__"):
        raise ConfigError(
            "run",
            name,
            "the task function has @retrykit.retry and the task a retrykit policy (applied twice)",
            "drop @retrykit.retry from the task function; pass the policy to the task instead",
        )
    if _has_tenacity(target):
        raise ConfigError(
            "run",
            name,
            "the task function is wrapped by tenacity and the task has a retrykit policy "
            "(two retry authorities)",
            "drop the tenacity decorator; the task's policy retries it through the broker",
        )


def check_max_retries(cls: type, wanted: int | None) -> None:
    """Refuse a ``max_retries`` on the class that contradicts the policy's attempts."""
    given = cls.__dict__.get("max_retries", wanted)
    if given != wanted:
        raise ConfigError(
            "max_retries",
            given,
            f"contradicts the retrykit policy, which allows {wanted} retries",
            "drop max_retries; set max_attempts on the policy instead",
        )


def check_options(options: dict[str, Any]) -> None:
    """Refuse Celery's own retry options given next to a policy."""
    for name in CELERY_RETRY_OPTIONS:
        if options.get(name):
            raise ConfigError(
                name,
                options[name],
                "Celery's own retry options next to a retrykit policy (two retry authorities)",
                f"remove {name}",
            )


def _has_tenacity(fn: object) -> bool:
    for _ in range(8):
        if fn is None:
            return False
        retry = getattr(fn, "retry", None)
        if retry is not None and type(retry).__module__.startswith("tenacity"):
            return True
        fn = getattr(fn, "__wrapped__", None)
    return False


def _inherited(cls: type, name: str) -> bool:
    value = getattr(cls, name, None)
    return bool(value) and value != getattr(celery.Task, name, None)


def autoretry_refused(task: Any) -> ConfigError:
    """The refusal of ``autoretry_for`` on a task with a policy."""
    return ConfigError(
        "autoretry_for",
        getattr(task, "autoretry_for", None),
        f"task {task.name} has a retrykit policy and Celery's autoretry_for (two retry authorities)",
        "move the Celery options into retrykit_policy=policy_from_celery(...), or drop them",
    )


def refused(app: Any, cls: type, err: ConfigError) -> ConfigError:
    """
    *err* about task class *cls*, to raise without leaving *app* half-finalized: the task is taken
    out of the registry (Celery recorded it before binding it), and if *app* was finalizing, it is
    not finalized: every later access (``app.tasks``, a worker starting) raises *err* again.
    """
    tasks = getattr(app, "_tasks", None)
    name = getattr(cls, "name", None)
    if tasks is not None and isinstance(tasks.get(name), cls):
        del tasks[name]
    mutex = getattr(app, "_finalize_mutex", None)
    owned = getattr(mutex, "_is_owned", None)
    if app is not None and getattr(app, "finalized", False) and callable(owned) and owned():

        def finalize(auto: bool = False) -> None:
            raise ConfigError(err.argument, err.value, err.rule, err.fix)

        app.finalized = False  # finalize() stopped half-way
        app.finalize = finalize
    return err
