"""The retrykit command: explain, stats, analyze, demo; output and exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import retrykit
from retrykit import Strategy, _cli
from retrykit.stats import MemoryStore, RedisStore, StatsRecorder
from retrykit.testing import no_wait

from .flaky import Flaky
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


def test_explain_a_celery_task_shows_the_policy_of_its_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """explain module:task shows the policy a Celery task's own retry options make (the bridge)."""
    pytest.importorskip("celery")
    (tmp_path / "rk_celery_tasks.py").write_text(
        "import celery\n"
        "from retrykit_celery import RetrykitTask\n"
        "app = celery.Celery('shop', broker='memory://', task_cls=RetrykitTask)\n"
        "@app.task(autoretry_for=(ConnectionError,), retry_backoff=2, retry_backoff_max=60,\n"
        "          retry_jitter=False, max_retries=4)\n"
        "def sync_stock(sku): ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out = _main("explain", "rk_celery_tasks:sync_stock")
    assert 0 == code
    assert "policy 'celery:rk_celery_tasks.sync_stock': max_attempts 5" in out
    assert "temporary_error  retry_with_backoff        4  2s, 4s, 8s, 16s" in out
    assert "permanent_error  no_retry                  0  -" in out
    assert "classified: ConnectionError -> temporary_error (in autoretry_for)" in out
    assert "classified: no built-in rules; anything else -> permanent_error" in out


from retrykit import Policy  # noqa: E402

CUSTOM = Policy(max_attempts=2, deadline=30, name="custom")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["explain", "nope"], 2, "is not a known preset"),
        (["explain", "htp"], 2, "'htp' is not a known preset; did you mean 'http'?"),
        (["explain", "os:path"], 2, "is not a retrykit Policy"),
        (["explain", "no_such_module:x"], 2, "cannot import"),
        (["explain", "http", "--retries", "0"], 2, "argument --retries: must be 1 or more, not 0"),
        (["explain", "http", "--retries", "many"], 2, "argument --retries: 'many' is not a whole number"),
        (["explain"], 2, "the following arguments are required: policy"),
        (["stats", "--since"], 2, "argument --since: expected one argument"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        (["analyze", "--redis", "redis://127.0.0.1:1/10"], 1, "cannot read statistics from Redis"),
        (["stats", "--redis", "localhost"], 2, "must be a Redis URL"),
        (["analyze", "--since", "soon"], 2, "is not a duration"),
        (["stats"], 1, "no figures: without --redis, stats reports the retrykit events of the process"),
        (["analyze", "--json"], 1, "no figures: without --redis, analyze reports"),
    ],
)
def test_errors_are_one_line_and_non_zero(args: list[str], code: int, message: str) -> None:
    """Bad input is one line on stderr and exit 2 (a failed operation: 1), never a traceback."""
    proc = subprocess.run([sys.executable, "-m", "retrykit._cli", *args], capture_output=True, text=True)
    assert code == proc.returncode
    assert "Traceback" not in proc.stderr
    assert 1 == len(proc.stderr.strip().splitlines())
    assert message in proc.stderr
    assert "" == proc.stdout


def test_a_module_that_fails_to_import_is_a_failed_operation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """explain module:attribute where the module raises on import: one line, exit 1."""
    (tmp_path / "rk_broken_policies.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert (1, "") == _main("explain", "rk_broken_policies:P")
    assert (
        "retrykit: cannot import 'rk_broken_policies' for 'rk_broken_policies:P': RuntimeError: boom"
        == capsys.readouterr().err.strip()
    )


@pytest.mark.parametrize("command", ["stats", "analyze"])
def test_without_redis_the_figures_are_this_processes(command: str) -> None:
    """Without --redis, stats and analyze report this process's figures and say so; no demo runs."""
    policy = Policy(strategies={"network_error": Strategy.delay(1, max_retries=2)})
    flaky = retrykit.retry(policy, operation="cli.flaky")(Flaky.failing(1))
    with no_wait():
        assert "ok" == flaky()
    code, out = _main(command)
    assert 0 == code
    assert out.startswith("analysis of all operations over the last 1d (source: memory)")
    assert "categories        network_error 1" in out
    assert "the figures of this process only; --redis URL reads every worker's" in out
    assert "demo.get" not in out


def test_stats_and_analyze_share_one_json_schema() -> None:
    """stats --json and analyze --json print the same document, with its source."""
    policy = Policy(strategies={"network_error": Strategy.delay(1, max_retries=2)})
    with no_wait():
        retrykit.retry(policy, operation="cli.flaky")(Flaky.failing(1))()
    stats_code, stats_out = _main("stats", "--json")
    analyze_code, analyze_out = _main("analyze", "--json")
    stats, analysis = json.loads(stats_out), json.loads(analyze_out)
    assert (0, 0) == (stats_code, analyze_code)
    assert set(stats) == set(analysis)
    assert ("memory", 1, 1) == (stats["source"], stats["total_errors"], stats["late_successes"])
    assert {k: v for k, v in stats.items() if k not in ("since", "until")} == {
        k: v for k, v in analysis.items() if k not in ("since", "until")
    }


def test_bad_arguments_in_process_return_two() -> None:
    """main() returns 2 for argparse's errors instead of raising SystemExit."""
    assert (2, "") == _main("explain", "http", "--retries", "0")


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


FLEET_PROCESS = """
import sys

from retrykit import CircuitBreaker, ErrorCategory, RetryBudget
from retrykit.overload import RedisOverloadStore

url, prefix = sys.argv[1:]
store = RedisOverloadStore(url, prefix=prefix, background=False)
payments = RetryBudget.quota("payments", capacity=20, store=store)
print([payments.withdraw(ErrorCategory.NETWORK_ERROR) for _ in range(27)].count(None))
search = RetryBudget("search", ratio=0.2, min_per_second=0.5, window=20, store=store)
for _ in range(10):
    search.admitted()
store.flush()
print(search.withdraw(ErrorCategory.NETWORK_ERROR))
breaker = CircuitBreaker("inventory", min_throughput=4, open_for=60, store=store)
breaker.record(0, 4)
store.flush()
print(breaker.allow() > 0)
"""


@pytest.mark.parametrize("command", ["stats", "analyze"])
def test_redis_shows_the_fleets_budgets_and_breakers(redis_url: str, command: str) -> None:
    """
    Another process charges two Redis budgets (one until it refuses) and opens a breaker:
    stats/analyze --redis show them with their own settings, in text and in the JSON schema.
    """
    url = "redis://127.0.0.1:6379/14"  # the overload store's database (README, Development)
    prefix = f"rk-overload:cli:{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        [sys.executable, "-c", FLEET_PROCESS, url, prefix], capture_output=True, text=True, check=True
    )
    assert ["25", "1", "True"] == proc.stdout.split()
    try:
        code, out = _main(command, "--redis", url, "--overload-prefix", prefix, "--json")
        text_code, text = _main(command, "--redis", url, "--overload-prefix", prefix)
    finally:
        client = RedisStore(url).client
        client.delete(*client.keys(f"{prefix}:*"))
    data = json.loads(out)
    assert (0, 0) == (code, text_code)
    assert {
        "shape": "quota",
        "store": "redis",
        "spent": 2,
        "refused": 25,
        "total_requests": 0,
        "balance": 0.0,
    } == (data["budgets"]["payments"])
    assert (10.0, 1.0, 11.0) == tuple(data["budgets"]["search"][k] for k in ("calls", "retries", "balance"))
    assert ("open", "redis") == (
        data["breakers"]["inventory"]["state"],
        data["breakers"]["inventory"]["store"],
    )
    assert 0 < data["breakers"]["inventory"]["remaining"] <= 60
    assert any("'payments' refused 25 of 27 retries" in tip for tip in data["suggestions"])
    assert "payments (quota): 2 retries spent, 25 refused, balance 0.0 (exhausted) [redis]" in text
    assert "search (ratio): 1 retries spent, 0 refused, balance 11.0 [redis]" in text
    assert "circuit breaker   inventory: open for " in text
