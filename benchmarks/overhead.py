"""
Success-path overhead per call, sync and async: run.py's success row on its own, quick to repeat
(same libraries, same setup, interleaved rounds, medians, overhead over the bare call).

``python benchmarks/overhead.py [--rounds N] [--number N]``
"""

from __future__ import annotations

import argparse

from harness import LIBRARIES
from run import KINDS, bench_success, observability


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    observability()
    result = bench_success(args.number, args.rounds)
    print(f"{'case':<16} {'median us/call':>15} {'overhead us':>12} {'spread us':>10}")
    for kind in KINDS:
        for lib in ("bare", *LIBRARIES):
            s = result[kind][lib]
            overhead = f"{s['overhead'] * 1e6:>12.3f}" if "overhead" in s else f"{'':>12}"
            print(f"{kind + ' ' + lib:<16} {s['median'] * 1e6:>15.3f} {overhead} {s['spread'] * 1e6:>10.3f}")
        ratio = result[kind]["tenacity"]["overhead"] / max(result[kind]["retrykit"]["overhead"], 1e-12)
        print(f"{kind}: retrykit's overhead is 1/{ratio:.1f} of tenacity's")


if __name__ == "__main__":
    main()
