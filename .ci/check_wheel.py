"""
CI: the wheel built from a clean checkout holds every module of ``retrykit`` and
``retrykit.adapters`` and nothing else (no tests, no benchmarks).

``python .ci/check_wheel.py dist/retrykit_engine-*.whl``
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
wheel = Path(sys.argv[1])
meta = f"{wheel.name.split('-')[0]}-"  # the .dist-info folder
names = {n for n in zipfile.ZipFile(wheel).namelist() if not n.startswith(meta)}
expected = {f"retrykit/{p.relative_to(root / 'retrykit')}" for p in (root / "retrykit").rglob("*.py")}
expected.add("retrykit/py.typed")
missing, extra = sorted(expected - names), sorted(names - expected)
if missing or extra:
    print(f"{wheel.name}: missing {missing}, unexpected {extra}", file=sys.stderr)
    sys.exit(1)
print(f"{wheel.name}: {len(names)} files, every module of retrykit and retrykit.adapters, nothing else")
