"""
What classification costs, before and after a change, in one process: this checkout's retrykit
against another copy's, both loaded side by side under names of their own (the same import path
for both, so that only the code differs).

``git archive <commit> retrykit | tar -x -C /tmp/before``, then
``python benchmarks/classify_cost.py --before /tmp/before [--rounds 61] [--n 2000]``

Each exception is classified ``n`` times per round by each version, the versions interleaved
round by round; the figure is the fastest round (timeit's advice: slower rounds measure the machine's other load), in microseconds per classification, and
the ratio after/before. "recognised" exceptions are those the rules before the change already
classify (builtins, errnos, chains, HTTP and database classes); "unknown" ones no rule knew.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load(root: Path, name: str = "retrykit_before") -> Any:
    """The ``retrykit`` package found under *root*, imported as *name*."""
    init = root / "retrykit" / "__init__.py"
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _chained(outer: type[BaseException], inner: BaseException) -> BaseException:
    err = outer("wrapped")
    err.__cause__ = inner
    return err


def recognised() -> dict[str, BaseException]:
    """Exceptions the rules already recognised before generic signals (real classes, real chains)."""
    import httpx
    import requests

    return {
        "ConnectionResetError": ConnectionResetError(errno.ECONNRESET, "reset"),
        "OSError ECONNREFUSED": OSError(errno.ECONNREFUSED, "refused"),
        "ValueError": ValueError("bad"),
        "KeyError": KeyError("k"),
        "TimeoutError": TimeoutError(),
        "TypeError": TypeError("t"),
        "FileNotFoundError": FileNotFoundError(errno.ENOENT, "x"),
        "RuntimeError <- ConnectionResetError": _chained(RuntimeError, ConnectionResetError()),
        "httpx.ConnectError": httpx.ConnectError("refused"),
        "httpx.ReadTimeout": httpx.ReadTimeout("slow"),
        "requests.ConnectionError": requests.ConnectionError("x"),
        "requests.HTTPError 503": requests.HTTPError("503", response=_response(503)),
    }


def _response(status: int) -> Any:
    import requests

    response = requests.Response()
    response.status_code = status
    return response


def unknown() -> dict[str, BaseException]:
    """Exceptions of libraries without rules (what the generic signals read)."""
    import ftplib
    import smtplib

    return {
        "smtplib.SMTPRecipientsRefused 550": smtplib.SMTPRecipientsRefused({"a@x": (550, b"no")}),
        "ftplib.error_perm 530": ftplib.error_perm("530 Login incorrect."),
        "RuntimeError (no signal)": RuntimeError("something odd"),
    }


def timed(classify: Callable[[BaseException], Any], exc: BaseException, n: int) -> float:
    """Seconds per classification of *exc*, over *n* calls."""
    started = time.perf_counter()
    for _ in range(n):
        classify(exc)
    return (time.perf_counter() - started) / n


def compare(
    before: Any, after: Any, cases: dict[str, BaseException], rounds: int, n: int
) -> list[tuple[str, float, float]]:
    """(case, before µs, after µs): the fastest of interleaved rounds (the least disturbed by other processes)."""
    rows = []
    for name, exc in cases.items():
        old: list[float] = []
        new: list[float] = []
        before.classify(exc)
        after.classify(exc)
        for r in range(rounds):  # alternate which goes first
            if r % 2:
                new.append(timed(after.classify, exc, n))
            old.append(timed(before.classify, exc, n))
            if not r % 2:
                new.append(timed(after.classify, exc, n))
        rows.append((name, min(old) * 1e6, min(new) * 1e6))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--before", required=True, help="a directory holding the retrykit to compare with")
    parser.add_argument("--rounds", type=int, default=61)
    parser.add_argument("--n", type=int, default=2_000)
    args = parser.parse_args(argv)
    before = load(Path(args.before))
    after = load(Path(__file__).resolve().parent.parent, "retrykit_after")
    for title, cases in (("recognised", recognised()), ("unknown", unknown())):
        rows = compare(before, after, cases, args.rounds, args.n)
        print(f"{title}: µs per classification, before -> after (ratio)")
        for name, old, new in rows:
            print(f"  {name:40} {old:6.2f} -> {new:6.2f}  ({new / old:.2f})")
        total_old = sum(r[1] for r in rows)
        total_new = sum(r[2] for r in rows)
        print(f"  {'all ' + title:40} {total_old:6.2f} -> {total_new:6.2f}  ({total_new / total_old:.2f})")


if __name__ == "__main__":
    main()
