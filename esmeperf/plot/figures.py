"""The PNGs of runs: matplotlib Agg, Figure objects, no pyplot global state.

Each plot has a *_figure() that builds the Figure (tests read it) and a plot_*() that saves it.
"""

from __future__ import annotations

from collections.abc import Sequence
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
PARTIAL_SHADE = "0.92"  # neutral: no quantity is drawn in gray
SATURATED_SHADE = "#f4cccc"  # pale red: seconds the generator's own CPU was saturated
SURGE_SHADE = "#d9e8f5"  # pale blue: the surge window
INTENDED = "tab:gray"  # the schedule's arrivals, under the actual ones
PHASE_COLOURS = ("tab:cyan", "tab:blue", "tab:purple")  # before, during, after the surge


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
    from matplotlib.patches import Patch

    summary = summary or {}
    staged = bool((summary.get("settings") or {}).get("stages")) and any(
        r.get("arrivals_intended") not in (None, "") for r in rows)
    surge = summary.get("surge")
    heights = [3.0, 2.0] + [1.5] * staged + [2.2] * bool(surge)
    fig = _figure((10, 6.5 + 1.6 * staged + 2.4 * bool(surge)))
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    timed = [top, bottom]
    if staged:
        timed.append(fig.add_subplot(grid[2], sharex=top))
    t0 = int(rows[0]["second"]) if rows else 0
    xs = [int(r["second"]) - t0 for r in rows]
    partial = partial_seconds(rows)
    _shade(timed, xs, partial)
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
    saturated = [(_num(r.get("generator_cpu")) or 0.0) >= health.BUSY for r in rows]
    if any(saturated):  # where the generator, not the target, may have set the pace
        for x, busy in zip(xs, saturated, strict=True):
            if busy:
                for ax in (top, bottom):
                    ax.axvspan(x - 0.5, x + 0.5, color=SATURATED_SHADE, zorder=0, linewidth=0)
        handles.append(Patch(color=SATURATED_SHADE, label="generator CPU saturated"))
    top.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3,
               frameon=False, fontsize="small")
    if surge:
        start = _surge_start(rows, summary)
        for ax in timed:
            ax.axvspan(start + surge["window_s"][0], start + surge["window_s"][1],
                       color=SURGE_SHADE, zorder=0, linewidth=0)
        handles.append(Patch(color=SURGE_SHADE, label="surge"))
    top.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=3,
               frameon=False, fontsize="small")
    _latency_panel(bottom, rows, xs, partial)
    if staged:
        bottom.set_xlabel("")
        _arrivals_panel(timed[2], rows, xs, partial)
    if surge:
        _cohort_panel(fig.add_subplot(grid[len(heights) - 1]), surge)
    fig.suptitle(title)
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


def _arrivals_panel(ax: Axes, rows: list[dict[str, Any]], xs: list[int],
                    partial: list[bool]) -> None:
    from matplotlib.ticker import MaxNLocator

    _draw(ax, xs, [_num(r.get("arrivals_intended")) for r in rows], partial,
          label="intended (schedule)", color=INTENDED, linewidth=2.5, alpha=0.6)
    _draw(ax, xs, [_num(r.get("arrivals")) for r in rows], partial, label="actual (sign-ups)",
          color=PARTICIPANTS, linewidth=1.2, linestyle="--")
    ax.set_ylabel("arrivals per second")
    ax.set_xlabel("time since start (s)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")


def _cohort_panel(ax: Axes, surge: dict[str, Any]) -> None:
    """Round-trip p99 of each cohort in each phase, as grouped bars labelled with the
    delivered ratio: the chats open before the surge are the first group."""
    cohorts = list(surge["cohorts"])
    phases = list(next(iter(surge["cohorts"].values()))["phases"]) if cohorts else []
    width = 0.8 / max(1, len(phases))
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
        bars = ax.bar(xs, heights, width, label=f"sent {phase} the surge",
                      color=PHASE_COLOURS[i % len(PHASE_COLOURS)])
        ax.bar_label(bars, labels, fontsize="x-small", padding=1)
    ax.set_xticks(range(len(cohorts)), [f"arrived {c} the surge" for c in cohorts])
    ax.set_ylabel("round trip p99 (ms)")
    verdict = {True: "yes", False: "NO", None: "n/a"}[surge.get("open_chats_endured")]
    ax.set_title(f"by cohort and phase (bar labels: delivered/sent); open chats endured the "
                 f"surge: {verdict}", fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper right", fontsize="x-small")


def _latency_panel(ax: Axes, rows: list[dict[str, Any]], xs: list[int],
                   partial: list[bool]) -> None:
    from matplotlib.ticker import MaxNLocator

    drawn: list[float] = []
    for column, (label, colour) in LATENCY.items():
        values = [_num(r.get(column)) for r in rows]
        if any(v is not None for v in values):
            # A log axis keeps p50 (a fraction of a millisecond) readable beside a p99 of
            # seconds; a value of 0 has no place on it and is left out.
            values = [v if v is None or v > 0 else None for v in values]
            _draw(ax, xs, values, partial, label=label, color=colour,
                  **LATENCY_STYLE.get(column, {}))
            drawn += [v for v in values if v is not None]
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_xlabel("time since start (s)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if drawn:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if drawn:
        ax.grid(alpha=0.12, which="minor")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize="small", ncols=2)
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


def plot_capacity(capacity: dict[str, Any], path: Path) -> Path:
    """Draw capacity_figure() to a PNG file."""
    capacity_figure(capacity).savefig(path, format="png")
    return path


def capacity_figure(capacity: dict[str, Any]) -> Figure:
    """The capacity search (capacity.py): achieved against intended message rate, and the
    round-trip p99, by step (active chats), the knee marked; failed steps hollow."""
    steps = sorted(capacity["steps"], key=lambda s: s["chats"])
    fig = _figure((9, 7))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    chats = [s["chats"] for s in steps]
    top.plot(chats, [s["intended_rate"] for s in steps], color=INTENDED, linewidth=2.5,
             alpha=0.6, label="intended (chats x 1000 / smi)")
    top.plot(chats, [s["achieved_rate"] for s in steps], color=SENT, linewidth=1.2,
             label="achieved (measured window)")
    bottom.plot(chats, [s["rtt_p99_ms"] for s in steps], color=LATENCY["rtt_p99_ms"][1],
                linewidth=1.2, label="round trip p99 (measured window)")
    for step in steps:
        style = {"fillstyle": "full" if step["passed"] else "none", "markersize": 7,
                 "marker": "o", "linestyle": "none"}
        top.plot([step["chats"]], [step["achieved_rate"]], color=SENT, **style)
        if step["generator_limited"]:  # health.py's rules fired: the generator set the pace
            top.annotate("generator-limited", (step["chats"], step["achieved_rate"]),
                         xytext=(0, -16), textcoords="offset points", ha="center",
                         fontsize="x-small", color="tab:red")
        if step["rtt_p99_ms"] is not None:
            bottom.plot([step["chats"]], [step["rtt_p99_ms"]], color=LATENCY["rtt_p99_ms"][1],
                        **style)
    limit = capacity["criteria"]["max_p99_ms"]
    bottom.axhline(limit, color="0.4", linestyle=":", linewidth=1,
                   label=f"--max-p99 {limit:g} ms")
    if capacity["knee_chats"] is not None:
        for ax in (top, bottom):
            ax.axvline(capacity["knee_chats"], color="tab:red", linestyle="--", linewidth=1)
        top.annotate(f"knee: {capacity['knee_chats']} chats, {capacity['knee_rate']:g} msg/s",
                     (capacity["knee_chats"], capacity["knee_rate"]), xytext=(8, -14),
                     textcoords="offset points", fontsize="small", color="tab:red")
    elif capacity["highest_passing_chats"] is not None and capacity["limited_by"] == "none":
        # No step failed: the highest one that passed is a lower bound, not a knee.
        for ax in (top, bottom):
            ax.axvline(capacity["highest_passing_chats"], color="0.4", linestyle=":",
                       linewidth=1)
        top.annotate(f"lower bound: at least {capacity['highest_passing_chats']} chats",
                     (capacity["highest_passing_chats"], capacity["highest_passing_rate"]),
                     xytext=(-8, -14), textcoords="offset points", ha="right",
                     fontsize="small", color="0.3")
    top.set_ylabel("messages per second")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize="small", title="filled: step passed; hollow: failed",
               title_fontsize="x-small")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("active chats held by the step")
    bottom.set_yscale("log")
    bottom.grid(alpha=0.3)
    bottom.legend(loc="upper left", fontsize="small")
    limited = {"none": "no step failed: a lower bound", "target": "limited by the target",
               "generator": "limited by the generator, not the target"}
    fig.suptitle(f"capacity search, smi {capacity['smi_ms']:g} ms: "
                 f"{limited.get(capacity['limited_by'], capacity['limited_by'])}")
    return fig
