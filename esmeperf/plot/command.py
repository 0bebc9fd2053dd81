"""`python -m esmeperf.plot` / `esmeperf-plot`: PNGs of saved runs, esmeperf's own result files
or ESME's Go test output (its summary and message-rates files, with only the original keys).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..errors import UsageError
from ..results.report import run_title
from ..results.rundata import RunData, RunFileError, go_duration_ms, load_run
from ..results.summary import PLOT_SUFFIX
from ..usage import Parser
from .figures import plot_overlay, plot_run, plot_scatter

# The drawing lives in figures.py, the reading in rundata.py; this module is the command, and
# where the rest of esmeperf imports both from.
__all__ = ["RunData", "go_duration_ms", "load_run", "main", "plot_overlay", "plot_run",
           "plot_scatter"]


def get_parser() -> argparse.ArgumentParser:
    """The esmeperf-plot argument parser (also the source of its man page)."""
    parser = Parser(
        prog="esmeperf-plot",
        description="Draw PNGs from saved runs: esmeperf's result files or ESME's own Go "
        "test output (<unix>_performance_test_summary.json and _message_rates.json). "
        "A PATH is a run directory or any one file of a run. Prints the path of every PNG "
        "drawn, one a line.",
        epilog="Exit status: 0 every PNG was drawn; 2 bad arguments, a PATH that is not a "
        "readable run, or an output that cannot be written (one line on stderr, nothing "
        "drawn).")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="runs to plot")
    parser.add_argument("--overlay", action="store_true",
                        help="one graph of all runs' sent/s over time (e.g. three repeats), "
                        "overlay.png")
    parser.add_argument("--scatter", action="store_true",
                        help="maximum message rate against active chats, one point per run, "
                        "scatter.png")
    parser.add_argument("-o", "--out", default=None, metavar="PATH",
                        help="a directory to draw into (default: the current one for "
                        "--overlay/--scatter, each run's own directory otherwise), or a "
                        "NAME.png when one PNG is drawn")
    parser.add_argument("--version", action="version", version=f"esmeperf-plot {__version__}")
    return parser


Output = tuple[str, Path, RunData | None]  # what ("overlay", "scatter", "run"), PNG, its run


def plan_outputs(out: str | None, kinds: Sequence[str], paths: Sequence[Path],
                 runs: Sequence[RunData]) -> list[Output]:
    """Every PNG to draw, each checked writable, before any is drawn; UsageError if not."""
    into = Path(out) if out is not None and os.path.isdir(out) else None
    if out is not None and into is None:  # -o names one file
        count = len(kinds) or len({_source(p, r) for p, r in zip(paths, runs, strict=True)})
        if count > 1:
            what = "--overlay and --scatter draw" if kinds else f"{count} runs make"
            raise UsageError(f"-o {out}: {what} {count} PNGs: give -o a directory")
        if out.endswith(("/", os.sep)):
            raise UsageError(f"-o {out}: no such directory")
        if not out.lower().endswith(".png"):
            raise UsageError(f"-o {out}: not a .png file name (give NAME.png or a directory)")
        if not Path(out).parent.is_dir():
            raise UsageError(f"-o {out}: no such directory: {Path(out).parent}")
    planned: list[Output] = []
    if kinds:
        planned = [(kind, Path(out) if out is not None and into is None
                    else (into or Path(".")) / f"{kind}.png", None) for kind in kinds]
    drawn: dict[Path, tuple[Path, str]] = {}  # PNG -> the run drawn there
    for path, run in zip(paths, runs, strict=True) if not kinds else ():
        source = _source(path, run)
        target = (Path(out) if out is not None and into is None
                  else (into or (path if path.is_dir() else path.parent))
                  / f"{run.stem}{PLOT_SUFFIX}")
        if target.resolve() in drawn:
            if drawn[target.resolve()] == source:
                continue  # the same run named twice: drawn once
            raise UsageError(f"-o {out}: two runs named {run.stem} would both be drawn to "
                             f"{target}: draw them into different directories")
        drawn[target.resolve()] = source
        planned.append(("run", target, run))
    for _, target, _ in planned:
        if not os.access(target.parent, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write {target}: directory {target.parent} is not "
                             "writable")
    return planned


def title_of(run: RunData) -> str:
    """An esmeperf run's own title (report.run_title); a Go test run's intervals."""
    if run.summary.get("settings"):
        return run_title(run.summary)
    reason = run.summary.get("end_reason")
    return run.label + (f"; ended by {reason}" if reason else "")


def _source(path: Path, run: RunData) -> tuple[Path, str]:
    """Where a run's files are: its directory and the files' common stem."""
    return (path if path.is_dir() else path.parent).resolve(), run.stem


def main(argv: Sequence[str] | None = None) -> int:
    """Plot saved runs; exit 2, one line on stderr, nothing drawn, on any bad input."""
    try:
        args = get_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or bad input already reported in one line
        return int(exc.code or 0)
    kinds = [k for k, on in (("overlay", args.overlay), ("scatter", args.scatter)) if on]
    try:
        runs = [load_run(path) for path in args.paths]
        outputs = plan_outputs(args.out, kinds, args.paths, runs)
    except (RunFileError, UsageError) as exc:
        print(f"esmeperf-plot: error: {exc}", file=sys.stderr)
        return 2
    for kind, target, run in outputs:
        try:
            if kind == "overlay":
                plot_overlay(runs, "messages sent per second, runs overlaid", target)
            elif kind == "scatter":
                plot_scatter(runs, target)
            elif run is not None:
                plot_run(run.rows, title_of(run), target, run.summary)
        except OSError as exc:
            print(f"esmeperf-plot: error: cannot write {target}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        print(target)
    return 0

