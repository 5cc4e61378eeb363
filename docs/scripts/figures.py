"""
Draw the docs' figures as SVG, from retrykit's own code and the benchmarks' data.

    python benchmarks/overload.py --series docs/data/overload.json   # the simulation's data
    python docs/scripts/figures.py [OUT_DIR]                         # docs/img by default

- ``jitter.svg``: the delay before each retry under each jitter mode, drawn by
  ``retrykit.Strategy.delay_for`` itself (median and 5-95 % band of 2,000 seeded draws);
- ``overload.svg``: requests per second reaching the dependency in the overload simulation,
  per configuration (``docs/data/overload.json``, written by ``benchmarks/overload.py``);
- ``layers.svg``: the calls a nested 3-attempt function makes, counted in a real run of
  retrykit and of tenacity;
- ``celery.svg``: how a Celery task's retries travel (worker, broker countdown, worker loss).

The output is the same on every run (seeded draws, no dates, fixed hash salt): CI draws the
figures again and fails if they differ from the committed ones (.ci/run). Text stays text in
the SVG (no embedded fonts), so the pictures are small and use the page's font.
"""

from __future__ import annotations

import contextlib
import json
import random
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # a checkout's retrykit when run from one

import retrykit  # noqa: E402
from retrykit import Jitter, Strategy  # noqa: E402

INK = "#263238"
MUTED = "#78909c"
COLORS = {"none": "#546e7a", "full": "#1e88e5", "equal": "#43a047", "decorrelated": "#e53935"}
FIRST, RETRY, OK = "#90a4ae", "#e53935", "#43a047"

plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "svg.hashsalt": "retrykit",
        "font.family": "sans-serif",
        "font.size": 11,
        "axes.edgecolor": MUTED,
        "axes.labelcolor": INK,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "xtick.color": INK,
        "ytick.color": INK,
        "text.color": INK,
        "figure.facecolor": "white",
    }
)


def save(figure: plt.Figure, out: Path, name: str) -> None:
    """Write one figure, with no date and no per-run ids."""
    figure.savefig(out / name, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(figure)


def jitter(out: Path) -> None:
    """Delay before retries 1-8 of ``Strategy.backoff(1, 30)`` under each jitter mode."""
    retries = list(range(1, 9))
    figure, ax = plt.subplots(figsize=(8, 4.2))
    for mode in Jitter:
        strategy = Strategy.backoff(1.0, 30.0, max_retries=len(retries), jitter=mode)
        rng = random.Random(7)
        draws: list[list[float]] = [[] for _ in retries]
        for _ in range(2000):
            previous = None
            for index, retry in enumerate(retries):
                previous = strategy.delay_for(retry, previous=previous, rng=rng.random)
                draws[index].append(previous)
        low = [statistics.quantiles(d, n=20)[0] for d in draws]
        high = [statistics.quantiles(d, n=20)[-1] for d in draws]
        middle = [statistics.median(d) for d in draws]
        color = COLORS[mode.value]
        ax.fill_between(retries, low, high, color=color, alpha=0.12, linewidth=0)
        ax.plot(retries, middle, marker="o", color=color, label=f'jitter="{mode.value}"')
    ax.axhline(30, color=MUTED, linestyle=":", linewidth=1)
    ax.text(1, 30.6, "max_delay = 30 s", color=MUTED, fontsize=9)
    ax.set_xlabel("retry number")
    ax.set_ylabel("delay before the retry (s)")
    ax.set_title("Strategy.backoff(1, 30): median and 5-95 % of 2,000 draws", fontsize=11)
    ax.set_xticks(retries)
    ax.set_ylim(0, 34)
    ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    save(figure, out, "jitter.svg")


def overload(out: Path) -> None:
    """The overload simulation's load on the dependency over time, one panel a configuration."""
    data = json.loads((ROOT / "docs" / "data" / "overload.json").read_text())
    rows = data["rows"]
    top = max(f + r for row in rows for f, r in zip(row["first"], row["retry"], strict=True)) * 1.25
    figure, axes = plt.subplots(3, 3, figsize=(10, 7.6), sharex=True, sharey=True)
    for ax, row in zip(axes.flat, rows, strict=True):
        seconds = list(range(len(row["first"])))
        ax.axvspan(data["down"], data["up"], color="#eceff1", linewidth=0)
        ax.stackplot(seconds, row["first"], row["retry"], colors=[FIRST, RETRY], linewidth=0, step="post")
        ax.step(seconds, row["succeeded"], where="post", color=OK, linewidth=1.2)
        ax.axhline(data["capacity"], color=INK, linestyle=":", linewidth=0.8)
        recovery = "never" if row["recovery"] is None else f"{row['recovery']:.0f} s"
        ax.set_title(row["name"], fontsize=9.5)
        ax.text(
            0.98,
            0.95,
            f"retries {row['amplification']:.0%} of calls\nrecovered in {recovery}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            color=INK,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
        )
        ax.set_ylim(0, top)
        ax.set_xlim(0, len(seconds) - 1)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("requests / s")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=FIRST),
        plt.Rectangle((0, 0), 1, 1, color=RETRY),
        plt.Line2D([], [], color=OK),
        plt.Line2D([], [], color=INK, linestyle=":"),
        plt.Rectangle((0, 0), 1, 1, color="#eceff1"),
    ]
    labels = ["first attempts", "retries", "successes", "capacity (750/s)", "dependency down"]
    figure.legend(handles, labels, loc="lower center", ncol=5, frameon=False, bbox_to_anchor=(0.5, -0.02))
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    save(figure, out, "overload.svg")


def nested_calls() -> dict[str, int]:
    """Calls of an inner function when a 3-attempt layer calls a 3-attempt layer, really run."""
    import logging

    import tenacity

    from retrykit.testing import no_wait

    logging.getLogger("retrykit").disabled = True  # the figure, not the log lines
    counts = {"retrykit": 0, "tenacity": 0}
    three = retrykit.Policy(strategies={"network_error": Strategy.immediately(max_retries=2)})

    @retrykit.retry(three)
    def inner() -> None:
        counts["retrykit"] += 1
        raise ConnectionResetError("down")

    @retrykit.retry(three)
    def outer() -> None:
        inner()

    stop = tenacity.stop_after_attempt(3)

    @tenacity.retry(stop=stop, reraise=True, sleep=lambda _: None)
    def t_inner() -> None:
        counts["tenacity"] += 1
        raise ConnectionResetError("down")

    @tenacity.retry(stop=stop, reraise=True, sleep=lambda _: None)
    def t_outer() -> None:
        t_inner()

    with no_wait():
        for call in (outer, t_outer):
            with contextlib.suppress(ConnectionResetError):
                call()
    return counts


def layers(out: Path) -> None:
    """3 x 3 attempts: 9 calls with tenacity in tenacity, 3 with retrykit in retrykit."""
    counts = nested_calls()
    figure, axes = plt.subplots(2, 1, figsize=(8, 3.3))
    panels = [
        ("tenacity inside tenacity (3 attempts each)", counts["tenacity"], 3, RETRY),
        ("retrykit inside retrykit (3 attempts each)", counts["retrykit"], 1, OK),
    ]
    for ax, (title, calls, outer_attempts, color) in zip(axes, panels, strict=True):
        per_outer = calls // outer_attempts
        for outer_index in range(outer_attempts):
            start = outer_index * 3.4
            ax.add_patch(
                FancyBboxPatch(
                    (start, 0.55), 3.2, 0.4, boxstyle="round,pad=0.02", color="#cfd8dc", linewidth=0
                )
            )
            ax.text(
                start + 1.6, 0.75, f"outer attempt {outer_index + 1}", ha="center", va="center", fontsize=9
            )
            for inner_index in range(per_outer):
                x = start + 0.1 + inner_index * 1.05
                ax.add_patch(FancyBboxPatch((x, 0.05), 0.95, 0.38, boxstyle="round,pad=0.02", color=color))
                ax.text(x + 0.475, 0.24, "call", ha="center", va="center", fontsize=9, color="white")
        if outer_attempts == 1:
            ax.text(
                3.6,
                0.5,
                "the inner layer gave up;\nthe outer one let its exception through",
                ha="left",
                va="center",
                fontsize=9,
                color=MUTED,
            )
        ax.text(
            10.4, 0.5, f"{calls} calls", ha="left", va="center", fontsize=13, fontweight="bold", color=color
        )
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_xlim(-0.1, 11.8)
        ax.set_ylim(0, 1)
        ax.axis("off")
    figure.tight_layout()
    save(figure, out, "layers.svg")


def celery(out: Path) -> None:
    """A task's attempts: a failure, a countdown held by the broker, a worker lost, a success."""
    figure, ax = plt.subplots(figsize=(9, 6.4))
    lanes = {"worker A": 0.0, "broker": 1.0, "worker B": 2.0}
    for name, x in lanes.items():
        ax.text(x, 10.1, name, ha="center", va="bottom", fontsize=11, fontweight="bold")
        ax.plot([x, x], [1.4, 9.9], color=MUTED, linewidth=1, linestyle="--", zorder=0)

    def arrow(x0: float, y0: float, x1: float, y1: float, label: str, color: str = INK) -> None:
        ax.add_patch(
            FancyArrowPatch(
                (x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, color=color, linewidth=1.3
            )
        )
        ax.text(
            (x0 + x1) / 2, (y0 + y1) / 2 + 0.12, label, ha="center", va="bottom", fontsize=8.5, color=color
        )

    def box(x: float, top: float, height: float, label: str, color: str) -> None:
        ax.add_patch(
            FancyBboxPatch((x - 0.09, top - height), 0.18, height, boxstyle="round,pad=0.01", color=color)
        )
        ax.text(x + 0.14, top - height / 2, label, ha="left", va="center", fontsize=8.5)

    arrow(1.0, 9.5, 0.0, 9.2, "task.delay(): attempt 1")
    box(0.0, 9.1, 0.8, "attempt 1: ConnectionResetError\nnetwork_error: retry", RETRY)
    arrow(0.0, 8.0, 1.0, 7.6, "self.retry(countdown=the policy's delay)")
    box(1.0, 7.5, 1.2, "the broker holds the wait:\nno worker sleeps", FIRST)
    arrow(1.0, 6.1, 2.0, 5.7, "delivered when due: attempt 2")
    box(2.0, 5.6, 0.8, "attempt 2: its process dies\n(SIGKILL, OOM killer)", INK)
    arrow(2.0, 4.6, 1.0, 4.2, "main process counts it: AttemptLost, retry", RETRY)
    box(1.0, 4.1, 0.9, "the next countdown", FIRST)
    arrow(1.0, 3.0, 0.0, 2.6, "attempt 3 (request.retries = 2)")
    box(0.0, 2.5, 0.8, "attempt 3: SUCCESS\n(max_attempts=3: never a 4th)", OK)
    ax.text(
        1.0,
        0.7,
        "each attempt is claimed in the attempt ledger (Redis) before its body runs:\n"
        "a redelivered message never runs an attempt's body twice",
        ha="center",
        fontsize=8.5,
        color=MUTED,
    )
    ax.set_xlim(-0.5, 2.9)
    ax.set_ylim(0, 10.6)
    ax.axis("off")
    save(figure, out, "celery.svg")


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    jitter(out)
    overload(out)
    layers(out)
    celery(out)
    for path in sorted(out.glob("*.svg")):
        print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
