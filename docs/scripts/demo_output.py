"""
Write what ``retrykit demo`` prints to docs/data/demo.txt, which Getting started shows.

CI runs it before building the site (.ci/run), so the page shows the output of the code being
built, not a copy that goes stale. The committed file is a recent run.

    python docs/scripts/demo_output.py [PATH]
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    from retrykit import _cli

    path = Path(argv[0]) if argv else ROOT / "docs" / "data" / "demo.txt"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = _cli.main(["demo"])
    text = out.getvalue()
    if status != 0 or "Celery part skipped" in text:
        print(f"demo_output: the demo did not run as scripted (exit {status}):\n{text}", file=sys.stderr)
        return 1
    path.write_text(text)
    print(f"{path}: {len(text.splitlines())} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
