"""
CI: the type completeness of the installed retrykit, as ``pyright --verifytypes`` measures it.

Usage: ``python .ci/check_typing.py MINIMUM`` (a percentage, e.g. 95). Runs from an empty
directory, so pyright checks the package the environment imports (the editable install of
``.ci/run``), not the checkout by its path. Fails below MINIMUM, and lists what lowers the score.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

PACKAGE = "retrykit"


def main() -> int:
    """Print the score and the symbols that lower it; 1 when it is below the minimum."""
    minimum = float(sys.argv[1])
    with tempfile.TemporaryDirectory() as empty:
        run = subprocess.run(
            ["pyright", "--verifytypes", PACKAGE, "--ignoreexternal", "--outputjson"],
            cwd=empty,
            capture_output=True,
            text=True,
            check=False,  # pyright exits 1 whenever a symbol is incomplete, whatever the score
        )
    try:
        report = json.loads(run.stdout)["typeCompleteness"]
    except (ValueError, KeyError):
        print(
            f"check_typing: pyright gave no completeness report:\n{run.stdout}{run.stderr}", file=sys.stderr
        )
        return 1
    score = 100 * report["completenessScore"]
    counts = report["exportedSymbolCounts"]
    total = sum(counts.values())
    print(
        f"type completeness of {PACKAGE}: {score:.1f} % ({counts['withKnownType']} of {total} exported "
        f"symbols known, {counts['withAmbiguousType']} ambiguous, {counts['withUnknownType']} unknown; "
        f"minimum {minimum:g} %)"
    )
    for symbol in report["symbols"]:
        if symbol["isExported"] and not symbol["isTypeKnown"]:
            kind = "ambiguous" if symbol["isTypeAmbiguous"] else "unknown"
            reasons = "; ".join(d["message"].splitlines()[0] for d in symbol["diagnostics"])
            print(f"  {kind}: {symbol['name']}: {reasons}")
    if score < minimum:
        print(f"check_typing: {score:.1f} % is below {minimum:g} %", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
