"""esmeperf-compare's PNG: base and new side by side, one row of panels per parameter set.

Left, messages sent per second against the seconds since each run's start (every run a line,
base blue, new orange); right, the round-trip percentiles as paired bars (the mean over the
runs, whiskers from the lowest to the highest run). matplotlib's Agg canvas and a Figure
object: no pyplot, so no global state and no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .rules import WORSE, Comparison

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..results.rundata import RunData

BASE, NEW = "tab:blue", "tab:orange"
LATENCY_ROWS = ("round trip p50", "round trip p90", "round trip p99", "round trip max")


def comparison_figure(comparisons: Sequence[tuple[str, Comparison]],
                      runs: Sequence[tuple[Sequence[RunData], Sequence[RunData]]]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4 * len(comparisons)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(comparisons), 2, squeeze=False)
    for (label, comparison), (base, new), (left, right) in zip(comparisons, runs, axes,
                                                               strict=True):
        _rates(left, base, new, label)
        _latencies(right, comparison, label)
    return fig


def _rates(ax: Axes, base: Sequence[RunData], new: Sequence[RunData], label: str) -> None:
    for runs, colour, name in ((base, BASE, "base"), (new, NEW, "new")):
        for index, run in enumerate(runs):
            if not run.rows:
                continue
            start = run.rows[0]["second"]
            ax.plot([r["second"] - start for r in run.rows], [int(r["sent"]) for r in run.rows],
                    color=colour, alpha=0.8 if len(runs) == 1 else 0.5, linewidth=1.2,
                    label=name if index == 0 else None)
    ax.set_title(f"messages sent per second{': ' + label if label else ''}")
    ax.set_xlabel("seconds since the run's start")
    ax.set_ylabel("messages/s")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def _latencies(ax: Axes, comparison: Comparison, label: str) -> None:
    rows = [r for r in comparison.rows if r.figure.label in LATENCY_ROWS]
    names = [r.figure.label.removeprefix("round trip ") for r in rows]
    width = 0.38
    for offset, side, colour in ((-width / 2, "base", BASE), (width / 2, "new", NEW)):
        xs, heights, low, high = [], [], [], []
        for x, row in enumerate(rows):
            values: list[float] = getattr(row, side)
            if not values:
                continue
            mean = sum(values) / len(values)
            xs.append(x + offset)
            heights.append(mean)
            low.append(mean - min(values))
            high.append(max(values) - mean)
        ax.bar(xs, heights, width, color=colour, label=side,
               yerr=[low, high] if any(low + high) else None, capsize=3)
    for x, row in enumerate(rows):
        if not row.base or not row.new:
            ax.annotate("n/a", (x, 0), ha="center", va="bottom", color="0.4")
        elif row.verdict == WORSE:
            ax.annotate("regressed", (x, max(row.new)), ha="center", va="bottom",
                        color="tab:red", fontsize=9)
    ax.set_xticks(range(len(rows)), names)
    ax.set_yscale("symlog", linthresh=1.0)
    tallest = max([v for r in rows for v in r.base + r.new] or [1.0])
    ax.set_ylim(0, tallest * 4)  # room for the labels above the bars, under the title
    ax.set_title(f"round trip, ms{': ' + label if label else ''}")
    ax.set_ylabel("ms")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left")


def plot_comparison(comparisons: Sequence[tuple[str, Comparison, Sequence[RunData],
                                              Sequence[RunData]]], path: Path) -> Path:
    """Draw comparison_figure() to a PNG file."""
    fig = comparison_figure([(label, c) for label, c, _, _ in comparisons],
                            [(base, new) for _, _, base, new in comparisons])
    fig.savefig(path, format="png")
    return path

