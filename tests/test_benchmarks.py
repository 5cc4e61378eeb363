"""The benchmark command runs (quick mode) and checks its own correctness as it goes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_quick_benchmark_runs(tmp_path: Path) -> None:
    """
    `python benchmarks/run.py --quick` finishes with results in markdown and JSON, every
    library's attempt counts exact and the no-op sleep honoured. No timing is asserted.
    """
    pytest.importorskip("stamina")
    pytest.importorskip("backoff")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert 0 == proc.returncode, proc.stderr[-2000:]
    data = json.loads((tmp_path / "results.json").read_text())
    assert {"success", "retry", "gather", "celery", "herd", "versions", "machine"} <= set(data)
    libraries = {"loop", "backoff", "stamina", "tenacity", "retrykit"}
    for kind in ("sync", "async"):
        assert libraries <= set(data["success"][kind])
        retry = data["retry"][kind]
        assert 4 == retry["attempts_per_call"]
        # the harness asserts these on every timed run: a library that slipped past fails it
        assert dict.fromkeys(libraries, 1) == retry["noop_sleeps_per_retry"]
        assert libraries == set(retry["noop"]) == set(retry["real"]) == set(retry["real_sleeps_per_retry"])
    assert dict.fromkeys(libraries, 3) == {lib: g["attempts_per_call"] for lib, g in data["gather"].items()}
    assert data["retrykit_stats_total_errors"] > 0  # retrykit's statistics were on
    text = (tmp_path / "results.md").read_text()
    assert "| success, sync (over the bare call) |" in text
    assert "| per retry, sync, same no-op sleep |" in text
    assert "| per retry, async, own real sleep, 0 s |" in text


def test_noop_sleep_catches_a_library_that_slips_past(monkeypatch: pytest.MonkeyPatch) -> None:
    """A patch point the library does not go through fails the run instead of sleeping quietly."""
    pytest.importorskip("stamina")
    pytest.importorskip("backoff")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import harness
    import run
    import sleeping

    flaky = harness.Flaky(1)
    for fn in (flaky.sync, flaky.asyn):
        assert run.timed("retrykit", sleeping.NOOP, fn, 3, flaky)() >= 0
    monkeypatch.setitem(sleeping.SLEEPS, "retrykit", lambda is_async: "stamina._core:_smart_sleep")
    with pytest.raises(AssertionError, match="slipped past the no-op"):
        run.timed("retrykit", sleeping.NOOP, flaky.asyn, 3, flaky)()


def test_herd_reproduces_the_published_shape() -> None:
    """Full jitter at N=100 (20 runs) lands near the published 796 writes; no-jitter makes waves."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import herd

    results = herd.sweep([100], 20, [0])
    assert abs(results["FullJitter"][100].calls - 796) <= 0.05 * 796
    assert results["Exponential"][100].calls >= 2.2 * results["FullJitter"][100].calls
    assert 0 == herd.empty_bins("FullJitter", runs=20)


def test_classification_cost_compares_two_copies() -> None:
    """`benchmarks/classify_cost.py` loads two copies side by side and prints a ratio per exception kind."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "classify_cost.py"),
            "--before",
            str(ROOT),
            "--rounds",
            "1",
            "--n",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == proc.returncode, proc.stderr[-2000:]
    assert "all recognised" in proc.stdout
    assert "all unknown" in proc.stdout
