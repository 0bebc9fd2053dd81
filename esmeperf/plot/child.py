"""A finished run's PNG and HTML report, drawn by a child process (issue 38).

matplotlib never loads into the process that measured: importing it and drawing a run's figures
costs that process about 50 MB and a second of CPU, which would count in the generator's peak
memory and in its CPU per message, and which it would keep until it exits. The run's files are
written first; the child reads them back (as `esmeperf-plot` does) and draws from them alone, so
a picture can never show what the files do not hold. A child that fails or hangs costs the
picture, never the results: its errors are logged and the run's exit status is unchanged.

    python -m esmeperf.plot.child SUMMARY [--png PATH] [--html]

prints `plot PATH` and `report PATH` for what it wrote, one a line; errors go to stderr, one a
line, and the exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("esmeperf")

#: How long the child may take to draw before it is killed (a PNG takes about a second).
DRAW_TIMEOUT_S = 120.0


def draw(summary: Path, png: Path | None, html: bool,
         timeout: float = DRAW_TIMEOUT_S) -> dict[str, Path]:
    """Have a child draw the run whose summary is `summary`: its PNG to `png` (None: none)
    and, with `html`, its HTML report beside its files. Returns what was written, by kind
    ("plot", "report"); whatever failed is logged as an error."""
    if png is None and not html:
        return {}
    package_root = str(Path(__file__).resolve().parents[2])  # the esmeperf package's parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "esmeperf.plot.child", str(summary),
            *(["--png", str(png)] if png is not None else []), *(["--html"] if html else [])]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
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
    args = parser.parse_args(argv)
    from ..results.rundata import load_run
    from .command import title_of
    from .figures import plot_run
    from .html import write_run_report

    failed = False
    if args.png is not None:
        try:
            run = load_run(args.summary)
            print("plot", plot_run(run.rows, title_of(run), args.png, run.summary), flush=True)
        except Exception as exc:  # noqa: BLE001 - a plot failure must not hide the report
            print(f"could not draw the plot: {exc}", file=sys.stderr)
            failed = True
    if args.html:
        try:
            print("report", write_run_report(args.summary), flush=True)
        except Exception as exc:  # noqa: BLE001 - reported, as the plot's
            print(f"could not write the HTML report: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
