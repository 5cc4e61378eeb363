"""
The Python examples of README.md and docs/*.md: found, and run as written.

tests/test_docs.py runs each as a test. CI also runs this file as a script with the wheel
installed in a fresh virtualenv (``python tests/docs_examples.py --installed``): the script's
folder, not the checkout, is then on ``sys.path``, so ``import retrykit`` finds the wheel.

An example that must not run (it needs a service, or only illustrates) says so on the line
before its fence: ``<!-- not run: the reason -->``. tests/test_docs.py lists every such one.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\n\Z")


@dataclass(frozen=True)
class Example:
    """One fenced Python block: where it is, its code and why it is not run (if it is not)."""

    path: str
    line: int
    code: str
    not_run: str | None

    @property
    def name(self) -> str:
        """``path:line`` of the opening fence."""
        return f"{self.path}:{self.line}"


def sources() -> list[Path]:
    """README.md, then every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def examples() -> list[Example]:
    """Every ```` ```python ```` block of the sources, in order."""
    found = []
    for path in sources():
        text = path.read_text()
        for match in FENCE.finditer(text):
            before = text[: match.start()]
            reason = NOT_RUN.search(before)
            found.append(
                Example(
                    path=path.relative_to(ROOT).as_posix(),
                    line=before.count("\n") + 1,
                    code=match.group(1),
                    not_run=reason.group(1) if reason else None,
                )
            )
    return found


@contextmanager
def restored_logging() -> Iterator[None]:
    """Examples may configure logging or structlog; put both back."""
    import structlog

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.reset_defaults()
        root.handlers, root.level = handlers, level


def run(example: Example) -> None:
    """Run one example as a module of its own; a warning is an error. Tracebacks name file:line."""
    padded = "\n" * example.line + example.code  # line numbers in tracebacks are the file's
    with restored_logging(), warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(padded, example.path, "exec"), {"__name__": "docs_example"})


def main(argv: list[str]) -> int:
    """Run every example in this process, settings reset between them; 1 if any failed."""
    import retrykit
    import retrykit.testing

    where = Path(retrykit.__file__).resolve()
    print(f"retrykit {retrykit.__version__} from {where.parent}")
    if "--installed" in argv and where.is_relative_to(ROOT):
        print(
            "docs_examples: retrykit was imported from the checkout, not the installed wheel", file=sys.stderr
        )
        return 1
    failed = 0
    for example in examples():
        if example.not_run:
            print(f"skipped {example.name}: {example.not_run}")
            continue
        try:
            run(example)
        except Exception:
            failed += 1
            print(f"FAILED {example.name}\n{traceback.format_exc()}", file=sys.stderr)
        else:
            print(f"ok {example.name}")
        finally:
            retrykit.testing.reset()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
