"""The package's face: public names, typing marker, the command line."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import retrykit
from retrykit import _cli

PUBLIC = [
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

# The public modules besides the top level, each with its own pinned names.
MODULES = {
    "retrykit.events": [
        "AttemptFailed",
        "Event",
        "GaveUp",
        "RetryScheduled",
        "RuleFailed",
        "StopReason",
        "Succeeded",
        "attributes",
        "subscribe",
    ],
    "retrykit.stats": [
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
    ],
    "retrykit.sinks": ["opentelemetry", "prometheus"],
    "retrykit.logs": [
        "add_retrykit_fields",
        "add_trace_id",
        "configure_json",
        "json_formatter",
        "json_handler",
        "trace",
    ],
    "retrykit.overload": [
        "MemoryOverloadStore",
        "RedisOverloadStore",
        "default_store",
        "pushback_of",
    ],
    "retrykit.driver": ["Action", "Run", "Step", "start"],
    "retrykit.queues": [
        "LONGEST_DELAY",
        "Delivery",
        "RunState",
        "admit",
        "check_redis_url",
        "log_event",
        "owned",
        "resume",
    ],
    "retrykit.testing": [
        "Recorder",
        "Testing",
        "isolated",
        "no_retry",
        "no_wait",
        "record",
        "reset",
        "scaled_time",
        "set_testing",
    ],
    "retrykit.adapters": ["Attempt", "Attempts", "Retried", "attempts", "retry"],
}


def test_public_surface_is_pinned() -> None:
    """__all__ is exactly the documented, sorted list of about twenty names, and every name exists."""
    assert PUBLIC == retrykit.__all__
    assert sorted(retrykit.__all__) == retrykit.__all__
    for name in PUBLIC:
        assert getattr(retrykit, name) is not None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_public_modules_are_pinned(module: str) -> None:
    """Each public module's __all__ is exactly its pinned list, and every name exists."""
    mod = importlib.import_module(module)
    assert MODULES[module] == sorted(mod.__all__, key=lambda n: (not n.isupper(), n))
    for name in MODULES[module]:
        assert getattr(mod, name) is not None


def test_package_is_typed() -> None:
    """The package ships py.typed."""
    assert (Path(retrykit.__file__).parent / "py.typed").exists()


def test_version() -> None:
    """__version__ comes from the installed metadata, which is pyproject.toml's version."""
    import tomllib
    from importlib.metadata import version

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    assert project["version"] == version("retrykit-engine") == retrykit.__version__


def test_demo_runs_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    """``retrykit demo`` calls the flaky service for real and ends as scripted (exit 0)."""
    assert 0 == _cli.main(["demo", "--time-scale", "0.001"])
    out = capsys.readouterr().out
    assert "network_error [errno ECONNRESET] -> retry_with_backoff in" in out
    assert "api_rate_limit [HTTP 429]" in out
    assert "(Retry-After 2s)" in out
    assert "data_error [HTTP 400] -> give up (non_retryable)" in out
    assert "5 calls, 13 attempts (13 requests served)" in out
    assert "demo.sync_inventory attempt 2: network_error -> self.retry(countdown=0.2)" in out
    assert "demo.import_row attempt 1: data_error -> give up (non_retryable)" in out
    assert "the retrying helper inside 'nested' ran 4 times" in out


@pytest.mark.parametrize(
    ("where", "installed_from", "hint"),
    [
        ("checkout", "checkout", 'pip install "./adapters/celery"'),
        ("elsewhere", "checkout", 'adapters/celery"'),  # the checkout's path, relative to where the user is
        ("elsewhere", "index", 'pip install "retrykit-engine[celery]"'),
    ],
)
def test_demo_install_hint_suits_where_the_user_stands(
    where: str, installed_from: str, hint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's Celery hint works where the user stands: a checkout, an editable install, the index."""
    from retrykit import _demo

    checkout = Path(__file__).resolve().parent.parent  # this repository, wherever retrykit is installed
    monkeypatch.chdir(checkout if where == "checkout" else tmp_path)
    if installed_from == "index":
        site = tmp_path / "site-packages" / "retrykit"
        site.mkdir(parents=True)
        monkeypatch.setattr(_demo, "__file__", str(site / "_demo.py"))
    else:  # an editable install: the module is the checkout's (also when a wheel was installed)
        monkeypatch.setattr(_demo, "__file__", str(checkout / "retrykit" / "_demo.py"))
    shown = _demo.install_hint_here()
    assert shown.endswith(hint)
    if where == "elsewhere" and installed_from == "checkout":
        path = shown.removeprefix('pip install "').removesuffix('"')
        assert (tmp_path / path).resolve() == checkout / "adapters" / "celery"


@pytest.mark.parametrize("args", [["demo", "--time-scale", "0"], ["demo", "--time-scale", "x"], ["nope"]])
def test_bad_command_lines_exit_non_zero_without_traceback(args: list[str]) -> None:
    """Bad input is one clear line on stderr and a non-zero exit, never a traceback."""
    proc = subprocess.run([sys.executable, "-m", "retrykit._cli", *args], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip()


def test_bad_environment_is_one_line_for_the_command() -> None:
    """A bad RETRYKIT_* variable makes the command fail with one line naming it."""
    proc = subprocess.run(
        [sys.executable, "-m", "retrykit._cli", "demo"],
        capture_output=True,
        text=True,
        env={"RETRYKIT_ENABLED": "perhaps", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert "RETRYKIT_ENABLED" in proc.stderr
    assert "Traceback" not in proc.stderr
