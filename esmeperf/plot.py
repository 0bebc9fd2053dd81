"""PNG plots of runs (matplotlib Agg, Figure objects, no pyplot global state).

`python -m esmeperf.plot` / `esmeperf-plot` re-plots saved runs: esmeperf's own result files or
ESME's Go test output (its summary and message-rates files, with only the original keys).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .results import (
    PLOT_SUFFIX,
    RATES_SUFFIX,
    SERIES_SUFFIX,
    SUMMARY_SUFFIX,
    read_rates,
    read_series,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Go duration strings as the summary's `constants` hold them: "10ms", "1s", "1m30s".
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|µs|us|ns|h|m|s)")
_GO_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1, "µs": 1e-3, "us": 1e-3,
               "ns": 1e-6}


def go_duration_ms(text: str) -> float:
    """Parse a Go duration string into milliseconds."""
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("-"):
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _GO_UNIT_MS[u] for n, u in parts)


@dataclass
class RunData:
    """One saved run, from esmeperf's files or the Go test's."""

    stem: str
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    params: dict[str, float] = field(default_factory=dict)
    folder: str = ""  # the directory the run was loaded from

    @property
    def label(self) -> str:
        p = self.params
        if not p:
            return self.stem
        return f"sci {p['sci']:g} cpi {p['cpi']:g} smi {p['smi']:g} ms"

    def max_rate(self) -> tuple[int, int]:
        """(highest messages/s of any second, active chats in that second)."""
        if not self.rows:
            return 0, int(self.summary.get("chats_count", 0))
        best = max(self.rows, key=lambda r: int(r["sent"]))
        chats = int(best.get("chats") or 0) or int(self.summary.get("chats_count", 0))
        return int(best["sent"]), chats


def load_run(path: Path) -> RunData:
    """Load a run from its directory or from any one of its files."""
    if path.is_dir():
        summaries = sorted(path.glob(f"*{SUMMARY_SUFFIX}"))
        rates = sorted(path.glob(f"*{RATES_SUFFIX}"))
        if not summaries and not rates:
            raise ValueError(f"{path}: no *{SUMMARY_SUFFIX} or *{RATES_SUFFIX} in it")
        path = (summaries or rates)[-1]
    for suffix in (SUMMARY_SUFFIX, RATES_SUFFIX, SERIES_SUFFIX, PLOT_SUFFIX):
        if path.name.endswith(suffix):
            stem = path.name[: -len(suffix)]
            break
    else:
        raise ValueError(f"{path}: not an esmeperf or ESME performance-test file")
    folder = path.parent
    summary_path, rates_path, series_path = (folder / f"{stem}{s}" for s in
                                             (SUMMARY_SUFFIX, RATES_SUFFIX, SERIES_SUFFIX))
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if series_path.exists():
        rows = read_series(series_path)
    elif rates_path.exists():
        rows = rows_from_rates(read_rates(rates_path))
    else:
        raise ValueError(f"{path}: neither {series_path.name} nor {rates_path.name} exists")
    params = {}
    constants = summary.get("constants") or {}
    keys = {"sci": "start_chat_interval", "cpi": "create_participant_interval",
            "smi": "send_message_interval"}
    if all(k in constants for k in keys.values()):
        params = {short: go_duration_ms(constants[key]) for short, key in keys.items()}
    return RunData(stem, summary, rows, params, folder.name)


def rows_from_rates(rates: dict[int, int]) -> list[dict[str, Any]]:
    """Series rows from a message-rates file alone (the Go test's output), zero-filled."""
    if not rates:
        return []
    return [{"second": s, "sent": rates.get(s, 0)} for s in range(min(rates), max(rates) + 1)]


def _figure(size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _num(value: Any) -> float | None:
    return None if value in ("", None) else float(value)


def plot_run(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Rates over time, chats and participants on a second axis, and a latency panel."""
    fig = _figure((10, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    t0 = int(rows[0]["second"]) if rows else 0
    xs = [int(r["second"]) - t0 for r in rows]
    top.plot(xs, [int(r["sent"]) for r in rows], label="sent/s", color="tab:blue")
    if any(int(r.get("delivered") or 0) for r in rows):
        top.plot(xs, [int(r["delivered"]) for r in rows], label="delivered/s",
                 color="tab:green", linestyle="--")
    top.set_ylabel("messages per second")
    top.grid(alpha=0.3)
    handles, labels = top.get_legend_handles_labels()
    if any("chats" in r for r in rows):  # esmeperf's series; the Go test's rates have none
        right = top.twinx()
        right.plot(xs, [int(r.get("chats") or 0) for r in rows], label="active chats",
                   color="tab:orange")
        right.plot(xs, [int(r.get("participants") or 0) for r in rows], label="participants",
                   color="tab:gray", linestyle=":")
        right.set_ylabel("chats / participants")
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    top.legend(handles, labels, loc="upper left")
    for column, label in (("rtt_p50_ms", "round trip p50"), ("rtt_p99_ms", "round trip p99")):
        points = [(x, _num(r.get(column))) for x, r in zip(xs, rows, strict=True)]
        shown = [(x, y) for x, y in points if y is not None]
        if shown:
            bottom.plot([p[0] for p in shown], [p[1] for p in shown], label=label)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("time since start (s)")
    bottom.grid(alpha=0.3)
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(loc="upper left")
    else:
        bottom.text(0.5, 0.5, "no latency data (ESME's Go test does not measure it)",
                    ha="center", va="center", transform=bottom.transAxes)
    fig.suptitle(title)
    fig.savefig(path)
    return path


def plot_overlay(runs: Sequence[RunData], title: str, path: Path) -> Path:
    """Messages sent per second of several runs, each from its own start (ESME's 3-run plots)."""
    fig = _figure((10, 5))
    ax = fig.subplots()
    for index, run in enumerate(runs, 1):
        if not run.rows:
            continue
        t0 = int(run.rows[0]["second"])
        ax.plot([int(r["second"]) - t0 for r in run.rows], [int(r["sent"]) for r in run.rows],
                label=f"run {index}: {run.stem}")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("messages sent per second")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(title)
    fig.savefig(path)
    return path


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
    fig.savefig(path)
    return path


def get_parser() -> argparse.ArgumentParser:
    """The esmeperf-plot argument parser (also the source of its man page)."""
    parser = argparse.ArgumentParser(
        prog="esmeperf-plot",
        description="Draw PNGs from saved runs: esmeperf's result files or ESME's own Go "
        "test output (<unix>_performance_test_summary.json and _message_rates.json). "
        "A PATH is a run directory or any one file of a run.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="runs to plot")
    parser.add_argument("--overlay", action="store_true",
                        help="one graph of all runs' sent/s over time (e.g. three repeats)")
    parser.add_argument("--scatter", action="store_true",
                        help="maximum message rate against active chats, one point per run")
    parser.add_argument("-o", "--out", type=Path, default=None, metavar="PATH",
                        help="output PNG for --overlay/--scatter (default: in the current "
                        "directory); without them, each run's PNG is drawn beside its files")
    parser.add_argument("--version", action="version", version=f"esmeperf-plot {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Plot saved runs; exit 2 on unreadable input."""
    args = get_parser().parse_args(argv)
    try:
        runs = [load_run(path) for path in args.paths]
    except (OSError, ValueError) as exc:
        print(f"esmeperf-plot: error: {exc}", file=sys.stderr)
        return 2
    outputs = []
    if args.overlay:
        outputs.append(plot_overlay(runs, "messages sent per second, runs overlaid",
                                    args.out or Path("overlay.png")))
    if args.scatter:
        scatter_out = args.out if args.out and not args.overlay else Path("scatter.png")
        outputs.append(plot_scatter(runs, scatter_out))
    if not args.overlay and not args.scatter:
        for path, run in zip(args.paths, runs, strict=True):
            folder = path if path.is_dir() else path.parent
            reason = run.summary.get("end_reason")
            title = run.label + (f"; ended by {reason}" if reason else "")
            outputs.append(plot_run(run.rows, title, folder / f"{run.stem}{PLOT_SUFFIX}"))
    for out in outputs:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
