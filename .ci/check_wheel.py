"""
CI: a wheel built from a clean checkout holds every module of its package and nothing else (no
tests, no benchmarks): ``retrykit`` (with ``retrykit.adapters``) for retrykit-engine, or the
package folder given, e.g. ``adapters/http/retrykit_http`` for retrykit-http.

``python .ci/check_wheel.py dist/retrykit_engine-*.whl``
``python .ci/check_wheel.py dist/retrykit_http-*.whl adapters/http/retrykit_http``
``python .ci/check_wheel.py dist/retrykit_celery-*.whl adapters/celery/retrykit_celery``
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
wheel = Path(sys.argv[1])
package = root / (sys.argv[2] if len(sys.argv) > 2 else "retrykit")
meta = f"{wheel.name.split('-')[0]}-"  # the .dist-info folder
names = {n for n in zipfile.ZipFile(wheel).namelist() if not n.startswith(meta)}
expected = {f"{package.name}/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
expected.add(f"{package.name}/py.typed")
missing, extra = sorted(expected - names), sorted(names - expected)
if missing or extra:
    print(f"{wheel.name}: missing {missing}, unexpected {extra}", file=sys.stderr)
    sys.exit(1)
print(f"{wheel.name}: {len(names)} files, every module of {package.name} and nothing else")
