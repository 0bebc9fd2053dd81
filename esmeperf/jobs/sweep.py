"""Repeats and sweeps: run a matrix of intervals back to back, then compare the runs."""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ..config import Output, Settings
from ..errors import ConfigError
from ..plot.command import title_of
from ..plot.figures import plot_overlay, plot_run, plot_scatter
from ..plot.html import SWEEP_REPORT, write_sweep_report
from ..results.rundata import SWEEP_RUN_DIR, RunData, RunFileError, go_duration_ms, load_run
from ..results.summary import PLOT_SUFFIX
from ..status import ExitStatus
from ..verdict import decide, words

log = logging.getLogger("esmeperf")

STABLE_PLOT = "rates.png"  # a link to each run's PNG, a name that does not change between runs
REPORT = "report.md"
SCATTER = "scatter.png"



Run = tuple[Settings, Output]  # what one run of a sweep does, and what it writes


def matrix(settings: Settings, output: Output, scis: Sequence[float], cpis: Sequence[float],
           smis: Sequence[float], repeat: int) -> list[Run]:
    """One run per combination, each with its own output directory under output.out_dir."""
    runs = []
    for index, (sci, cpi, smi, k) in enumerate(
            itertools.product(scis, cpis, smis, range(1, repeat + 1)), 1):
        name = f"{index:02d}_sci{sci:g}_cpi{cpi:g}_smi{smi:g}_r{k}"
        runs.append((replace(settings, sci=sci, cpi=cpi, smi=smi),
                     replace(output, out_dir=output.out_dir / name)))
    return runs


def check_out(out_dir: Path) -> None:
    """Refuse an --out that already holds a sweep (ConfigError): a second sweep would mix its
    runs into the first's directories, and report.md would list only the new ones."""
    if not out_dir.is_dir():
        return
    found = sorted(p.name + "/" if p.is_dir() else p.name for p in out_dir.iterdir()
                   if p.name in (REPORT, SWEEP_REPORT, SCATTER)
                   or (p.name.startswith("overlay_") and p.suffix == ".png")
                   or (p.is_dir() and SWEEP_RUN_DIR.fullmatch(p.name)))
    if found:
        shown = ", ".join(found[:2]) + (f" and {len(found) - 2} more" if len(found) > 2 else "")
        raise ConfigError(f"--out {out_dir} already holds a sweep ({shown}): give another "
                          "directory, or move that one away")


def run_sweep(runs: Sequence[Run], run_one: Callable[[Settings, Output], int],
              out_dir: Path) -> int:
    """Run each with `run_one`; stop early only on a signal; then write the report
    (report.md, and report.html unless the runs' html_report is off: --no-report).

    An --out that already holds a sweep is refused first: exit 2, one line, nothing run.
    """
    try:
        check_out(out_dir)
    except ConfigError as exc:
        print(f"esmeperf: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    statuses: list[int] = []
    started: list[Output] = []
    for number, (settings, output) in enumerate(runs, 1):
        log.info("=== run %d of %d: sci %g cpi %g smi %g ms -> %s", number, len(runs),
                 settings.sci, settings.cpi, settings.smi, output.out_dir)
        try:
            status = run_one(settings, output)
            started.append(output)
        except KeyboardInterrupt:  # a signal before this run started (or between two runs)
            status = ExitStatus.INTERRUPTED
        statuses.append(status)
        if status == ExitStatus.INTERRUPTED:
            log.warning("sweep interrupted in run %d of %d", number, len(runs))
            break
        if status == ExitStatus.USAGE:  # refused before its load: the next runs would be too
            log.error("sweep stopped at run %d of %d: it was refused before any load",
                      number, len(runs))
            break
    loaded = []
    for output in started:
        try:
            loaded.append(load_run(output.out_dir))
        except RunFileError as exc:
            log.error("run in %s left no readable results: %s", output.out_dir, exc)
    for path in write_report(loaded, out_dir, html=all(o.html_report for _, o in runs)):
        log.info("report: %s", path)
    return decide.worst(statuses)  # the most serious of its runs' statuses


def write_report(runs: Sequence[RunData], out_dir: Path, html: bool = True) -> list[Path]:
    """Overlay graphs per parameter set, each run's plot under a stable name, the scatter, a
    Markdown table and (with `html`) report.html.

    Beside the run directories only overlay_*.png, scatter.png, report.md and report.html are
    written, so `runs/*_r*` and `runs/0[1-3]_*` name the runs alone.
    """
    if not runs:
        return []
    paths = []
    groups: dict[tuple[float, ...], list[RunData]] = {}
    for run in runs:
        groups.setdefault(tuple(run.params.values()), []).append(run)
    for key, group in groups.items():
        sci, cpi, smi = key
        name = f"overlay_sci{sci:g}_cpi{cpi:g}_smi{smi:g}.png"
        paths.append(plot_overlay(group, f"{group[0].label}: {len(group)} run(s)",
                                  out_dir / name))
    for run in runs:  # inside the run's directory, so globs over the runs match only them
        if run.folder:
            paths.append(stable_plot(run, out_dir / run.folder))
    paths.append(plot_scatter(runs, out_dir / SCATTER))
    report = out_dir / REPORT
    report.write_text(markdown_table(runs), encoding="utf-8")
    paths.append(report)
    if html:
        try:
            paths.append(write_sweep_report(runs, out_dir))
        except Exception as exc:  # noqa: BLE001 - the report must not hide the runs' files
            log.error("could not write the sweep's HTML report: %s", exc)
    return paths


def stable_plot(run: RunData, folder: Path) -> Path:
    """The run's PNG under a name that does not change from run to run (rates.png), for
    pages that link it: a link to the PNG the run drew, not a second copy of it; drawn only
    where the run drew none (--no-plot) or no link can be made."""
    stable = folder / STABLE_PLOT
    drawn = folder / f"{run.stem}{PLOT_SUFFIX}"
    if stable.is_symlink() or stable.exists():
        stable.unlink()
    if drawn.is_file():
        try:
            stable.symlink_to(drawn.name)
            return stable
        except OSError:  # a file system without symbolic links
            pass
    return plot_run(run.rows, title_of(run), stable, run.summary)


def markdown_table(runs: Sequence[RunData]) -> str:
    """One row per run: parameters, duration, participants (of planned), chats, max rate,
    delivery, p99, end reason and the generator's health (with its reasons below the table)."""
    lines = [
        "| run | sci ms | cpi ms | smi ms | duration s | participants (planned) | chats "
        "| max msg/s | delivered/sent | rtt p99 ms | ended by | generator |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    notes = []
    for run in runs:
        s, p = run.summary, run.params
        rate, _ = run.max_rate()
        ratio = s.get("delivered_ratio")
        p99 = (s.get("latency") or {}).get("message_rtt", {}).get("p99_ms")
        intervals = " | ".join(f"{p.get(k, 0):g}" for k in ("sci", "cpi", "smi"))
        planned = s.get("participants_planned")
        health = s.get("generator_health") or {}
        verdict = "" if not health else "suspect" if health.get("suspect") else "ok"
        name = run.folder or run.stem
        if health.get("reasons"):
            notes.append(f"- {name}: " + "; ".join(health["reasons"]))
        lines.append(
            f"| {name} | {intervals} "
            f"| {_seconds(s.get('participants_duration'))} "
            f"| {s.get('created_participants_count', '')}"
            + (f" ({planned})" if planned is not None else "")
            + f" | {s.get('chats_count', '')} | {rate} "
            f"| {'' if ratio is None else words.ratio(ratio)} | {'' if p99 is None else p99} "
            f"| {s.get('end_reason', '')} | {verdict} |")
    if notes:
        lines += ["", "Generator health (esmeperf's own limits, not the target's):", *notes]
    return "\n".join(lines) + "\n"


def _seconds(go_duration: object) -> str:
    """A Go duration string ("3.001335541s", "2m24.76s") as seconds to a tenth: "3.0"."""
    try:
        return f"{go_duration_ms(str(go_duration)) / 1000:.1f}"
    except ValueError:
        return ""
