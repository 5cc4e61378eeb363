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
    """`python benchmarks/run.py --quick` finishes, with results in markdown and JSON."""
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
    assert data["success"]["sync"]["retrykit"]["overhead"] < data["success"]["sync"]["tenacity"]["overhead"]
    assert "| success, sync |" in (tmp_path / "results.md").read_text()


def test_herd_reproduces_the_published_shape() -> None:
    """Full jitter at N=100 (20 runs) lands near the published 796 writes; no-jitter makes waves."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import herd

    results = herd.sweep([100], 20, [0])
    assert abs(results["FullJitter"][100].calls - 796) <= 0.05 * 796
    assert results["Exponential"][100].calls >= 2.2 * results["FullJitter"][100].calls
    assert 0 == herd.empty_bins("FullJitter", runs=20)
