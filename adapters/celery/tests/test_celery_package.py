"""The retrykit-celery distribution: its public names, and the contract that keeps it on the public API."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import retrykit_celery

ROOT = Path(__file__).resolve().parents[3]
PUBLIC = [
    "HEADER",
    "AttemptGuard",
    "AttemptLost",
    "RetrykitTask",
    "TaskOptions",
    "app_options",
    "max_countdown",
    "policy_from_celery",
    "policy_of",
    "register_monitoring",
    "run_coroutine",
    "task",
    "task_options",
]


@pytest.mark.parametrize("source", ["retrykit_celery", "retrykit_http"])
def test_the_contract_forbids_every_private_module_of_retrykit(source: str) -> None:
    """import-linter's forbidden modules are every ``_``-module of the core (no wildcard can say it)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [
        contract
        for contract in config["tool"]["importlinter"]["contracts"]
        if contract.get("source_modules") == [source]
    ]
    private = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "retrykit").rglob("_*.py")
        if path.name != "__init__.py"
    }
    assert private == set(contract["forbidden_modules"])


def test_the_public_names_are_pinned() -> None:
    """``retrykit_celery.__all__`` is the documented API, each name resolving."""
    assert sorted(retrykit_celery.__all__) == sorted(PUBLIC)
    assert all(getattr(retrykit_celery, name) is not None for name in PUBLIC)


def test_the_demo_and_explain_find_the_adapter_by_entry_point() -> None:
    """The core's demo and ``retrykit explain`` reach the adapter through its entry points only."""
    from importlib.metadata import entry_points

    demo = {e.name: e.value for e in entry_points(group="retrykit.demo")}
    explain = {e.name: e.value for e in entry_points(group="retrykit.explain")}
    assert demo["celery"] == "retrykit_celery._demo:run"
    assert explain["celery"] == "retrykit_celery:policy_of"
