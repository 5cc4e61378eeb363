"""The README's quick-start test command is the one CI runs (its examples: tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run takes its test command from the README's quick start, which has two commands."""
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick, re.DOTALL)
    assert [
        "pip install . && retrykit demo",
        'pip install -e ".[dev]" -e "./adapters/http[dev]" -e "./adapters/celery[dev]" '
        "--config-settings editable_mode=strict && pytest",
    ] == commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1 '^pip install -e' README.md" in ci
