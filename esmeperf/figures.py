"""The PNGs of runs: matplotlib Agg, Figure objects, no pyplot global state.

Each plot has a *_figure() that builds the Figure (tests read it) and a plot_*() that saves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .rundata import RunData, run_name

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

# One colour, one quantity, in every panel and plot.
SENT, DELIVERED, CHATS, PARTICIPANTS = "tab:blue", "tab:green", "tab:orange", "tab:olive"
LATENCY = {"rtt_p50_ms": ("round trip p50", "tab:purple"),
           "rtt_p99_ms": ("round trip p99", "tab:red")}
PARTIAL_SHADE = "0.92"  # neutral: no quantity is drawn in gray
SATURATED_SHADE = "#f4cccc"  # pale red: seconds the generator's own CPU was saturated
SATURATED = 0.90  # health.BUSY: a second at this share of the generator's CPU


def _figure(size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _num(value: Any) -> float | None:
    return None if value in ("", None) else float(value)


def partial_seconds(rows: Sequence[dict[str, Any]]) -> list[bool]:
    """Which rows are seconds the load only partly covered (start, stop, late echoes)."""
    if rows and _num(rows[0].get("load_fraction")) is not None:
        return [(_num(r.get("load_fraction")) or 0.0) < 1.0 for r in rows]
    # The Go test's rates, or a series without load_fraction: the first and last seconds.
    return [i in (0, len(rows) - 1) for i in range(len(rows))]


def _draw(ax: Axes, xs: Sequence[int], ys: Sequence[float | None], partial: Sequence[bool],
          **style: Any) -> Line2D:
    """A line over the whole seconds; the partial ones as hollow markers, not joined to it, so
    the stop's half second is not drawn as a collapse."""
    points = [(x, y, p) for x, y, p in zip(xs, ys, partial, strict=True) if y is not None]
    (line,) = ax.plot([x for x, _, p in points if not p], [y for _, y, p in points if not p],
                      **style)
    ends = [(x, y) for x, y, p in points if p]
    if ends:
        ax.plot([x for x, _ in ends], [y for _, y in ends], linestyle="none", marker="o",
                markersize=5, fillstyle="none", color=line.get_color())
    return line


def _shade(axes: Sequence[Axes], xs: Sequence[int], partial: Sequence[bool]) -> None:
    for x, p in zip(xs, partial, strict=True):
        if p:
            for ax in axes:
                ax.axvspan(x - 0.5, x + 0.5, color=PARTIAL_SHADE, zorder=0, linewidth=0)


def plot_run(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Draw run_figure() to a PNG file."""
    run_figure(rows, title).savefig(path, format="png")
    return path


def run_figure(rows: list[dict[str, Any]], title: str) -> Figure:
    """Rates over time, chats and participants on a second axis, and a latency panel."""
    from matplotlib.patches import Patch

    fig = _figure((10, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    t0 = int(rows[0]["second"]) if rows else 0
    xs = [int(r["second"]) - t0 for r in rows]
    partial = partial_seconds(rows)
    _shade((top, bottom), xs, partial)
    # sent/s wide, delivered/s dashed and thin on it: both show where every message arrives.
    handles: list[Artist] = [_draw(top, xs, [int(r["sent"]) for r in rows], partial,
                                   label="sent/s", color=SENT, linewidth=2.5)]
    if any(int(r.get("delivered") or 0) for r in rows):
        handles.append(_draw(top, xs, [int(r["delivered"]) for r in rows], partial,
                             label="delivered/s", color=DELIVERED, linestyle="--",
                             linewidth=1.2))
    top.set_ylabel("messages per second")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    if any("chats" in r for r in rows):  # esmeperf's series; the Go test's rates have none
        right = top.twinx()
        people = [int(r.get("participants") or 0) for r in rows]
        chats = [int(r.get("chats") or 0) for r in rows]
        # Participants as a wide pale band, chats as a thin line on it: both stay readable
        # where they coincide (every participant in a chat).
        handles.append(_draw(right, xs, people, partial, color=PARTICIPANTS, linewidth=7,
                             alpha=0.4, solid_capstyle="butt",
                             label=f"participants ({max(people, default=0):,})"))
        handles.append(_draw(right, xs, chats, partial, color=CHATS, linewidth=1.5,
                             label=f"chats ({max(chats, default=0):,})"))
        right.set_ylabel("participants / chats (at each second's end)")
        # More headroom than the rates get, so a plateau of chats sits below one of sent/s.
        right.set_ylim(0, max([*people, *chats, 1]) * 1.15)
    if any(partial):
        handles.append(Patch(color=PARTIAL_SHADE, label="partial second (start, stop)"))
    saturated = [(_num(r.get("generator_cpu")) or 0.0) >= SATURATED for r in rows]
    if any(saturated):  # where the generator, not the target, may have set the pace
        for x, busy in zip(xs, saturated, strict=True):
            if busy:
                for ax in (top, bottom):
                    ax.axvspan(x - 0.5, x + 0.5, color=SATURATED_SHADE, zorder=0, linewidth=0)
        handles.append(Patch(color=SATURATED_SHADE, label="generator CPU saturated"))
    top.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3,
               frameon=False, fontsize="small")
    _latency_panel(bottom, rows, xs, partial)
    fig.suptitle(title)
    return fig


def _latency_panel(ax: Axes, rows: list[dict[str, Any]], xs: list[int],
                   partial: list[bool]) -> None:
    from matplotlib.ticker import MaxNLocator

    for column, (label, colour) in LATENCY.items():
        values = [_num(r.get(column)) for r in rows]
        if any(v is not None for v in values):
            _draw(ax, xs, values, partial, label=label, color=colour)
    ax.set_ylabel("latency (ms)")
    ax.set_xlabel("time since start (s)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize="small")
    elif rows and "rtt_p50_ms" in rows[0]:
        ax.text(0.5, 0.5, "no round trip measured: no message was echoed", ha="center",
                va="center", transform=ax.transAxes)
    else:
        ax.text(0.5, 0.5, "no latency data (ESME's Go test does not measure it)",
                ha="center", va="center", transform=ax.transAxes)


def plot_overlay(runs: Sequence[RunData], title: str, path: Path) -> Path:
    """Draw overlay_figure() to a PNG file."""
    overlay_figure(runs, title).savefig(path, format="png")
    return path


def overlay_figure(runs: Sequence[RunData], title: str) -> Figure:
    """Messages sent per second of several runs, each from its own start (ESME's 3-run plots);
    the legend names each run by its directory and parameters."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure((10, 5))
    ax = fig.subplots()
    for run in runs:
        if not run.rows:
            continue
        t0 = int(run.rows[0]["second"])
        _draw(ax, [int(r["second"]) - t0 for r in run.rows], [int(r["sent"]) for r in run.rows],
              partial_seconds(run.rows), label=run_name(run, list(runs)))
    ax.set_xlabel("time since start (s); hollow markers: partial seconds (start, stop)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("messages sent per second")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize="small")
    ax.set_title(title)
    return fig


def plot_scatter(runs: Sequence[RunData], path: Path) -> Path:
    """Maximum message rate against active chats, one point per run, grouped by smi."""
    fig = _figure((8, 5.5))
    ax = fig.subplots()
    groups: dict[str, list[tuple[int, int]]] = {}
    for run in runs:
        rate, chats = run.max_rate()
        key = f"smi {run.params['smi']:g} ms" if run.params else "unknown smi"
        groups.setdefault(key, []).append((chats, rate))
    for key, points in sorted(groups.items()):
        ax.scatter([p[0] for p in points], [p[1] for p in points], label=key, s=40)
    ax.set_xlabel("active chats at the maximum rate")
    ax.set_ylabel("maximum messages sent per second")
    ax.set_title("maximum message rate against active chats (one point per run)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.savefig(path, format="png")
    return path
