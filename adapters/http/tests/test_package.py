"""The retrykit-http distribution: its public names, and the contract that keeps it on the public API."""

from __future__ import annotations

import tomllib
from pathlib import Path

import retrykit_http

ROOT = Path(__file__).resolve().parents[3]


def test_the_contract_forbids_every_private_module_of_retrykit() -> None:
    """import-linter's forbidden modules are every ``_``-module of the core (no wildcard can say it)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [
        contract
        for contract in config["tool"]["importlinter"]["contracts"]
        if contract.get("source_modules") == ["retrykit_http"]
    ]
    private = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "retrykit").rglob("_*.py")
        if path.name != "__init__.py"
    }
    assert private == set(contract["forbidden_modules"])


def test_every_public_name_is_there() -> None:
    """Each name of ``__all__`` resolves (the client classes load on first use)."""
    assert all(getattr(retrykit_http, name) is not None for name in retrykit_http.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A misspelt name is an AttributeError, as for any module."""
    assert not hasattr(retrykit_http, "RetryTransports")
