"""The ``retrykit`` command: ``demo``, ``explain``, ``stats``, ``analyze``."""

from __future__ import annotations

import argparse
import importlib
import io
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from ._analysis import fmt_seconds, render_analysis
from ._errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class CommandError(Exception):
    """A problem to report as one line, with exit status 1."""


def _positive_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be in (0, 1], e.g. 0.1")
    return value


def _duration(text: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use e.g. 90s, 15m, 1h or 2d")
    return float(match.group(1)) * _UNITS[match.group(2)]


@contextmanager
def progress(label: str, stream: TextIO | None = None) -> Iterator[Callable[[str], None]]:
    """A spinner on a terminal for work that may take more than a second; silent otherwise."""
    out = stream or sys.stderr
    status = [""]
    if not out.isatty():
        yield lambda text: None
        return
    done = threading.Event()

    def spin() -> None:
        frames = "|/-\\"
        i = 0
        while True:  # the first frame at once, then every 0.1 s until done
            out.write(f"\r{frames[i % 4]} {label} {status[0]}\033[K")
            out.flush()
            i += 1
            if done.wait(0.1):
                break
        out.write("\r\033[K")
        out.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield lambda text: status.__setitem__(0, text)
    finally:
        done.set()
        thread.join()


def _load_policy(spec: str) -> Any:
    from ._policy import Policy, get_preset

    if ":" not in spec:
        return get_preset(spec)
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise CommandError(f"cannot import {module_name!r} for {spec!r}: {err}") from None
    policy = getattr(module, attr, None)
    if not isinstance(policy, Policy):
        raise CommandError(f"{spec!r} is not a retrykit Policy (found {type(policy).__name__})")
    return policy


def explain(spec: str, retries: int, as_json: bool, out: TextIO) -> int:
    """Print each category's decision and delay range per retry."""
    from ._classify import ErrorCategory

    policy = _load_policy(spec)
    rows = {}
    for category in ErrorCategory:
        strategy = policy.strategy_for(category)
        shown = retries if strategy.max_retries is None else min(strategy.max_retries, retries)
        custom = strategy.wait is not None
        rows[category.value] = {
            "decision": strategy.decision.value,
            "max_retries": strategy.max_retries,
            "jitter": strategy.jitter.value,
            "retry_after": "honoured" if strategy.honor_retry_after else "ignored",
            "delays": None
            if custom or not strategy.retries
            else [list(strategy.delay_range(n)) for n in range(1, shown + 1)],
            "more": strategy.max_retries is not None and strategy.max_retries > shown,
        }
    header = {
        "policy": policy.name or spec,
        "max_attempts": policy.max_attempts,
        "deadline": policy.deadline,
        "attempt_timeout": policy.attempt_timeout,
    }
    overload = policy.guard.describe() if policy.guard is not None else []
    if as_json:
        header["overload"] = {
            "budget": None if policy.budget is None else policy.budget.describe(),
            "breaker": None if policy.breaker is None else policy.breaker.describe(),
        }
        json.dump({**header, "categories": rows}, out, indent=2)
        out.write("\n")
        return 0
    limits = (
        ", ".join(
            f"{k} {fmt_seconds(v) if k != 'max_attempts' else v}"
            for k, v in header.items()
            if k not in ("policy", "overload") and v is not None
        )
        or "no whole-call limits"
    )
    print(f"policy {header['policy']!r}: {limits}", file=out)
    print(f"  {'category':<16} {'decision':<19} {'retries':>7}  delay before retry 1, 2, 3, ...", file=out)
    for name, row in rows.items():
        if row["delays"] is None:
            delays = "-" if row["decision"] == "no_retry" else "tenacity wait (see the strategy)"
        else:
            parts = [
                fmt_seconds(lo) if lo == hi else f"{fmt_seconds(lo)}-{fmt_seconds(hi)}"
                for lo, hi in row["delays"]
            ]
            delays = ", ".join(parts) + (", ..." if row["more"] else "")
        retries_text = "-" if row["max_retries"] is None else str(row["max_retries"])
        print(f"  {name:<16} {row['decision']:<19} {retries_text:>7}  {delays}", file=out)
    print("  jitter ranges are shown as low-high; a server's Retry-After replaces the delay", file=out)
    for line in overload or ["no retry budget, no circuit breaker"]:
        print(f"  overload: {line}", file=out)
    return 0


def _analysis(redis_url: str | None, operation: str | None, since: float) -> Any:
    from . import _analysis, _stats

    if redis_url:
        store = _stats.RedisStore(redis_url, background=False)
        try:
            now = time.time()
            with progress("reading statistics from Redis"):
                counts = store.read(operation, now - since, now)
        except _stats.StatsUnavailable as err:
            raise CommandError(str(err)) from None
        return _analysis.from_counts(
            counts, operation=operation, since=now - since, until=now, source="redis"
        )
    from . import _demo

    with progress("running the demo to analyse its statistics") as update:
        _, result = _demo.run_with_analysis(time_scale=0.05, out=io.StringIO(), on_call=update)
    return result


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from . import _config

    _config.check()
    if args.command == "demo":
        from . import _demo

        return _demo.run(time_scale=args.time_scale, out=out, analysis=True)
    if args.command == "explain":
        if args.retries < 1:
            raise CommandError(f"--retries must be 1 or more, not {args.retries}")
        return explain(args.policy, args.retries, args.json, out)
    analysis = _analysis(args.redis, args.operation, args.since)
    if args.command == "stats":
        analysis = analysis.__class__(**{**analysis.__dict__, "suggestions": []})
    if args.json:
        data = analysis.to_dict()
        if args.command == "stats":
            del data["suggestions"]
        json.dump(data, out, indent=2)
        out.write("\n")
    else:
        render_analysis(analysis, out)
    return 0


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point."""
    out = out or sys.stdout
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
    exp = sub.add_parser("explain", help="show what a policy does for each category")
    exp.add_argument("policy", help="a preset name (tracking, http, ...) or module:attribute")
    exp.add_argument("--retries", type=int, default=6, help="how many retries to show (default 6)")
    exp.add_argument("--json", action="store_true", help="machine-readable output")
    for name, text in (("stats", "error statistics"), ("analyze", "error analysis with suggestions")):
        cmd = sub.add_parser(name, help=f"{text}: of a demo run, or of every worker with --redis")
        cmd.add_argument("--redis", metavar="URL", help="read the fleet's statistics from Redis")
        cmd.add_argument("--operation", help="one operation (function or task name)")
        cmd.add_argument("--since", type=_duration, default=86400.0, help="window, e.g. 15m, 1h (default 1d)")
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        from ._errors import DISTRIBUTION

        print(version(DISTRIBUTION), file=out)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _run(args, out)
    except (ConfigError, CommandError) as err:
        print(f"retrykit: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
