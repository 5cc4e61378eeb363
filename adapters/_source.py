"""Where a decorated function finds its policy: fixed, or a preset re-resolved when settings change."""

from __future__ import annotations

from typing import Any

import tenacity

from retrykit import _config
from retrykit._errors import ConfigError
from retrykit._policy import Policy, get_preset
from retrykit._strategy import Strategy


class PolicySource:
    """Strictly private: gives the policy in force for a decorated function."""

    __slots__ = ("_gen", "_name", "_overrides", "_policy")

    def __init__(self, policy: Policy | None, name: str | None, overrides: dict[str, Any]) -> None:
        self._name = name
        self._overrides = overrides
        self._gen = _config.settings.generation
        self._policy = policy if policy is not None else self._build()

    def _build(self) -> Policy:
        assert self._name is not None
        base = get_preset(self._name)
        return base.replace(**self._overrides) if self._overrides else base

    def current(self) -> Policy:
        """The policy now (a named preset follows ``configure()`` and ``register_preset()``)."""
        if self._name is not None and self._gen != _config.settings.generation:
            self._gen = _config.settings.generation
            self._policy = self._build()
        return self._policy


def resolve(policy: Any, overrides: dict[str, Any]) -> PolicySource:
    """Turn ``retry()``'s first argument and keyword overrides into a ``PolicySource``."""
    _config.check()
    if policy is None:
        policy = "default"
    if isinstance(policy, str):
        return PolicySource(None, policy, overrides)  # validates the name and overrides now
    if isinstance(policy, Policy):
        return PolicySource(policy.replace(**overrides) if overrides else policy, None, {})
    if isinstance(policy, Strategy):
        raise ConfigError(
            "policy",
            policy,
            "a Strategy covers one category, a Policy all of them",
            "pass Policy(strategies={ErrorCategory.X: strategy}) or a preset name",
        )
    if isinstance(policy, (tenacity.retry_base, tenacity.stop.stop_base, tenacity.wait.wait_base)):
        raise ConfigError(
            "policy",
            policy,
            "tenacity objects are not a policy",
            "put them in a strategy: Strategy.custom(wait=..., stop=...)",
        )
    raise ConfigError(
        "policy",
        policy,
        "must be a Policy, a preset name or None",
        "pass e.g. retrykit.retry('http') or retrykit.retry(Policy(...))",
    )
