"""The figures of runs: matplotlib Agg, Figure objects, no pyplot global state.

Each figure has a *_figure() that builds the Figure (tests and the HTML reports read it) and a
plot_*() that saves it as a PNG. The run's panels are drawn by one function each, so the PNG
(run_figure) and the HTML report's charts (timeline_charts) show the same things the same way.

Legends sit outside the data (above a panel, or beside or below it): a legend inside an axes
hides a line wherever the data happens to run. tests/figure_check.py checks every figure for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..measure import health
from ..results.rundata import RunData, run_name

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

# One colour, one quantity, in every panel and plot.
SENT, DELIVERED, CHATS, PARTICIPANTS = "tab:blue", "tab:green", "tab:orange", "tab:olive"
LATENCY = {"rtt_p50_ms": ("round trip p50", "tab:purple"),
           "rtt_p99_ms": ("round trip p99", "tab:red"),
           # What participants lived through: from each message's due time (wrk2's view).
           "rtt_from_intended_p99_ms": ("from intended send p99", "tab:brown"),
           # How late the generator's own threads ran: where it nears the round trip, the
           # round trip measures the generator.
           "generator_lag_p99_ms": ("generator lag p99", "tab:gray")}
LATENCY_STYLE = {"rtt_from_intended_p99_ms": {"linestyle": "--", "linewidth": 1.2},
                 "generator_lag_p99_ms": {"linestyle": ":", "linewidth": 1.2}}
PARTIAL_SHADE = "0.86"  # neutral: no quantity is drawn in gray
# Seconds the generator's own CPU was saturated: hatched, so a partial second's gray shows
# through where the two fall together (the stop's second often is both).
SATURATED_HATCH = "#d62728"
SURGE_SHADE = "#d9e8f5"  # pale blue: the surge window
INTENDED = "tab:gray"  # the schedule's arrivals, under the actual ones
PHASE_COLOURS = ("tab:cyan", "tab:blue", "tab:purple")  # before, during, after the surge
TIME_LABEL = "time since start (s)"


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


def spans(xs: Sequence[int], marked: Sequence[bool]) -> list[tuple[float, float]]:
    """The marked seconds as runs of whole seconds, (first - 0.5, last + 0.5) each: one shaded
    span for a saturated minute, not sixty."""
    out: list[tuple[float, float]] = []
    for x, on in zip(xs, marked, strict=True):
        if not on:
            continue
        if out and out[-1][1] == x - 0.5:
            out[-1] = (out[-1][0], x + 0.5)
        else:
            out.append((x - 0.5, x + 0.5))
    return out


@dataclass
class Timeline:
    """A run's seconds as the panels draw them: x is the second since the first row's."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.t0 = int(self.rows[0]["second"]) if self.rows else 0
        self.xs = [int(r["second"]) - self.t0 for r in self.rows]
        self.partial = partial_seconds(self.rows)
        self.saturated = spans(self.xs, [(_num(r.get("generator_cpu")) or 0.0) >= health.BUSY
                                         for r in self.rows])
        surge = self.summary.get("surge")
        start = _surge_start(self.rows, self.summary)
        self.surge = ((start + surge["window_s"][0], start + surge["window_s"][1])
                      if surge else None)
        self.staged = bool((self.summary.get("settings") or {}).get("stages")) and any(
            r.get("arrivals_intended") not in (None, "") for r in self.rows)
        self.has_people = any("chats" in r for r in self.rows)  # the Go test's rates: none


def draw_rate(ax: Axes, xs: Sequence[int], ys: Sequence[float | None], partial: Sequence[bool],
          **style: Any) -> Line2D:
    """A rate as a line over the whole seconds; the partial ones as hollow markers, not
    joined to it, so the stop's half second is not drawn as a collapse."""
    points = [(x, y, p) for x, y, p in zip(xs, ys, partial, strict=True) if y is not None]
    (line,) = ax.plot([x for x, _, p in points if not p], [y for _, y, p in points if not p],
                      **style)
    ends = [(x, y) for x, y, p in points if p]
    if ends:
        ax.plot([x for x, _ in ends], [y for _, y in ends], linestyle="none", marker="o",
                markersize=5, fillstyle="none", color=line.get_color())
    return line


def _backdrop(axes: Sequence[Axes], tl: Timeline) -> list[Artist]:
    """Shade the surge window, the partial seconds and the saturated ones in every panel;
    return the legend entries for what was shaded."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    partial = spans(tl.xs, tl.partial)
    for ax in axes:
        if tl.surge:
            ax.axvspan(*tl.surge, color=SURGE_SHADE, zorder=0, linewidth=0)
        for low, high in partial:
            ax.axvspan(low, high, color=PARTIAL_SHADE, alpha=0.7, zorder=0.1, linewidth=0)
        for low, high in tl.saturated:
            ax.axvspan(low, high, facecolor="none", edgecolor=SATURATED_HATCH, hatch="///",
                       alpha=0.5, zorder=0.2, linewidth=0)
    if partial:
        # The gray band and a hollow marker are one entry: what a partial second looks like.
        hollow = Line2D([], [], linestyle="none", marker="o", markersize=5, fillstyle="none",
                        color="0.35")
        handles.append((Patch(color=PARTIAL_SHADE), hollow))
    if tl.saturated:
        handles.append(Patch(facecolor="none", edgecolor=SATURATED_HATCH, hatch="///",
                             linewidth=0, alpha=0.5))
    if tl.surge:
        handles.append(Patch(color=SURGE_SHADE))
    return handles


def _backdrop_labels(tl: Timeline) -> list[str]:
    return (["partial second (start, stop): its value hollow, not joined"]
            * bool(any(tl.partial))
            + ["generator CPU saturated"] * bool(tl.saturated) + ["surge"] * bool(tl.surge))


def _legend_above(ax: Axes, handles: Sequence[Any], labels: Sequence[str], ncols: int = 3
                  ) -> None:
    if handles:
        ax.legend(handles=list(handles), labels=list(labels), loc="lower left",
                  bbox_to_anchor=(0, 1.0), ncols=ncols, frameon=False, fontsize="small",
                  borderaxespad=0.2)


def _rates(ax: Axes, tl: Timeline) -> list[Line2D]:
    """sent/s wide, delivered/s dashed and thin on it: both show where every message
    arrives."""
    rows = tl.rows
    lines = [draw_rate(ax, tl.xs, [int(r["sent"]) for r in rows], tl.partial, label="sent/s",
                   color=SENT, linewidth=2.5)]
    if any(int(r.get("delivered") or 0) for r in rows):
        lines.append(draw_rate(ax, tl.xs, [int(r["delivered"]) for r in rows], tl.partial,
                           label="delivered/s", color=DELIVERED, linestyle="--", linewidth=1.2))
    ax.set_ylabel("messages per second")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return lines


def _people(ax: Axes, tl: Timeline, headroom: float = 1.05) -> list[Line2D]:
    """Participants as a wide pale band, chats as a thin line on it: both stay readable where
    they coincide (every participant in a chat). Gauges at each second's end, joined through
    the partial seconds: a gauge has no partial value, so there is no collapse to hide."""
    people = [int(r.get("participants") or 0) for r in tl.rows]
    chats = [int(r.get("chats") or 0) for r in tl.rows]
    (band,) = ax.plot(tl.xs, people, color=PARTICIPANTS, linewidth=7, alpha=0.4,
                      solid_capstyle="butt", label=f"participants ({max(people, default=0):,})")
    (line,) = ax.plot(tl.xs, chats, color=CHATS, linewidth=1.5,
                      label=f"chats ({max(chats, default=0):,})")
    ax.set_ylim(0, max([*people, *chats, 1]) * headroom)
    return [band, line]


def plot_run(rows: list[dict[str, Any]], title: str, path: Path,
             summary: dict[str, Any] | None = None) -> Path:
    """Draw run_figure() to a PNG file."""
    run_figure(rows, title, summary).savefig(path, format="png")
    return path


def run_figure(rows: list[dict[str, Any]], title: str,
               summary: dict[str, Any] | None = None) -> Figure:
    """Rates over time, chats and participants on a second axis, and a latency panel.

    With the run's summary: a run with --stages gets a panel of intended and actual arrivals
    per second, and a run with a surge window the window shaded and a panel of each cohort's
    round-trip p99 and delivered ratio by phase (surge.py).
    """
    tl = Timeline(rows, summary or {})
    surge = tl.summary.get("surge")
    heights = [3.0, 2.2] + [1.6] * tl.staged + [2.4] * bool(surge)
    fig = _figure((10, 6.5 + 1.7 * tl.staged + 2.6 * bool(surge)))
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    timed = [top, bottom]
    if tl.staged:
        timed.append(fig.add_subplot(grid[2], sharex=top))
    backdrop = _backdrop(timed, tl)
    handles: list[Any] = list(_rates(top, tl))
    if tl.has_people:
        right = top.twinx()
        # More headroom than the rates get, so a plateau of chats sits below one of sent/s.
        handles += _people(right, tl, headroom=1.15)
        right.set_ylabel("participants / chats\n(right axis, at each second's end)")
    labels = [str(h.get_label()) for h in handles] + _backdrop_labels(tl)
    _legend_above(top, handles + backdrop, labels)
    _latency_panel(bottom, tl)
    if tl.staged:
        bottom.set_xlabel("")
        _arrivals_panel(timed[2], tl)
    if surge:
        _cohort_panel(fig.add_subplot(grid[len(heights) - 1]), surge)
    fig.suptitle(title)
    return fig


@dataclass
class Chart:
    """One chart of a run's HTML report: its figure, and the axes whose seconds get hover
    titles (x is the second since the run's first)."""

    key: str
    heading: str
    figure: Figure
    axes: Axes


def timeline_charts(rows: list[dict[str, Any]], summary: dict[str, Any] | None = None
                    ) -> list[Chart]:
    """The run's panels as separate charts for the HTML report, each with its own legend and
    time axis, so each fits a screen and a printed page: rates, participants and chats (with
    the arrivals of a staged run), latency, and the surge's cohorts.

    Fixed margins, not constrained layout: the time axes of every chart line up one under the
    other, and a chart is drawn once rather than twice (the layout's own pass).
    """
    tl = Timeline(rows, summary or {})
    charts = []

    def timed(key: str, heading: str, height: float, entries: int, ncols: int = 3) -> Axes:
        """A chart with room above its axes for a legend of `entries` in `ncols` columns."""
        fig = _fixed_figure(height, top=0.12 + 0.2 * math.ceil(entries / ncols), bottom=0.5)
        ax = fig.add_subplot()
        charts.append(Chart(key, heading, fig, ax))
        return ax

    extra = _backdrop_labels(tl)
    ax = timed("rates", "Messages per second", 2.9, 2 + len(extra))
    handles: list[Any] = list(_rates(ax, tl))
    ax.set_xlabel(TIME_LABEL)
    _legend_above(ax, handles + _backdrop([ax], tl),
                  [str(h.get_label()) for h in handles] + extra)
    if tl.has_people:
        ax = timed("people", "Participants and chats", 2.6, 2 + len(extra))
        handles = list(_people(ax, tl))
        ax.set_ylabel("at each second's end")
        ax.set_xlabel(TIME_LABEL)
        ax.grid(alpha=0.3)
        _legend_above(ax, handles + _backdrop([ax], tl),
                      [str(h.get_label()) for h in handles] + extra)
    if tl.staged:
        ax = timed("arrivals", "Arrivals per second: the schedule and the sign-ups", 2.4, 2)
        _backdrop([ax], tl)
        _arrivals_panel(ax, tl)
    ax = timed("latency", "Latency per second", 3.0, 4, ncols=4)
    _backdrop([ax], tl)
    _latency_panel(ax, tl)
    for chart in charts:
        chart.axes.set_xlim(min(tl.xs, default=0) - 0.6, max(tl.xs, default=0) + 0.6)
    surge = tl.summary.get("surge")
    if surge:
        fig = _fixed_figure(3.2, top=0.35, bottom=0.85)
        ax = fig.add_subplot()
        _cohort_panel(ax, surge)
        charts.append(Chart("cohorts", "The surge's cohorts", fig, ax))
    return charts


def _fixed_figure(height: float, top: float, bottom: float, width: float = 10.0) -> Figure:
    """A figure with fixed margins in inches: room on the left for a y axis's labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.95 / width, right=1 - 0.25 / width, bottom=bottom / height,
                        top=1 - top / height)
    return fig


def _surge_start(rows: list[dict[str, Any]], summary: dict[str, Any]) -> float:
    """Where the arrival grid's origin (participants' start) falls on the x axis."""
    from datetime import datetime

    started = summary.get("participants_time_started")
    if not rows or not started:
        return 0.0
    try:
        when = datetime.fromisoformat(str(started).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
    return when - int(rows[0]["second"]) - 0.5  # x = s - t0 is drawn at the second's middle


def _arrivals_panel(ax: Axes, tl: Timeline) -> None:
    from matplotlib.ticker import MaxNLocator

    rows = tl.rows
    handles = [
        draw_rate(ax, tl.xs, [_num(r.get("arrivals_intended")) for r in rows], tl.partial,
              label="intended (schedule)", color=INTENDED, linewidth=2.5, alpha=0.6),
        draw_rate(ax, tl.xs, [_num(r.get("arrivals")) for r in rows], tl.partial,
              label="actual (sign-ups)", color=PARTICIPANTS, linewidth=1.2, linestyle="--")]
    ax.set_ylabel("arrivals per second")
    ax.set_xlabel(TIME_LABEL)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _legend_above(ax, handles, [str(h.get_label()) for h in handles])


def _cohort_panel(ax: Axes, surge: dict[str, Any]) -> None:
    """Round-trip p99 of each cohort in each phase, as grouped bars labelled with the
    delivered ratio: the chats open before the surge are the first group. The legend goes
    under the cohorts' names, clear of every bar."""
    cohorts = list(surge["cohorts"])
    phases = list(next(iter(surge["cohorts"].values()))["phases"]) if cohorts else []
    width = 0.8 / max(1, len(phases))
    tallest = 0.0
    for i, phase in enumerate(phases):
        xs, heights, labels = [], [], []
        for j, cohort in enumerate(cohorts):
            cell = surge["cohorts"][cohort]["phases"][phase]
            p99 = cell["rtt"].get("p99_ms")
            if p99 is None:
                continue
            xs.append(j + (i - (len(phases) - 1) / 2) * width)
            heights.append(p99)
            ratio = cell["delivered_ratio"]
            labels.append("" if ratio is None else f"{ratio:.3f}")
        tallest = max([tallest, *heights])
        bars = ax.bar(xs, heights, width, label=f"sent {phase} the surge",
                      color=PHASE_COLOURS[i % len(PHASE_COLOURS)])
        ax.bar_label(bars, labels, fontsize="x-small", padding=2)
    ax.set_xticks(range(len(cohorts)), [f"arrived {c} the surge" for c in cohorts])
    ax.set_ylim(0, (tallest or 1.0) * 1.18)  # room for the labels over the tallest bar
    ax.set_ylabel("round trip p99 (ms)")
    verdict = {True: "yes", False: "NO", None: "n/a"}[surge.get("open_chats_endured")]
    ax.set_title(f"by cohort and phase (bar labels: delivered/sent); open chats endured the "
                 f"surge: {verdict}", fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=len(phases),
                  fontsize="small", frameon=False)


def _latency_panel(ax: Axes, tl: Timeline) -> None:
    from matplotlib.ticker import MaxNLocator

    rows = tl.rows
    drawn: list[float] = []
    handles = []
    for column, (label, colour) in LATENCY.items():
        values = [_num(r.get(column)) for r in rows]
        if any(v is not None for v in values):
            # A log axis keeps p50 (a fraction of a millisecond) readable beside a p99 of
            # seconds; a value of 0 has no place on it and is left out.
            values = [v if v is None or v > 0 else None for v in values]
            handles.append(draw_rate(ax, tl.xs, values, tl.partial, label=label, color=colour,
                                 **LATENCY_STYLE.get(column, {})))
            drawn += [v for v in values if v is not None]
    ax.set_ylabel("latency (ms, log scale)" if drawn else "latency (ms)")
    ax.set_xlabel(TIME_LABEL)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if drawn:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if drawn:
        ax.grid(alpha=0.12, which="minor")
    if handles:
        _legend_above(ax, handles, [str(h.get_label()) for h in handles], ncols=4)
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
    the legend, beside the graph, names each run by its directory and parameters."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure((10, 5))
    ax = fig.subplots()
    for run in runs:
        if not run.rows:
            continue
        t0 = int(run.rows[0]["second"])
        draw_rate(ax, [int(r["second"]) - t0 for r in run.rows], [int(r["sent"]) for r in run.rows],
              partial_seconds(run.rows), label=run_name(run, list(runs)))
    ax.set_xlabel(f"{TIME_LABEL}; hollow markers: partial seconds (start, stop)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("messages sent per second")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                  frameon=False)
    ax.set_title(title)
    return fig


def plot_scatter(runs: Sequence[RunData], path: Path) -> Path:
    """Draw scatter_figure() to a PNG file."""
    scatter_figure(runs).savefig(path, format="png")
    return path


def scatter_figure(runs: Sequence[RunData]) -> Figure:
    """Maximum message rate against active chats, one point per run, grouped by smi; whole
    numbers on both axes (chats and messages come whole)."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure((8, 5.5))
    ax = fig.subplots()
    groups: dict[str, list[tuple[int, int]]] = {}
    for run in runs:
        rate, chats = run.max_rate()
        key = f"smi {run.params['smi']:g} ms" if run.params else "unknown smi"
        groups.setdefault(key, []).append((chats, rate))
    for key, points in sorted(groups.items()):
        ax.scatter([p[0] for p in points], [p[1] for p in points], label=key, s=40)
    for axis in (ax.xaxis, ax.yaxis):  # one whole tick is better than fractional ones
        axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("active chats at the maximum rate")
    ax.set_ylabel("maximum messages sent per second")
    ax.set_title("maximum message rate against active chats (one point per run)")
    ax.grid(alpha=0.3)
    if groups:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                  frameon=False)
    return fig


def plot_capacity(capacity: dict[str, Any], path: Path) -> Path:
    """Draw capacity_figure() to a PNG file."""
    capacity_figure(capacity).savefig(path, format="png")
    return path


def capacity_figure(capacity: dict[str, Any]) -> Figure:
    """The capacity search (capacity.py): achieved against intended message rate, and the
    round-trip p99, by step (active chats, on a log2 axis: the steps double), the knee marked;
    failed steps hollow."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    steps = sorted(capacity["steps"], key=lambda s: s["chats"])
    fig = _figure((9, 7))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    chats = [s["chats"] for s in steps]
    handles = [
        top.plot(chats, [s["intended_rate"] for s in steps], color=INTENDED, linewidth=2.5,
                 alpha=0.6, label="intended (chats x 1000 / smi)")[0],
        top.plot(chats, [s["achieved_rate"] for s in steps], color=SENT, linewidth=1.2,
                 label="achieved (measured window)")[0]]
    bottom.plot(chats, [s["rtt_p99_ms"] for s in steps], color=LATENCY["rtt_p99_ms"][1],
                linewidth=1.2, label="round trip p99 (measured window)")
    for step in steps:
        style: dict[str, Any] = {"fillstyle": "full" if step["passed"] else "none",
                                 "markersize": 7, "marker": "o", "linestyle": "none"}
        top.plot([step["chats"]], [step["achieved_rate"]], color=SENT, **style)
        if step["generator_limited"]:  # health.py's rules fired: the generator set the pace
            top.annotate("generator-limited", (step["chats"], step["achieved_rate"]),
                         xytext=(0, 7), textcoords="offset points", ha="center", va="bottom",
                         fontsize="x-small", color="tab:red")
        if step["rtt_p99_ms"] is not None:
            bottom.plot([step["chats"]], [step["rtt_p99_ms"]], color=LATENCY["rtt_p99_ms"][1],
                        **style)
    limit = capacity["criteria"]["max_p99_ms"]
    bottom.axhline(limit, color="0.4", linestyle=":", linewidth=1,
                   label=f"--max-p99 {limit:g} ms")
    if chats:  # a margin either side of the steps, in doublings
        top.set_xscale("log", base=2)
        top.set_xlim(min(chats) / 1.5, max(chats) * 1.5)
        top.xaxis.set_major_locator(LogLocator(base=2))
        top.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        top.xaxis.set_minor_locator(NullLocator())
    mark = None
    if capacity["knee_chats"] is not None:
        mark = (capacity["knee_chats"], "tab:red", "--",
                f"knee: {capacity['knee_chats']} chats, {capacity['knee_rate']:g} msg/s")
    elif capacity["highest_passing_chats"] is not None and capacity["limited_by"] == "none":
        # No step failed: the highest one that passed is a lower bound, not a knee.
        mark = (capacity["highest_passing_chats"], "0.3", ":",
                f"lower bound: at least {capacity['highest_passing_chats']} chats")
    if mark is not None:
        x, colour, dashes, text = mark
        for ax in (top, bottom):
            ax.axvline(x, color=colour, linestyle=dashes, linewidth=1)
        # The label at the foot of the line (the rates are high there, the axis empty), on
        # the side with the room, so it stays inside the axes.
        left = bool(chats) and x >= (min(chats) * max(chats)) ** 0.5
        top.annotate(text, (x, 0.04), xycoords=("data", "axes fraction"),
                     xytext=(-6 if left else 6, 0), textcoords="offset points",
                     ha="right" if left else "left", va="bottom", fontsize="small",
                     color=colour)
    top.set_ylabel("messages per second")
    rates = [s[k] for s in steps for k in ("intended_rate", "achieved_rate")]
    top.set_ylim(0, max([*rates, 1.0]) * 1.15)  # room over the highest step for its label
    top.grid(alpha=0.3)
    top.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2,
               fontsize="small", frameon=False,
               title="steps: filled passed, hollow failed", title_fontsize="x-small",
               alignment="left")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("active chats held by the step (log2 scale: the steps double)")
    bottom.set_yscale("log")
    bottom.grid(alpha=0.3)
    bottom.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, fontsize="small",
                  frameon=False)
    limited = {"none": "no step failed: a lower bound", "target": "limited by the target",
               "generator": "limited by the generator, not the target"}
    fig.suptitle(f"capacity search, smi {capacity['smi_ms']:g} ms: "
                 f"{limited.get(capacity['limited_by'], capacity['limited_by'])}")
    return fig
