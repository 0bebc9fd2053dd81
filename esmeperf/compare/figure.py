"""esmeperf-compare's PNG: base and new side by side, one row of panels per parameter set.

Left, messages sent per second against the seconds since each run's start (every run a line,
base blue, new orange, the partial first and last seconds hollow and not joined, as in a run's
PNG); right, the round-trip percentiles as paired bars on a log axis (the mean over the runs,
whiskers from the lowest to the highest run). One legend for the figure names each side by its
directory. matplotlib's Agg canvas and a Figure object: no pyplot, so no global state and no
display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..plot.figures import draw_rate, partial_seconds
from .rules import WORSE, Comparison

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..results.rundata import RunData

BASE, NEW = "tab:blue", "tab:orange"
LATENCY_ROWS = ("round trip p50", "round trip p90", "round trip p99", "round trip max")


def side_names(base: str, new: str) -> tuple[str, str]:
    """The legend's names of the two sides: their directories' names, each with its role."""
    return f"{base} (base)", f"{new} (new)"


def comparison_figure(comparisons: Sequence[tuple[str, Comparison]],
                      runs: Sequence[tuple[Sequence[RunData], Sequence[RunData]]],
                      names: tuple[str, str] = ("base", "new")) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fig = Figure(figsize=(12, 0.5 + 4 * len(comparisons)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(comparisons), 2, squeeze=False)
    for (label, comparison), (base, new), (left, right) in zip(comparisons, runs, axes,
                                                               strict=True):
        _rates(left, base, new, label)
        _latencies(right, comparison, label)
    fig.legend(handles=[Patch(color=BASE, label=names[0]), Patch(color=NEW, label=names[1])],
               loc="outside upper center", ncols=2, frameon=False)
    return fig


def _rates(ax: Axes, base: Sequence[RunData], new: Sequence[RunData], label: str) -> None:
    from matplotlib.ticker import MaxNLocator

    for runs, colour in ((base, BASE), (new, NEW)):
        for run in runs:
            if not run.rows:
                continue
            start = int(run.rows[0]["second"])
            draw_rate(ax, [int(r["second"]) - start for r in run.rows],
                  [int(r["sent"]) for r in run.rows], partial_seconds(run.rows),
                  color=colour, alpha=0.8 if len(runs) == 1 else 0.5, linewidth=1.2)
    ax.set_title(f"messages sent per second{': ' + label if label else ''}")
    ax.set_xlabel("seconds since the run's start; hollow: partial seconds")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("messages/s")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def _latencies(ax: Axes, comparison: Comparison, label: str) -> None:
    rows = [r for r in comparison.rows if r.figure.label in LATENCY_ROWS]
    names = [r.figure.label.removeprefix("round trip ") for r in rows]
    values = [v for r in rows for v in r.base + r.new if v > 0]
    lowest, tallest = min(values, default=1.0), max(values, default=1.0)
    # A log axis from under the lowest run to well over the tallest (room for the labels
    # over the bars); the bars start at its floor.
    floor = lowest / 3
    width = 0.38
    for offset, side, colour in ((-width / 2, "base", BASE), (width / 2, "new", NEW)):
        xs, heights, low, high = [], [], [], []
        for x, row in enumerate(rows):
            runs: list[float] = getattr(row, side)
            if not runs:
                continue
            mean = sum(runs) / len(runs)
            xs.append(x + offset)
            heights.append(mean - floor)
            low.append(mean - min(runs))
            high.append(max(runs) - mean)
        ax.bar(xs, heights, width, bottom=floor, color=colour,
               yerr=[low, high] if any(low + high) else None, capsize=3)
    for x, row in enumerate(rows):
        if not row.base or not row.new:
            ax.annotate("n/a", (x, 0.03), xycoords=("data", "axes fraction"), ha="center",
                        va="bottom", color="0.4")
        elif row.verdict == WORSE:
            ax.annotate("regressed", (x, max(row.new)), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom",
                        color="tab:red", fontsize=9)
    ax.set_xticks(range(len(rows)), names)
    ax.set_yscale("log")
    ax.set_ylim(floor, tallest * 4)
    ax.set_title(f"round trip, ms (log scale){': ' + label if label else ''}")
    ax.set_ylabel("ms")
    ax.grid(alpha=0.3, axis="y")


def plot_comparison(comparisons: Sequence[tuple[str, Comparison, Sequence[RunData],
                                              Sequence[RunData]]], path: Path,
                    names: tuple[str, str] = ("base", "new")) -> Path:
    """Draw comparison_figure() to a PNG file."""
    fig = comparison_figure([(label, c) for label, c, _, _ in comparisons],
                            [(base, new) for _, _, base, new in comparisons], names)
    fig.savefig(path, format="png")
    return path
