"""
Settings: keyword arguments, environment variables (``RETRYKIT_*``) or a Django/Flask settings
mapping, validated with errors that name the key.

Settings shape the ``default`` preset (what ``@retrykit.retry`` uses with no policy), the default
classifier's fallback category, and the global on/off switch. Explicit ``Policy`` objects are
what they say and are not changed by settings.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict

from . import _layers
from ._categories import CategoryKey
from ._classify import Classification, Classifier, ErrorCategory, Explanation
from ._errors import HIDDEN, ConfigError, Shown, seconds, whole
from ._redis import check_url
from ._strategy import Decision, DecisionName

if TYPE_CHECKING:
    from typing_extensions import Unpack

ENV_PREFIX = "RETRYKIT_"
_log = logging.getLogger("retrykit")
MAX_RETENTION_HOURS = 10 * 366 * 24.0
"""Statistics are kept ten years at most (a longer retention is refused)."""

_CATEGORY_KEYS: dict[str, ErrorCategory] = {
    "network": ErrorCategory.NETWORK_ERROR,
    "api_rate_limit": ErrorCategory.API_RATE_LIMIT,
    "rate_limit": ErrorCategory.API_RATE_LIMIT,
    "data": ErrorCategory.DATA_ERROR,
    "system": ErrorCategory.SYSTEM_ERROR,
    "temporary": ErrorCategory.TEMPORARY_ERROR,
    "permanent": ErrorCategory.PERMANENT_ERROR,
}
_STRATEGY_FIELDS = ("max_retries", "base_delay", "max_delay", "decision")
_CATEGORY_SETTINGS: dict[str, tuple[ErrorCategory, str]] = {
    f"{short}_{field_name}": (category, field_name)
    for short, category in _CATEGORY_KEYS.items()
    for field_name in _STRATEGY_FIELDS
}
"""``<category>_<field>`` settings: the category and the strategy field each one sets."""


def _parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(key, value, "must be a boolean", "use true/false, 1/0, yes/no or on/off")


def _parse_int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(key, value, "must be a whole number", f"use e.g. {key}=3") from None
    result: int = whole(key, value, minimum=minimum, allow_none=False)
    return result


def _parse_seconds(key: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(key, value, "must be a number of seconds", f"use e.g. {key}=1.5") from None
    result: float = seconds(key, value, allow_none=False)
    return result


def _parse_redis_url(key: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    return check_url(key, value)


def _parse_positive(key: str, value: Any) -> float:
    number = _parse_seconds(key, value)
    if number <= 0:
        raise ConfigError(key, value, "must be greater than 0", f"use e.g. {key}=30, or leave it unset")
    return number


def _parse_retention(key: str, value: Any) -> float:
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0 < number <= MAX_RETENTION_HOURS:
        raise ConfigError(
            key,
            value,
            f"must be a number of hours greater than 0 and at most {MAX_RETENTION_HOURS:g} (ten years)",
            f"use e.g. {key}=24",
        )
    return number


_LOG_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
}


def _parse_log_level(key: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().upper() in _LOG_LEVELS:
        return _LOG_LEVELS[value.strip().upper()]
    if isinstance(value, int) and not isinstance(value, bool) and value in _LOG_LEVELS.values():
        return value
    raise ConfigError(
        key, value, "must be a logging level", "use DEBUG, INFO, WARNING or ERROR (or logging.INFO)"
    )


def _strategy_parser(field_name: str) -> Callable[[str, Any], Any]:
    if field_name == "max_retries":
        return lambda k, v: _parse_int(k, v, 0)
    if field_name == "decision":
        return lambda k, v: Decision.parse(v, k)
    return _parse_seconds


LogLevelName: TypeAlias = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ConfigureOptions(TypedDict, total=False):
    """
    The keywords of ``configure()``: the settings by name, with the types they take. Durations
    are seconds or a ``timedelta``; ``<category>_decision`` a ``Decision`` or its value.
    """

    enabled: bool
    default_category: CategoryKey
    max_attempts: int
    deadline: float | timedelta
    default_max_retries: int
    default_base_delay: float | timedelta
    default_max_delay: float | timedelta
    network_max_retries: int
    network_base_delay: float | timedelta
    network_max_delay: float | timedelta
    network_decision: Decision | DecisionName
    api_rate_limit_max_retries: int
    api_rate_limit_base_delay: float | timedelta
    api_rate_limit_max_delay: float | timedelta
    api_rate_limit_decision: Decision | DecisionName
    rate_limit_max_retries: int
    rate_limit_base_delay: float | timedelta
    rate_limit_max_delay: float | timedelta
    rate_limit_decision: Decision | DecisionName
    data_max_retries: int
    data_base_delay: float | timedelta
    data_max_delay: float | timedelta
    data_decision: Decision | DecisionName
    system_max_retries: int
    system_base_delay: float | timedelta
    system_max_delay: float | timedelta
    system_decision: Decision | DecisionName
    temporary_max_retries: int
    temporary_base_delay: float | timedelta
    temporary_max_delay: float | timedelta
    temporary_decision: Decision | DecisionName
    permanent_max_retries: int
    permanent_base_delay: float | timedelta
    permanent_max_delay: float | timedelta
    permanent_decision: Decision | DecisionName
    stats_enabled: bool
    stats_redis_url: str | None
    stats_bucket_seconds: int
    stats_retention_hours: float
    stats_max_operations: int
    log_level: int | LogLevelName


@dataclass(slots=True)
class Settings:
    """Strictly private: the process-wide settings. Change them with ``configure()``."""

    enabled: bool = True
    default_category: ErrorCategory = ErrorCategory.TEMPORARY_ERROR
    max_attempts: int | None = None
    deadline: float | None = None
    strategy_defaults: dict[str, Any] = field(default_factory=dict)
    category_overrides: dict[ErrorCategory, dict[str, Any]] = field(default_factory=dict)
    classifier: Classifier = field(default_factory=Classifier)
    generation: int = 0
    stats_enabled: bool = True
    stats_redis_url: str = ""
    stats_bucket_seconds: int = 60
    stats_retention_hours: float = 24.0
    stats_max_operations: int = 1000
    log_level: int = logging.WARNING
    """The level of the log line for each scheduled retry."""


settings = Settings()
_lock = threading.Lock()
_PLAIN_KEYS = frozenset(
    {
        "enabled",
        "default_category",
        "max_attempts",
        "deadline",
        "stats_enabled",
        "stats_redis_url",
        "stats_bucket_seconds",
        "stats_retention_hours",
        "stats_max_operations",
        "log_level",
    }
)
deferred_error: ConfigError | None = None
"""A bad ``RETRYKIT_*`` variable found at import, raised at first use (see ``check``)."""


def check() -> None:
    """Raise the error a bad ``RETRYKIT_*`` variable caused at import, if any."""
    if deferred_error is not None:
        raise deferred_error


def load_env_at_import() -> None:
    """Apply the environment; remember (do not raise) an error, so ``import retrykit`` works."""
    global deferred_error
    try:
        configure_from_env()
    except ConfigError as err:
        deferred_error = err


def _known_keys() -> dict[str, Callable[[str, Any], Any]]:
    keys: dict[str, Callable[[str, Any], Any]] = {
        "enabled": _parse_bool,
        "default_category": lambda k, v: ErrorCategory.parse(v, k),
        "max_attempts": lambda k, v: _parse_int(k, v, 1),
        "deadline": _parse_positive,
        "default_max_retries": lambda k, v: _parse_int(k, v, 1),
        "default_base_delay": _parse_seconds,
        "default_max_delay": _parse_seconds,
        "stats_enabled": _parse_bool,
        "stats_redis_url": _parse_redis_url,
        "stats_bucket_seconds": lambda k, v: _parse_int(k, v, 1),
        "stats_retention_hours": _parse_retention,
        "stats_max_operations": lambda k, v: _parse_int(k, v, 1),
        "log_level": _parse_log_level,
    }
    for name, (_, field_name) in _CATEGORY_SETTINGS.items():
        keys[name] = _strategy_parser(field_name)
    return keys


def configure(**options: Unpack[ConfigureOptions]) -> None:
    """
    Change retrykit's settings for this process.

    Values are validated before anything changes: a bad key or value raises ``ConfigError``
    naming it, and leaves the settings as they were. Functions decorated with a preset name follow
    the new settings; explicit ``Policy`` objects are what they say.

    Keyword Args:
        enabled (bool): Off: every decorator makes one attempt and re-raises untouched.
        default_category (ErrorCategory | str): The category of failures no rule recognises.
        max_attempts (int): The ``default`` preset's attempts per call, all categories together.
        deadline (float | timedelta): The ``default`` preset's time limit per call.
        default_max_retries (int): Retries of every retrying category of the ``default`` preset.
        default_base_delay (float | timedelta): Their first delay.
        default_max_delay (float | timedelta): Their longest delay.
        network_max_retries (int): Retries of network errors (and so for each category below).
        network_base_delay (float | timedelta): The first delay of network errors.
        network_max_delay (float | timedelta): The longest delay of network errors.
        network_decision (Decision | str): The decision for network errors.
        api_rate_limit_max_retries (int): Retries of rate limits.
        api_rate_limit_base_delay (float | timedelta): Their first delay.
        api_rate_limit_max_delay (float | timedelta): Their longest delay.
        api_rate_limit_decision (Decision | str): Their decision.
        rate_limit_max_retries (int): The same as ``api_rate_limit_max_retries``.
        rate_limit_base_delay (float | timedelta): The same as ``api_rate_limit_base_delay``.
        rate_limit_max_delay (float | timedelta): The same as ``api_rate_limit_max_delay``.
        rate_limit_decision (Decision | str): The same as ``api_rate_limit_decision``.
        data_max_retries (int): Retries of data errors.
        data_base_delay (float | timedelta): Their first delay.
        data_max_delay (float | timedelta): Their longest delay.
        data_decision (Decision | str): Their decision (``no_retry`` by default).
        system_max_retries (int): Retries of system errors.
        system_base_delay (float | timedelta): Their first delay.
        system_max_delay (float | timedelta): Their longest delay.
        system_decision (Decision | str): Their decision.
        temporary_max_retries (int): Retries of temporary errors.
        temporary_base_delay (float | timedelta): Their first delay.
        temporary_max_delay (float | timedelta): Their longest delay.
        temporary_decision (Decision | str): Their decision.
        permanent_max_retries (int): Retries of permanent errors.
        permanent_base_delay (float | timedelta): Their first delay.
        permanent_max_delay (float | timedelta): Their longest delay.
        permanent_decision (Decision | str): Their decision (``no_retry`` by default).
        stats_enabled (bool): Count every event in the error statistics.
        stats_redis_url (str | None): Also send the counts to this Redis, for the fleet's figures.
        stats_bucket_seconds (int): The width of a statistics bucket (60).
        stats_retention_hours (float): How long counts are kept (24).
        stats_max_operations (int): Operation names counted (1,000); others go under ``<other>``.
        log_level (int | str): The level of each retry's log line (``"WARNING"`` by default).

    Args:
        **options: The settings above, by keyword; each is also an environment variable
            (``RETRYKIT_`` and the name in capitals).

    Raises:
        ConfigError: An unknown setting (with the closest known one) or a bad value.
    """
    _apply(options)


def _apply(options: Mapping[str, Any]) -> None:
    """``configure()`` for settings of any source: keys in any case, values as text too."""
    known = _known_keys()
    parsed: dict[str, Any] = {}
    for key, value in options.items():  # checked here too: a typo is a ConfigError at run time
        name = key.lower()
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see retrykit.configure's docstring"
            raise ConfigError(key, HIDDEN, "is not a retrykit setting", hint)  # maybe not ours to show
        parsed[name] = known[name](key, value)
    global settings
    with _lock:
        new = dataclasses.replace(
            settings,
            strategy_defaults=dict(settings.strategy_defaults),
            category_overrides={c: dict(v) for c, v in settings.category_overrides.items()},
            generation=settings.generation + 1,
        )
        for name, value in parsed.items():
            if name in _PLAIN_KEYS:
                setattr(new, name, value)
            elif name.startswith("default_"):
                new.strategy_defaults[name.removeprefix("default_")] = value
            else:
                category, field_name = _CATEGORY_SETTINGS[name]
                new.category_overrides.setdefault(category, {})[field_name] = value
        # temporary_error, the built-in default, leaves unrecognised failures bounded (Classifier)
        given = new.default_category is not ErrorCategory.TEMPORARY_ERROR
        new.classifier = Classifier(default=new.default_category if given else None)
        _check_default_preset(new)
        settings = new


def _no_preset_check(candidate: Settings) -> None:
    """Before the policy layer is imported there is no preset to build."""


_preset_check: Callable[[Settings], object] = _no_preset_check
"""Builds the default preset under given settings (set by the policy layer, above this one)."""


def set_preset_check(check: Callable[[Settings], object]) -> None:
    """Let ``configure()`` build the default preset under new settings before taking them."""
    global _preset_check
    _preset_check = check


def _check_default_preset(candidate: Settings) -> None:
    """Build the default preset under *candidate* so contradictions fail now, naming the key."""
    _preset_check(candidate)


def classify(exc: BaseException) -> Classification:
    """
    Classify *exc* with the default classifier (built-in rules, configured default category),
    saying which client inside the call retried, if one did (``Classification.inner``).

    Args:
        exc: The exception to classify.

    Returns:
        Its ``Classification``. It never raises, and a rule that fails is skipped.
    """
    return _layers.attach(settings.classifier.classify(exc), exc)


def explain(exc: BaseException, classifier: Classifier | None = None) -> Explanation:
    """
    Explain how *exc* is classified: ``print(retrykit.explain(err))``.

    Args:
        exc: The exception to explain.
        classifier: The classifier to ask. Default: the configured one.

    Returns:
        An explanation that prints every link of the cause chain, the signal each rule read from
            it, the rule that decided and the category.
    """
    return (classifier or settings.classifier).explain(exc)


def reset() -> None:
    """Back to the built-in settings (for tests); Django's ``RETRYKIT`` is no longer followed."""
    global settings, deferred_error, _django_base
    deferred_error = None
    with _lock:
        settings = Settings(generation=settings.generation + 1)
        _django_base = None


@dataclass(frozen=True, slots=True)
class Saved:
    """Strictly private: the settings at one moment (``snapshot()``), to ``restore()`` later."""

    settings: Settings
    deferred_error: ConfigError | None
    django_base: Settings | None


def snapshot() -> Saved:
    """The settings now; ``configure()`` never changes a settings object it has handed out."""
    with _lock:
        return Saved(dataclasses.replace(settings), deferred_error, _django_base)


def restore(saved: Saved) -> None:
    """Back to the settings of *saved* (policies resolved by name see the change)."""
    global settings, deferred_error, _django_base
    with _lock:
        settings = dataclasses.replace(saved.settings, generation=settings.generation + 1)
        deferred_error = saved.deferred_error
        _django_base = saved.django_base


_django_base: Settings | None = None
"""The settings before Django's ``RETRYKIT`` was applied: ``override_settings`` starts from them."""


def _is_django_settings(source: Any) -> bool:
    return type(source).__module__ == "django.conf"  # LazySettings, Settings, UserSettingsHolder


def _follow_django(base: Settings) -> None:
    """Re-apply ``RETRYKIT`` when Django says it changed (``override_settings`` in tests)."""
    global _django_base
    with _lock:
        _django_base = base
    signals = sys.modules.get("django.core.signals")
    if signals is None:  # pragma: no cover - django.conf imports it
        import importlib

        signals = importlib.import_module("django.core.signals")
    signals.setting_changed.connect(_django_setting_changed, dispatch_uid="retrykit.settings")


def _django_setting_changed(*, setting: str, value: Any, **_: Any) -> None:
    """Django's ``setting_changed`` receiver: ``RETRYKIT`` is applied over the pre-Django base."""
    global settings
    base = _django_base
    if setting != "RETRYKIT" or base is None:
        return
    before = snapshot()
    with _lock:
        settings = dataclasses.replace(base, generation=settings.generation + 1)
    if value is None:
        return
    try:
        configure_from_settings(types.SimpleNamespace(RETRYKIT=value))
    except ConfigError:
        restore(before)
        raise


def configure_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    Apply every ``RETRYKIT_*`` environment variable.

    ``RETRYKIT_ENABLED=false``, ``RETRYKIT_DEFAULT_MAX_RETRIES=5``,
    ``RETRYKIT_NETWORK_BASE_DELAY=0.5``, ...: each setting of ``configure()``, in capitals. Done
    automatically at ``import retrykit``; an invalid variable found then is raised at the first
    decoration or preset lookup, naming the variable.

    Args:
        environ: The variables to read. Default: ``os.environ``.

    Returns:
        The variables it applied, by name.

    Raises:
        ConfigError: An unknown ``RETRYKIT_*`` variable or a bad value, naming the variable.
    """
    global deferred_error
    env = os.environ if environ is None else environ
    found = {k[len(ENV_PREFIX) :]: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    try:
        _apply(found)
    except ConfigError as err:
        raise _renamed(err, ENV_PREFIX + err.argument.upper()) from None
    deferred_error = None
    return {ENV_PREFIX + k: v for k, v in found.items()}


def configure_from_settings(source: Any, *, prefix: str = ENV_PREFIX) -> dict[str, Any]:
    """
    Apply settings from a framework's configuration.

    Django: ``configure_from_settings(django.conf.settings)`` reads its ``RETRYKIT`` dict.
    Flask: ``configure_from_settings(app.config)`` reads the ``RETRYKIT_*`` keys.
    A plain mapping of retrykit settings is read as it is (``{"ENABLED": True, ...}``).
    Only retrykit's own keys are read, and no error ever shows the value of a key that is not
    retrykit's. Django's settings are followed from then on: ``override_settings(RETRYKIT={...})``
    applies the new ``RETRYKIT`` over the settings retrykit had before it read Django's, and puts
    the old ones back when the override ends.

    Args:
        source: Django's ``settings``, a Flask ``app.config``, or a mapping.
        prefix: The prefix of Flask-style keys.

    Returns:
        The settings it applied (``{}`` for a configuration with none of retrykit's keys).

    Raises:
        ConfigError: An unknown retrykit key or a bad value; nothing is changed then.
    """
    before = settings
    applied = _apply_settings(source, prefix)
    if _is_django_settings(source):
        _follow_django(before)
    return applied


def _apply_settings(source: Any, prefix: str) -> dict[str, Any]:
    name = prefix.rstrip("_")
    mapping: Any
    owned = False  # a RETRYKIT dict: every key in it is meant for retrykit
    if not isinstance(source, Mapping) and hasattr(source, name):
        mapping, owned = getattr(source, name), True
    elif isinstance(source, Mapping) and name in source and isinstance(source[name], Mapping):
        mapping, owned = source[name], True
    elif isinstance(source, Mapping):
        mapping = source
    elif _looks_like_settings(source):
        _log.info("retrykit: %s has no %s settings; the defaults apply", type(source).__name__, name)
        return {}
    else:
        mapping = None
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            "source" if mapping is None else name,
            Shown(f"<{type(source if mapping is None else mapping).__name__}>"),
            f"must be a mapping or have a {name} mapping",
            f"pass app.config (Flask), django.conf.settings with {name} = {{...}}, or a dict",
        )
    prefixed = {str(k)[len(prefix) :]: v for k, v in mapping.items() if str(k).startswith(prefix)}
    if owned:
        chosen, shown_prefix = {str(k).removeprefix(prefix): v for k, v in mapping.items()}, prefix
    elif prefixed:
        chosen, shown_prefix = prefixed, prefix
    else:
        known = _known_keys()
        if not any(str(k).lower() in known for k in mapping):
            _log.info("retrykit: %s has no %s settings; the defaults apply", type(source).__name__, name)
            return {}
        chosen, shown_prefix = {str(k): v for k, v in mapping.items()}, ""
    try:
        _apply(chosen)
    except ConfigError as err:
        raise _renamed(err, shown_prefix + err.argument) from None
    return chosen


def _renamed(err: ConfigError, name: str) -> ConfigError:
    """*err* about the setting as the user spells it (``RETRYKIT_MAX_ATTEMPTS``), in its fix too."""
    fix = re.sub(
        rf"(?<![A-Za-z0-9_]){re.escape(err.argument)}(?=\s*[=<>])", name, err.fix, flags=re.IGNORECASE
    )
    return ConfigError(name, err.value, err.rule, fix)


def _looks_like_settings(source: Any) -> bool:
    """A settings object or module (upper-case attributes), as opposed to a wrong argument."""
    if isinstance(source, (str, bytes, int, float, bool, type(None))):
        return False
    try:
        return any(n.isupper() and not n.startswith("_") for n in dir(source))
    except Exception:
        return False


def bump() -> None:
    """Tell resolved-by-name policies that presets changed."""
    with _lock:
        settings.generation += 1
