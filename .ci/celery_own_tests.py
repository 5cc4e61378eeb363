"""
CI: Celery's own unit tests for tasks, run with retrykit's task class (docs/celery.md,
"Switching an existing app": a task that names no policy is Celery's ``Task`` in every respect).

``python .ci/celery_own_tests.py`` with the environment to test active: it downloads the source
distribution of the Celery version installed there (``pip download --no-deps --no-binary :all:``),
takes its ``t/`` folder and ``pyproject.toml`` unchanged (not its ``celery/`` package: the tests run
against the installed Celery), adds one conftest that sets the test app's task class to
``RetrykitTask``, and runs ``t/unit/tasks/test_tasks.py`` and ``test_trace.py``. Every test must pass.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

FILES = ("t/unit/tasks/test_tasks.py", "t/unit/tasks/test_trace.py")
CONFTEST = '''"""Added by retrykit's CI: the test app's task class is retrykit's."""

import pytest


@pytest.fixture(scope="session")
def celery_parameters():
    return {"task_cls": "retrykit_celery:RetrykitTask"}
'''


def main() -> int:
    """Download, unpack, add the conftest, run; the exit code of pytest."""
    version = importlib.metadata.version("celery")
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
            + [f"celery=={version}", "-d", str(root)],
            check=True,
        )
        sdist = next(root.glob("celery-*.tar.gz"))
        src = root / "src"
        with tarfile.open(sdist) as tar:
            top = f"celery-{version}/"
            members = [
                m
                for m in tar.getmembers()
                if m.name.startswith(top + "t/") or m.name == top + "pyproject.toml"
            ]
            for member in members:
                member.name = member.name[len(top) :]
            tar.extractall(src, members=members, filter="data")
        (src / "t/unit/tasks/conftest.py").write_text(CONFTEST)
        print(f"Celery {version}'s {' and '.join(FILES)} with task_cls=RetrykitTask", flush=True)
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FILES],
            cwd=src,
            check=False,
            capture_output=True,
            text=True,
        )
        tail = run.stdout.strip().splitlines()[-25:] if run.returncode else run.stdout.strip().splitlines()[-1:]
        print("\n".join(tail), run.stderr[-2000:], sep="\n")
        return run.returncode


if __name__ == "__main__":
    sys.exit(main())
