"""The README's examples run, and its quick-start test command is the one CI runs."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_readme_has_examples() -> None:
    """The README shows Python examples (so the next test checks something)."""
    assert len(BLOCKS) >= 8


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """Blocks may configure logging; put it back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


@pytest.mark.usefixtures("_restore_logging")
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int) -> None:
    """Each Python block of the README runs as written, without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run takes its test command from the README's quick start, which has two commands."""
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick, re.DOTALL)
    assert [
        "pip install . && retrykit demo",
        'pip install -e ".[dev]" --config-settings editable_mode=strict && pytest',
    ] == commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1 '^pip install -e' README.md" in ci
