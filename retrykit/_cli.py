"""The ``retrykit`` command."""

from __future__ import annotations

import argparse
import sys

from ._errors import ConfigError


def _positive_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be in (0, 1], e.g. 0.1")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``retrykit demo``."""
    parser = argparse.ArgumentParser(
        prog="retrykit", description="Classify every failure, retry it in exactly one layer."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="call a flaky local HTTP service through @retrykit.retry")
    demo.add_argument(
        "--time-scale",
        type=_positive_fraction,
        default=0.1,
        help="sleep this fraction of each wait for real (default 0.1; 1 for real time)",
    )
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(version("retrykit"))
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        from . import _config, _demo

        _config.check()
        return _demo.run(time_scale=args.time_scale)
    except ConfigError as err:
        print(f"retrykit: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
