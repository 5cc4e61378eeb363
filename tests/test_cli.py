"""The retrykit command: explain, stats, analyze, demo; output and exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid

import pytest

from retrykit import _cli
from retrykit.stats import MemoryStore, RedisStore, StatsRecorder

from .test_stats import NET, RATE, call


def _main(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = _cli.main(list(args), out=out)
    return code, out.getvalue()


def test_explain_tracking() -> None:
    """explain shows each category's decision and delays (jitter as a range)."""
    code, out = _main("explain", "tracking")
    assert 0 == code
    lines = out.splitlines()
    assert "policy 'tracking': no whole-call limits" == lines[0]
    assert "network_error    retry_with_backoff        4  5s, 10s, 20s, 40s" in out
    assert "api_rate_limit   retry_with_delay          3  5m, 10m, 20m" in out
    assert "data_error       no_retry                  0  -" in out
    assert "temporary_error  retry_with_backoff        5  0s-10s, 0s-20s, 0s-40s, 0s-1m20s, 0s-2m40s" in out


def test_explain_json_and_retries_limit() -> None:
    """explain --json gives machine-readable ranges; --retries limits how many are shown."""
    code, out = _main("explain", "http", "--json", "--retries", "2")
    data = json.loads(out)
    assert (0, 5, "http") == (code, data["max_attempts"], data["policy"])
    assert [[0.0, 0.2], [0.0, 0.4]] == data["categories"]["network_error"]["delays"]
    assert data["categories"]["network_error"]["more"] is True


def test_explain_a_policy_by_import_path() -> None:
    """explain module:attribute loads a user's Policy."""
    code, out = _main("explain", "tests.test_cli:CUSTOM")
    assert 0 == code
    assert "policy 'custom': max_attempts 2, deadline 30s" in out


from retrykit import Policy  # noqa: E402

CUSTOM = Policy(max_attempts=2, deadline=30, name="custom")


@pytest.mark.parametrize(
    ("args", "code", "message", "usage"),
    [
        (["explain", "nope"], 2, "is not a known preset", False),
        (["explain", "os:path"], 1, "is not a retrykit Policy", False),
        (["explain", "no_such_module:x"], 1, "cannot import", False),
        (["explain", "http", "--retries", "0"], 1, "--retries must be 1 or more", False),
        (["analyze", "--redis", "redis://127.0.0.1:1/0"], 1, "cannot read statistics from Redis", False),
        (["stats", "--redis", "localhost"], 2, "must be a Redis URL", False),
        # argparse rejects --since itself: its usage, then the one line of the error
        (["analyze", "--since", "soon"], 2, "is not a duration", True),
    ],
)
def test_errors_are_one_line_and_non_zero(args: list[str], code: int, message: str, usage: bool) -> None:
    """Bad input is one line on stderr (after argparse's usage, if argparse rejected it) and a
    non-zero exit, never a traceback."""
    proc = subprocess.run([sys.executable, "-m", "retrykit._cli", *args], capture_output=True, text=True)
    assert code == proc.returncode
    assert "Traceback" not in proc.stderr
    *before, error = proc.stderr.strip().splitlines()
    assert message in error
    if usage:
        assert before[0].startswith(f"usage: retrykit {args[0]} ")
        assert all(line.startswith(" ") for line in before[1:])  # the usage's continuation lines
    else:
        assert [] == before


def test_stats_and_analyze_of_a_demo_run() -> None:
    """Without --redis, stats and analyze run the demo and report its figures."""
    code, out = _main("analyze")
    assert 0 == code
    assert "analysis of demo.get" in out
    assert "categories        temporary_error 5, network_error 2, api_rate_limit 2, data_error 1" in out
    code, out = _main("stats", "--json")
    data = json.loads(out)
    assert (0, 10, 8, 3) == (code, data["total_errors"], data["retries"], data["late_successes"])
    assert "suggestions" not in data


def test_analyze_reads_the_fleet_from_redis(redis_url: str) -> None:
    """analyze --redis reads what every worker recorded."""
    prefix = "retrykit"  # the command reads the default prefix; the operation's name is the test's own
    op = f"rktest-fleet-{uuid.uuid4().hex[:6]}"
    store = RedisStore(redis_url, prefix=prefix, flush_interval=3600)
    rec = StatsRecorder(MemoryStore(), store)
    try:
        for _ in range(3):
            call(rec, op, [NET, RATE], "ok")
        assert store.flush()
        code, out = _main("analyze", "--redis", redis_url, "--operation", op, "--since", "1h", "--json")
        data = json.loads(out)
        assert (0, "redis", 6, 3) == (code, data["source"], data["total_errors"], data["late_successes"])
    finally:
        store.close()
        store.client.delete(*store.client.keys(f"{prefix}:{{{op}}}:*"))
        store.client.srem(f"{prefix}:operations", op)


def test_demo_ends_with_the_analysis() -> None:
    """retrykit demo prints its analysis at the end."""
    code, out = _main("demo", "--time-scale", "0.001")
    assert 0 == code
    assert "analysis of demo.get" in out.split("summary", 1)[1]
    assert "retry success" in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_only() -> None:
    """The progress line is drawn on a terminal and absent when output is piped."""
    tty = _Terminal()
    with _cli.progress("working", tty) as update:
        update("1/2")
    assert "| working" in tty.getvalue()
    assert tty.getvalue().endswith("\r\033[K")
    piped = io.StringIO()
    with _cli.progress("working", piped) as update:
        update("1/2")
    assert "" == piped.getvalue()
