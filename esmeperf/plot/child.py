"""A finished run's PNG and HTML report, drawn apart from the process that measured (issue 38).

matplotlib never loads into the process that measured: importing it and drawing a run's figures
takes about 65-80 MB and a second of CPU, which would count in the generator's peak memory and
in its CPU per message. The run's files are written first; the drawing reads them back (as
`esmeperf-plot` does) and draws from them alone, so a picture can never show what the files do
not hold. A drawing that fails or hangs costs the picture, never the results nor the exit status.

Two ways, one program:

- `draw()`: a child process, waited for (a sweep's runs, a capacity search's steps, a run
  called in-process, as the tests do);
- `defer()` then `exec_pending()`: the command line's own run (`python -m esmeperf`) replaces
  itself with the drawing once everything else is done (results, table, final line, the target
  stopped), so the generator's memory is gone before matplotlib's arrives, and the whole job's
  peak is the larger of the two, not their sum. The process (its PID) ends when the drawing has,
  with the run's exit status.

    python -m esmeperf.plot.child SUMMARY [--png PATH] [--html] [--exit-status N]

prints `plot PATH` and `report PATH` for what it wrote, one a line (not with --exit-status: the
run's table listed them already); errors go to stderr, one a line. The exit status is N with
--exit-status, else 1 when anything failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ..results.summary import report_beside
from ..status import ExitStatus

log = logging.getLogger("esmeperf")

#: How long the child may take to draw before it is killed (a PNG takes about a second).
DRAW_TIMEOUT_S = 120.0


#: The command line's drawing, deferred to exec_pending() (None: draw in a child at once).
_pending: list[list[str]] | None = None


def _argv(summary: Path, png: Path | None, html: bool) -> list[str]:
    return [str(summary), *(["--png", str(png)] if png is not None else []),
            *(["--html"] if html else [])]


def _env() -> dict[str, str]:
    """The environment with this esmeperf package first on the path, however it was found."""
    package_root = str(Path(__file__).resolve().parents[2])  # the esmeperf package's parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def defer() -> None:
    """From now on, a run's drawing waits for exec_pending() (the command line calls this)."""
    global _pending
    _pending = []


def exec_pending(status: int) -> int:
    """Replace this process with the drawing deferred, which exits with `status`; without
    any, return `status`. Called last, by the command line alone."""
    if not _pending:
        return status
    argv = [sys.executable, "-m", "esmeperf.plot.child", *_pending[-1],
            "--exit-status", str(int(status))]
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execve(sys.executable, argv, _env())
    except OSError as exc:  # the results are written: the picture alone is lost
        log.error("could not draw the figures: cannot start the drawing: %s", exc)
    return status


def draw(summary: Path, png: Path | None, html: bool,
         timeout: float = DRAW_TIMEOUT_S) -> dict[str, Path]:
    """Have a child draw the run whose summary is `summary`: its PNG to `png` (None: none)
    and, with `html`, its HTML report beside its files. Returns what was written, by kind
    ("plot", "report"); whatever failed is logged as an error. Deferred (defer()), what will
    be written is returned, and exec_pending() draws it."""
    if png is None and not html:
        return {}
    if _pending is not None:
        _pending.append(_argv(summary, png, html))
        return {**({"plot": png} if png is not None else {}),
                **({"report": report_beside(summary)} if html else {})}
    argv = [sys.executable, "-m", "esmeperf.plot.child", *_argv(summary, png, html)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_env(),
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        log.error("could not draw the figures: the drawing process took over %g s", timeout)
        return {}
    except OSError as exc:
        log.error("could not draw the figures: cannot start the drawing process: %s", exc)
        return {}
    for line in done.stderr.splitlines():
        if line.strip():
            log.error("%s", line)
    if done.returncode and not done.stderr.strip():
        log.error("could not draw the figures: the drawing process exited with status %d",
                  done.returncode)
    written = {}
    for line in done.stdout.splitlines():
        kind, _, path = line.partition(" ")
        if kind in ("plot", "report") and path:
            written[kind] = Path(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Draw what the arguments ask for; go on past a failure, and report each on stderr."""
    parser = argparse.ArgumentParser(prog="python -m esmeperf.plot.child")
    parser.add_argument("summary", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--html", action="store_true")
    parser.add_argument("--exit-status", type=int, default=None)
    args = parser.parse_args(argv)
    if args.exit_status is None:
        return _draw(args, prefix="", listed=True)
    # In place of the run's process: its logs' words, and a signal's end (130) as the run's
    # own would be, in one line, without a traceback. SIGTERM counts as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        _draw(args, prefix="esmeperf: ", listed=False)
    except KeyboardInterrupt:
        print("esmeperf: interrupted while drawing the figures; the results are written",
              file=sys.stderr)
        return int(ExitStatus.INTERRUPTED)
    return args.exit_status


def _draw(args: argparse.Namespace, prefix: str, listed: bool) -> int:
    """Draw what `args` ask for; 1 when anything failed, else 0."""
    from ..results.rundata import load_run
    from .command import title_of
    from .figures import plot_run
    from .html import write_run_report

    failed = False
    if args.png is not None:
        try:
            run = load_run(args.summary)
            drawn = plot_run(run.rows, title_of(run), args.png, run.summary)
            if listed:
                print("plot", drawn, flush=True)
        except Exception as exc:  # noqa: BLE001 - a plot failure must not hide the report
            print(f"{prefix}could not draw the plot: {exc}", file=sys.stderr)
            failed = True
    if args.html:
        try:
            written = write_run_report(args.summary)
            if listed:
                print("report", written, flush=True)
        except Exception as exc:  # noqa: BLE001 - reported, as the plot's
            print(f"{prefix}could not write the HTML report: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
