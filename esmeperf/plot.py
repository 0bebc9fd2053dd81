"""PNG plots of a run (matplotlib Agg, Figure objects, no pyplot global state)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .results import RATES_SUFFIX, SERIES_SUFFIX, read_rates, read_series


def _num(value: Any) -> float | None:
    return None if value in ("", None) else float(value)


def plot_run(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Rates over time, chats and participants on a second axis, and a latency panel."""
    fig = Figure(figsize=(10, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    t0 = rows[0]["second"] if rows else 0
    xs = [int(r["second"]) - t0 for r in rows]
    top.plot(xs, [int(r["sent"]) for r in rows], label="sent/s", color="tab:blue")
    if any(int(r.get("delivered") or 0) for r in rows):
        top.plot(xs, [int(r["delivered"]) for r in rows], label="delivered/s",
                 color="tab:green", linestyle="--")
    top.set_ylabel("messages per second")
    top.grid(alpha=0.3)
    right = top.twinx()
    right.plot(xs, [int(r.get("chats") or 0) for r in rows], label="active chats",
               color="tab:orange")
    right.plot(xs, [int(r.get("participants") or 0) for r in rows], label="participants",
               color="tab:gray", linestyle=":")
    right.set_ylabel("chats / participants")
    handles = top.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    top.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left")
    for column, label in (("rtt_p50_ms", "round trip p50"), ("rtt_p99_ms", "round trip p99")):
        points = [(x, _num(r.get(column))) for x, r in zip(xs, rows, strict=True)]
        points = [(x, y) for x, y in points if y is not None]
        if points:
            bottom.plot([p[0] for p in points], [p[1] for p in points], label=label)
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("time since start (s)")
    bottom.grid(alpha=0.3)
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(loc="upper left")
    fig.suptitle(title)
    fig.savefig(path)
    return path


def rows_from_rates(rates: dict[int, int]) -> list[dict[str, Any]]:
    """Series rows from a message-rates file alone (the Go test's output), zero-filled."""
    if not rates:
        return []
    return [{"second": s, "sent": rates.get(s, 0)} for s in range(min(rates), max(rates) + 1)]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="esmeperf-plot",
        description="Plot esmeperf runs (or ESME's own Go test output) as PNG files.",
    )
    parser.add_argument("files", nargs="+", type=Path,
                        help="*_performance_test_series.csv or *_message_rates.json files")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="output PNG (default: beside each input)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    for path in args.files:
        try:
            if path.name.endswith(SERIES_SUFFIX):
                rows = read_series(path)
                stem = path.name[: -len(SERIES_SUFFIX)]
            elif path.name.endswith(RATES_SUFFIX):
                rows = rows_from_rates(read_rates(path))
                stem = path.name[: -len(RATES_SUFFIX)]
            else:
                print(f"esmeperf-plot: {path}: not a series CSV or message-rates JSON",
                      file=sys.stderr)
                return 2
        except (OSError, ValueError) as exc:
            print(f"esmeperf-plot: {path}: {exc}", file=sys.stderr)
            return 2
        out = args.out or path.with_name(f"{stem}_performance_test_rates.png")
        plot_run(rows, f"run {stem}", out)
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
