"""The ``retrykit`` command: ``demo``, ``explain``, ``stats``, ``analyze``."""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ._analysis import Analysis, fmt_seconds, render_analysis
from ._errors import ConfigError

if TYPE_CHECKING:
    from typing import TypeAlias

    from ._policy import Policy

    OverloadStates: TypeAlias = tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]
    """The budgets' and the breakers' states by key, as ``overload_states()`` gives them."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


EXIT_FAILED = 1
"""The operation failed (Redis unreachable, a module that raised on import, no figures to report)."""
EXIT_USAGE = 2
"""Bad arguments or settings."""


class CommandError(Exception):
    """A problem to report as one line, with exit status *code* (1 unless the arguments are bad)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (``retrykit: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"retrykit: {message} (see {self.prog} --help)\n")


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


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


def _load_policy(spec: str) -> Policy:
    from ._policy import Policy, get_preset, preset_names

    if ":" not in spec:
        names = preset_names()
        if spec not in names:
            close = difflib.get_close_matches(spec, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise CommandError(
                f"{spec!r} is not a known preset; {hint}known: {', '.join(names)} "
                "(or module:attribute for a Policy of yours)",
                EXIT_USAGE,
            )
        return get_preset(spec)
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name is not None and (module_name + ".").startswith(err.name + ".")
        code = EXIT_USAGE if missing else EXIT_FAILED  # the spec is wrong, or the module is broken
        raise CommandError(f"cannot import {module_name!r} for {spec!r}: {err}", code) from None
    except Exception as err:
        raise CommandError(
            f"cannot import {module_name!r} for {spec!r}: {type(err).__name__}: {err}"
        ) from None
    policy = getattr(module, attr, None)
    if _is_celery_task(policy):
        return _celery_policy_of(policy)  # its policy, or the one its Celery options make
    if not isinstance(policy, Policy):
        raise CommandError(
            f"{spec!r} is not a retrykit Policy or a Celery task (found {type(policy).__name__})", EXIT_USAGE
        )
    return policy


def _celery_policy_of(task: object) -> Policy:
    """The policy of a Celery task, from retrykit-celery's ``retrykit.explain`` entry point."""
    from importlib.metadata import entry_points

    found = [e for e in entry_points(group="retrykit.explain") if e.name == "celery"]
    if not found:
        raise CommandError(
            f"{task!r} is a Celery task; explaining it needs the Celery adapter: pip install retrykit-celery",
            EXIT_USAGE,
        )
    policy_of: Callable[[object], Policy] = found[0].load()
    return policy_of(task)


def _is_celery_task(obj: object) -> bool:
    task = getattr(sys.modules.get("celery.app.task"), "Task", None)
    return task is not None and (isinstance(obj, task) or (isinstance(obj, type) and issubclass(obj, task)))


def _rules(policy: Policy) -> list[str]:
    """The policy's own classifier rules, in order: what decides the category before the built-in ones."""
    classifier = policy.classifier
    if classifier is None:
        return []
    lines = []
    for rule in classifier.rules:
        types = getattr(rule, "types", ())
        what = ", ".join(t.__name__ for t in types) if types else getattr(rule, "name", "") or "a rule"
        reason = getattr(rule, "reason", None)
        category = getattr(rule, "category", None)
        shown = category.value if category is not None else "its category"
        lines.append(f"{what} -> {shown}" + (f" ({reason})" if reason else ""))
    if not classifier.builtin:
        lines.append(f"no built-in rules; anything else -> {classifier.default.value}")
    return lines


def _category_rows(policy: Policy, retries: int) -> dict[str, dict[str, Any]]:
    """Each category's decision, retries, jitter, Retry-After and delay ranges (up to *retries*)."""
    from ._classify import ErrorCategory

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
    return rows


def _category_line(name: str, row: dict[str, Any]) -> str:
    """One category's row of the table ``explain`` prints."""
    if row["delays"] is None:
        delays = "-" if row["decision"] == "no_retry" else "tenacity wait (see the strategy)"
    else:
        parts = [
            fmt_seconds(lo) if lo == hi else f"{fmt_seconds(lo)}-{fmt_seconds(hi)}"
            for lo, hi in row["delays"]
        ]
        delays = ", ".join(parts) + (", ..." if row["more"] else "")
    retries_text = "-" if row["max_retries"] is None else str(row["max_retries"])
    return f"  {name:<16} {row['decision']:<19} {retries_text:>7}  {delays}"


def explain(spec: str, retries: int, as_json: bool, out: TextIO) -> int:
    """Print each category's decision and delay range per retry."""
    policy = _load_policy(spec)
    rows = _category_rows(policy, retries)
    header: dict[str, Any] = {
        "policy": policy.name or spec,
        "max_attempts": policy.max_attempts,
        "deadline": policy.deadline,
        "attempt_timeout": policy.attempt_timeout,
    }
    rules = _rules(policy)
    if as_json:
        header["rules"] = rules
        header["overload"] = {
            "budget": None if policy.budget is None else policy.budget.describe(),
            "breaker": None if policy.breaker is None else policy.breaker.describe(),
        }
        json.dump({**header, "categories": rows}, out, indent=2)
        out.write("\n")
        return 0
    limits = ", ".join(
        f"{k} {fmt_seconds(v) if k != 'max_attempts' else v}"
        for k, v in header.items()
        if k != "policy" and v is not None
    )
    print(f"policy {header['policy']!r}: {limits or 'no whole-call limits'}", file=out)
    print(f"  {'category':<16} {'decision':<19} {'retries':>7}  delay before retry 1, 2, 3, ...", file=out)
    for name, row in rows.items():
        print(_category_line(name, row), file=out)
    print("  jitter ranges are shown as low-high; a server's Retry-After replaces the delay", file=out)
    for line in rules:
        print(f"  classified: {line}", file=out)
    overload = policy.guard.describe() if policy.guard is not None else []
    for line in overload or ["no retry budget, no circuit breaker"]:
        print(f"  overload: {line}", file=out)
    return 0


NO_FIGURES = (
    "no figures: without --redis, {command} reports the retrykit events of the process running it, "
    "and this one recorded none; pass --redis URL to read what your workers recorded "
    "(or run `retrykit demo` to see an analysis)"
)


def _analysis(redis_url: str | None, operation: str | None, since: float, overload_prefix: str) -> Analysis:
    from . import _analysis, _stats

    if redis_url:
        store = _stats.RedisStore(redis_url, background=False)
        try:
            now = time.time()
            with progress("reading statistics from Redis"):
                counts = store.read(operation, now - since, now)
                overload = _fleet_overload(redis_url, overload_prefix)
        except _stats.StatsUnavailable as err:
            raise CommandError(str(err)) from None
        return _analysis.from_counts(
            counts, operation=operation, since=now - since, until=now, source="redis", overload=overload
        )
    return _analysis.analyze(operation, since)  # this process's figures (or stats_redis_url's)


def _fleet_overload(redis_url: str, prefix: str) -> OverloadStates:
    """Every budget and breaker of the fleet in the Redis overload store under *prefix*."""
    from ._overload import overload_states
    from ._overload_redis import RedisOverloadStore
    from ._redis import errors

    store = RedisOverloadStore(redis_url, prefix=prefix, timeout=2.0, flush_timeout=2.0, background=False)
    try:
        fleet = store.fleet()
    except errors() as err:
        raise CommandError(
            f"cannot read the overload store (prefix {prefix!r}) from Redis at {store.shown_url}: "
            f"{type(err).__name__}: {err}"
        ) from None
    return overload_states(fleet)


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from . import _config

    _config.check()
    if args.command == "demo":
        from . import _demo

        return _demo.run(time_scale=args.time_scale, out=out, analysis=True)
    if args.command == "explain":
        return explain(args.policy, args.retries, args.json, out)
    analysis = _analysis(args.redis, args.operation, args.since, args.overload_prefix)
    if not args.redis and analysis.source == "memory" and not analysis.total_errors:
        raise CommandError(NO_FIGURES.format(command=args.command))
    if args.json:  # one document for stats and analyze
        json.dump(analysis.to_dict(), out, indent=2)
        out.write("\n")
        return 0
    if args.command == "stats":
        analysis = analysis.__class__(**{**analysis.__dict__, "suggestions": []})
    render_analysis(analysis, out)
    if analysis.source == "memory":
        print("  (the figures of this process only; --redis URL reads every worker's)", file=out)
    return 0


def _parser() -> _Parser:
    """The command line: ``--version`` and the commands ``demo``, ``explain``, ``stats``, ``analyze``."""
    parser = _Parser(prog="retrykit", description="Classify every failure, retry it in exactly one layer.")
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
    exp.add_argument("--retries", type=_at_least_one, default=6, help="how many retries to show (default 6)")
    exp.add_argument("--json", action="store_true", help="machine-readable output")
    for name, text in (("stats", "error statistics"), ("analyze", "error analysis with suggestions")):
        cmd = sub.add_parser(name, help=f"{text}: of every worker with --redis, else of this process")
        cmd.add_argument("--redis", metavar="URL", help="read the fleet's statistics from Redis")
        cmd.add_argument("--operation", help="one operation (function or task name)")
        cmd.add_argument("--since", type=_duration, default=86400.0, help="window, e.g. 15m, 1h (default 1d)")
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
        cmd.add_argument(
            "--overload-prefix",
            default="retrykit-overload",
            metavar="PREFIX",
            help="with --redis: the overload store's key prefix (default retrykit-overload)",
        )
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point."""
    out = out or sys.stdout
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # bad arguments (2), --help (0): a status, in-process too
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
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
        return EXIT_USAGE if isinstance(err, ConfigError) else err.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
