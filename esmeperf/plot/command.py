"""`python -m esmeperf.plot` / `esmeperf-plot`: PNGs of saved runs, esmeperf's own result files
or ESME's Go test output (its summary and message-rates files, with only the original keys), and
with --html their HTML reports again (html.py), from the same files.
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
        "drawn, one a line. With --html, writes each run's HTML report instead (a sweep's "
        "or a capacity search's directory: every run's or step's, then its own).",
        epilog="Exit status: 0 every PNG (or report) was written; 2 bad arguments, a PATH "
        "that is not a readable run, or an output that cannot be written (one line on "
        "stderr, nothing drawn).")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="runs to plot")
    parser.add_argument("--overlay", action="store_true",
                        help="one graph of all runs' sent/s over time (e.g. three repeats), "
                        "overlay.png")
    parser.add_argument("--scatter", action="store_true",
                        help="maximum message rate against active chats, one point per run, "
                        "scatter.png")
    parser.add_argument("--html", action="store_true",
                        help="write the run's self-contained HTML report, "
                        "<unix>_performance_test_report.html beside its files, as a run "
                        "writes it; for a sweep directory its runs' and report.html, for a "
                        "capacity search's its steps' and its own")
    parser.add_argument("-o", "--out", default=None, metavar="PATH",
                        help="a directory to draw into (default: the current one for "
                        "--overlay/--scatter, each run's own directory otherwise), or a "
                        "NAME.png when one PNG is drawn (NAME.html: one run's --html)")
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
    if args.html:
        return _html(args.paths, args.out, kinds)
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



def _html(paths: Sequence[Path], out: str | None, kinds: Sequence[str]) -> int:
    """--html: every report the PATHs hold, written again; exit 2 and nothing written on bad
    input, as for the PNGs."""
    from .html import kind_of, sweep_runs, write_reports

    try:
        if kinds:
            raise UsageError(f"--html writes reports, not --{kinds[0]}: give one or the other")
        plan: list[tuple[Path, Path | None]] = []
        for path in paths:
            if not path.exists():
                raise RunFileError(f"{path}: no such file or directory")
            kind = kind_of(path)
            target = _html_target(out, path, kind, len(paths))
            # A PATH that is not a run, or a sweep with one that is not, fails here: before
            # any report is written.
            for run in sweep_runs(path) if kind == "sweep" else [path] if kind == "run" else []:
                load_run(run)
            folder = target.parent if target else path if path.is_dir() else path.parent
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UsageError(f"cannot write in {folder}: not a writable directory")
            plan.append((path, target))
    except (RunFileError, UsageError) as exc:
        print(f"esmeperf-plot: error: {exc}", file=sys.stderr)
        return 2
    for path, target in plan:
        try:
            written = write_reports(path, target)
        except RunFileError as exc:
            print(f"esmeperf-plot: error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"esmeperf-plot: error: cannot write the report of {path}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 2
        for report in written:
            print(report)
    return 0


def _html_target(out: str | None, path: Path, kind: str, count: int) -> Path | None:
    """Where -o puts one run's report (None: beside the run's files)."""
    if out is None:
        return None
    if kind != "run" or count > 1:
        raise UsageError(f"-o {out}: with --html only for one run (a sweep's or capacity "
                         "search's reports go in its own directories, each linked from the "
                         "next)")
    if os.path.isdir(out):
        from .html import report_path

        return report_path(load_run(path), Path(out))
    if not out.lower().endswith(".html"):
        raise UsageError(f"-o {out}: not a .html file name (give NAME.html or a directory)")
    if not Path(out).parent.is_dir():
        raise UsageError(f"-o {out}: no such directory: {Path(out).parent}")
    return Path(out)
