"""Where a decorated function finds its policy: fixed, or a preset re-resolved when settings change."""

from __future__ import annotations

from typing import Any

import tenacity

from retrykit import _config
from retrykit._decision import Extras
from retrykit._errors import ConfigError
from retrykit._policy import Policy, get_preset
from retrykit._strategy import Strategy

_TENACITY_TYPES = (tenacity.retry_base, tenacity.stop.stop_base, tenacity.wait.wait_base)


class PolicySource:
    """Gives the policy in force for a decorated function, and the tenacity objects given with it."""

    __slots__ = ("_gen", "_name", "_overrides", "_state", "extras", "fixed")

    def __init__(
        self, policy: Policy | None, name: str | None, overrides: dict[str, Any], extras: Extras | None
    ) -> None:
        self._name = name
        self._overrides = overrides
        self._gen = _config.settings.generation
        self.extras: Extras | None = extras
        in_force = policy if policy is not None else self._build()
        self._state: tuple[Policy, bool] = (in_force, self._quiet(in_force))
        """``state()`` as of the settings generation ``_gen``."""
        self.fixed: tuple[Policy, bool] | None = None if policy is None else self._state
        """``state()`` when the policy is fixed (not a preset name that follows settings), else None."""

    def _quiet(self, policy: Policy) -> bool:
        """Whether a first-try success under *policy* is told to nobody and judged by nothing."""
        extras = self.extras
        return (
            policy.guard is None
            and policy.on_success is None
            and policy.classify_result is None
            and (extras is None or extras.retry is None)
        )

    def _build(self) -> Policy:
        assert self._name is not None
        base = get_preset(self._name)
        return base.replace(**self._overrides) if self._overrides else base

    def current(self) -> Policy:
        """The policy now (a named preset follows ``configure()`` and ``register_preset()``)."""
        return self.state()[0]

    def state(self) -> tuple[Policy, bool]:
        """
        ``current()``, and whether a first-try success under it is told to nobody and judged by
        nothing (no guard, ``on_success``, result rule or tenacity ``retry``): the decorator
        then builds nothing for it.
        """
        if self._name is not None and self._gen != _config.settings.generation:
            self._gen = _config.settings.generation
            policy = self._build()
            self._state = (policy, self._quiet(policy))
        return self._state

    def derive(self, overrides: dict[str, Any]) -> PolicySource:
        """A source with *overrides* on top (``retry_with``): tenacity objects and policy options."""
        extras = self.extras
        picked = {k: overrides.pop(k) for k in ("retry", "wait", "stop") if k in overrides}
        if picked:
            base = extras or Extras()
            extras = _extras(
                picked.get("retry", base.retry), picked.get("wait", base.wait), picked.get("stop", base.stop)
            )
        if self._name is not None:
            return PolicySource(None, self._name, {**self._overrides, **overrides}, extras)
        policy = self.current()
        return PolicySource(policy.replace(**overrides) if overrides else policy, None, {}, extras)


def _extras(retry: Any, wait: Any, stop: Any) -> Extras | None:
    for name, value in (("retry", retry), ("wait", wait), ("stop", stop)):
        if value is not None and not callable(value):
            raise ConfigError(
                name,
                value,
                "must be a tenacity object (or a callable taking a RetryCallState)",
                f"pass e.g. {name}=tenacity.{name}_"
                + {"retry": "if_result(...)", "wait": "fixed(1)", "stop": "after_attempt(3)"}[name],
            )
    if retry is None and wait is None and stop is None:
        return None
    return Extras(retry, wait, stop)


def resolve(
    policy: Any, overrides: dict[str, Any], retry: Any = None, wait: Any = None, stop: Any = None
) -> PolicySource:
    """Turn ``retry()``'s first argument, keyword overrides and tenacity objects into a source."""
    _config.check()
    extras = _extras(retry, wait, stop)
    if policy is None:
        policy = "default"
    if isinstance(policy, str):
        return PolicySource(None, policy, overrides, extras)  # validates the name and overrides now
    if isinstance(policy, Policy):
        return PolicySource(policy.replace(**overrides) if overrides else policy, None, {}, extras)
    if isinstance(policy, Strategy):
        raise ConfigError(
            "policy",
            policy,
            "a Strategy covers one category, a Policy all of them",
            "pass Policy(strategies={ErrorCategory.X: strategy}) or a preset name",
        )
    if isinstance(policy, _TENACITY_TYPES):
        raise ConfigError(
            "policy",
            policy,
            "tenacity objects are not a policy",
            "pass them by keyword: retrykit.retry('http', wait=..., stop=..., retry=...)",
        )
    raise ConfigError(
        "policy",
        policy,
        "must be a Policy, a preset name or None",
        "pass e.g. retrykit.retry('http') or retrykit.retry(Policy(...))",
    )
