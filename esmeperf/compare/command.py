"""`esmeperf-compare BASE NEW` (or `python -m esmeperf.compare`): did NEW regress against BASE?

BASE and NEW are run directories (one or more runs' *_performance_test_* files, esmeperf's or
ESME's Go test's), sweep directories (runs/NN_sci*_cpi*_smi*_r*/), or a run's file. The table
and the verdict are on stdout; the rules are in esmeperf/compare/rules.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import __version__
from ..errors import UsageError
from ..plot.page import Cell, Hover, Page, esc, link, num, table
from ..results.rundata import SWEEP_RUN_DIR, RunData, RunFileError, load_run
from ..results.summary import RATES_SUFFIX, SUMMARY_SUFFIX
from ..usage import Parser
from ..verdict import words
from . import noise as run_noise
from .rules import (
    Comparison,
    Noise,
    Row,
    Threshold,
    Thresholds,
    compare,
    suspect_runs,
)

OK, REGRESSION, USAGE, INCONCLUSIVE = 0, 3, 2, 4
Compared = tuple[str, Comparison, list[RunData], list[RunData]]  # label, result, base, new


def _number(low: float, high: float = float("inf"), kind: type = float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low:g} to {high:g}: {text!r}")
        return value
    return parse


_PCT, _AMOUNT = _number(0, 1e6), _number(0, 1e12)


def get_parser() -> argparse.ArgumentParser:
    """The esmeperf-compare argument parser (also the source of its man page)."""
    d = Thresholds()
    p = Parser(
        prog="esmeperf-compare",
        description="Compare a new run (or repeats of it) with a base: one row per figure "
        "(round-trip p50, p90, p99 and max, achieved rate, delivered ratio, errors, "
        "participants, chats) with base, new, change and verdict, then an overall verdict. "
        "A change counts when it is beyond both a share of the base and an absolute amount, "
        "and beyond the runs' noise: with repeats on both sides a seeded bootstrap interval "
        "of the difference of the means, with one run a side an interval from each run's "
        "own seconds (a moving-block bootstrap), must exclude zero. A worse figure within "
        "the noise, or while either side's generator was suspect, is inconclusive. ESME's Go "
        "test output works for the rate and count rows (its latency rows are n/a).",
        epilog="Exit status: 0 nothing regressed; 3 something regressed; 4 nothing regressed "
        "but something was inconclusive (worse, within the noise or with a suspect "
        "generator); 2 bad arguments, a BASE or NEW that is missing or holds no run, or a "
        "--png or --html that cannot be written (one line on stderr).")
    p.add_argument("base", type=Path, metavar="BASE",
                   help="the base: a run directory, a sweep directory or a run's file")
    p.add_argument("new", type=Path, metavar="NEW", help="the run(s) to judge, as BASE")
    p.add_argument("--png", type=Path, metavar="PATH",
                   help="also draw base and new side by side to PATH (.png): messages sent "
                   "per second, and the round-trip percentiles")
    p.add_argument("--html", type=Path, metavar="PATH",
                   help="also write the comparison as one self-contained HTML page to PATH "
                   "(.html): the verdict, each figure's row with its runs' values, the "
                   "charts, each run linked")
    t = p.add_argument_group("thresholds (a change counts when beyond both)")
    t.add_argument("--latency-pct", type=_PCT, default=d.latency.pct, metavar="PCT",
                   help="round-trip p50/p90/p99 worse by more than PCT %% of the base "
                   "(default: %(default)g)")
    t.add_argument("--latency-ms", type=_AMOUNT, default=d.latency.absolute, metavar="MS",
                   help="... and by more than MS milliseconds (default: %(default)g)")
    t.add_argument("--max-pct", type=_PCT, default=d.max.pct, metavar="PCT",
                   help="round-trip max worse by more than PCT %% (default: %(default)g)")
    t.add_argument("--max-ms", type=_AMOUNT, default=d.max.absolute, metavar="MS",
                   help="... and by more than MS milliseconds (default: %(default)g)")
    t.add_argument("--rate-pct", type=_PCT, default=d.rate.pct, metavar="PCT",
                   help="achieved rate lower by more than PCT %% (default: %(default)g)")
    t.add_argument("--ratio-drop", type=_number(0, 1), default=d.ratio.absolute,
                   metavar="R", help="delivered ratio lower by more than R "
                   "(default: %(default)g)")
    t.add_argument("--errors", type=_AMOUNT, default=d.errors.absolute, metavar="N",
                   help="more than N errors above the base's (default: %(default)g)")
    t.add_argument("--count-pct", type=_PCT, default=d.count.pct, metavar="PCT",
                   help="participants or chats lower by more than PCT %% "
                   "(default: %(default)g)")
    n = p.add_argument_group("repeats (two or more runs on both sides)")
    n.add_argument("--confidence", type=_number(50, 99.99), default=Noise.confidence,
                   metavar="PCT", help="the bootstrap interval's confidence "
                   "(default: %(default)g)")
    n.add_argument("--resamples", type=_number(100, 1_000_000, int), default=Noise.resamples,
                   metavar="N", help="bootstrap resamples (default: %(default)d)")
    n.add_argument("--seed", type=_number(0, 2**63, int), default=Noise.seed, metavar="N",
                   help="the bootstrap's seed: the same runs give the same interval "
                   "(default: %(default)d)")
    p.add_argument("--version", action="version", version=f"esmeperf-compare {__version__}")
    return p


def load_side(what: str, path: Path) -> list[RunData]:
    """Every run in `path`: a sweep's run directories, or each run's files in a directory."""
    if not path.exists():
        raise UsageError(f"{what} {path}: no such file or directory")
    try:
        if not path.is_dir():
            return [load_run(path)]
        sweep = sorted(p for p in path.iterdir() if p.is_dir() and SWEEP_RUN_DIR.fullmatch(p.name))
        if sweep:
            return [load_run(p) for p in sweep]
        files = sorted(path.glob(f"*{SUMMARY_SUFFIX}")) + sorted(path.glob(f"*{RATES_SUFFIX}"))
        stems: dict[str, Path] = {}
        for file in files:  # one file per run: its summary, else its message rates
            stems.setdefault(file.name.split("_performance_test_")[0], file)
        if not stems:
            raise UsageError(f"{what} {path}: no run here (no *{SUMMARY_SUFFIX} or "
                             f"*{RATES_SUFFIX}, and no NN_sci*_cpi*_smi*_r* run directories)")
        return [load_run(file) for file in stems.values()]
    except RunFileError as exc:
        raise UsageError(f"{what}: {exc}") from None


def pair(base: list[RunData], new: list[RunData]) -> list[tuple[str, list[RunData],
                                                                  list[RunData]]]:
    """The groups to compare: runs of the same parameters (sci, cpi, smi) on both sides, or
    the two sides as they are when each holds one parameter set."""
    def groups(runs: list[RunData]) -> dict[str, list[RunData]]:
        out: dict[str, list[RunData]] = {}
        for run in runs:
            out.setdefault(run.label if run.params else "", []).append(run)
        return out

    left, right = groups(base), groups(new)
    if len(left) == 1 and len(right) == 1:
        (lkey, lruns), (rkey, rruns) = next(iter(left.items())), next(iter(right.items()))
        return [(lkey if lkey == rkey else f"{lkey or '?'} -> {rkey or '?'}", lruns, rruns)]
    common = [key for key in left if key in right]
    if not common:
        raise UsageError(f"BASE and NEW share no parameter set: BASE has {', '.join(left)}; "
                         f"NEW has {', '.join(right)}")
    return [(key, left[key], right[key]) for key in common]


def thresholds_of(args: argparse.Namespace) -> Thresholds:
    return Thresholds(latency=Threshold(args.latency_pct, args.latency_ms),
                      max=Threshold(args.max_pct, args.max_ms),
                      rate=Threshold(args.rate_pct, 0.0),
                      ratio=Threshold(0.0, args.ratio_drop),
                      errors=Threshold(0.0, args.errors),
                      count=Threshold(args.count_pct, 0.0))


def _fmt(value: float | None, unit: str, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    digits = {"ms": 3, "msg/s": 1}.get(unit, 4 if unit == "ratio" else 1)
    if unit == "" and float(value).is_integer():
        digits = 0
    return f"{value:{'+' if signed else ''}.{digits}f}"


def _unit(row: Row) -> str:
    return "ratio" if row.figure.label == "delivered ratio" else row.figure.unit


def render_table(comparison: Comparison, confidence: float) -> list[str]:
    """The rows, aligned: figure, base, new, change (and % of base), interval, verdict."""
    head = ["figure", "base", "new", "change", f"{confidence:g} % interval"
            if comparison.repeats or comparison.seconds else "", "verdict"]
    body = []
    for row in comparison.rows:
        unit = _unit(row)
        label = row.figure.label + (f" ({row.figure.unit})" if row.figure.unit else "")
        change = _fmt(row.change, unit, signed=True)
        if row.change_pct is not None and row.change:
            change += f" ({_relative(row.change_pct)})"
        interval = "" if row.interval is None else (
            f"[{_fmt(row.interval[0], unit, True)}, {_fmt(row.interval[1], unit, True)}]")
        body.append([label, _fmt(row.base_mean, unit), _fmt(row.new_mean, unit), change,
                     interval, row.verdict + (f" ({row.why})" if row.why else "")])
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = []
    for line in [head, *body]:
        cells = [line[0].ljust(widths[0]), *(c.rjust(w) for c, w in
                                             zip(line[1:4], widths[1:4], strict=True)),
                 line[4].ljust(widths[4]), line[5]]
        lines.append("  ".join(cells).rstrip())
    return lines


def _side(what: str, path: Path, runs: list[RunData]) -> str:
    kinds = {"esmeperf" if "run_id" in r.summary else "ESME Go test" for r in runs}
    return (f"{what:<5} {path}: {len(runs)} run{'s' if len(runs) > 1 else ''} "
            f"({', '.join(sorted(kinds))})")


def report(args: argparse.Namespace, base: list[RunData], new: list[RunData],
           thresholds: Thresholds, noise: Noise
           ) -> tuple[list[str], list[tuple[str, Row]], list[tuple[str, Row]], list[Compared]]:
    """The text on stdout, the regressed and the inconclusive rows, and the comparisons (for
    the PNG)."""
    lines = [_side("base", args.base, base), _side("new", args.new, new)]
    regressed: list[tuple[str, Row]] = []
    unsure: list[tuple[str, Row]] = []
    comparisons: list[Compared] = []
    for label, left, right in pair(base, new):
        comparison = compare(left, right, thresholds, noise)
        comparisons.append((label, comparison, left, right))
        lines += ["", f"{label or 'runs'}: {len(left)} base, {len(right)} new run(s)",
                  "noise: " + noise_rule(comparison, thresholds, noise)]
        lines += side_lines(left, right)
        lines += ["", *render_table(comparison, noise.confidence)]
        lines += [f"note: {note}" for note in suspect_notes(left, right)]
        regressed += [(label, row) for row in comparison.regressions]
        unsure += [(label, row) for row in comparison.inconclusive]
    return lines, regressed, unsure, comparisons


def noise_rule(comparison: Comparison, thresholds: Thresholds, noise: Noise) -> str:
    """When a change counts, for this comparison: the thresholds, and the noise it must
    clear (the runs' bootstrap, each run's own seconds, or none)."""
    t = thresholds
    rules = (f"p50-p99 +{t.latency.pct:g} % and +{t.latency.absolute:g} ms, max "
             f"+{t.max.pct:g} % and +{t.max.absolute:g} ms, rate -{t.rate.pct:g} %, delivered "
             f"ratio -{t.ratio.absolute:g}, errors +{t.errors.absolute:g}, participants and "
             f"chats -{t.count.pct:g} %")
    if comparison.repeats:
        return (f"repeats on both sides: a change counts beyond the thresholds ({rules}) and "
                f"when the {noise.confidence:g} % bootstrap interval of the difference of the "
                f"means ({noise.resamples} resamples, seed {noise.seed}) excludes 0")
    if comparison.seconds:
        return (f"one run a side: a change counts beyond the thresholds ({rules}) and when "
                f"the {noise.confidence:g} % interval from each run's own seconds "
                f"({run_noise.BLOCK_S} s blocks, {run_noise.RESAMPLES} draws) excludes 0")
    return (f"single runs without a noise estimate (fewer than {run_noise.MIN_SECONDS} whole "
            f"seconds, or no .hlog): a change counts beyond the thresholds ({rules})")


def side_lines(base: list[RunData], new: list[RunData]) -> list[str]:
    """Each side's runs as their own tables gave them: the generator's health and the steady
    rate (the summary's), so a suspect side or a rate read otherwise is in plain sight."""
    lines = []
    for what, runs in (("base", base), ("new", new)):
        cells = []
        for run in runs:
            # As the run's table said it: its health, and the round trip's tail where the
            # run itself gave that to the generator (compare counts both as suspect).
            health = run.summary.get("generator_health")
            state = ("n/a" if not isinstance(health, dict) else
                     words.suspect_words(bool(health.get("suspect"))))
            who = run.summary.get("attribution") or {}
            if who.get("source") == "latency" and who.get("limited_by") == "generator":
                state += ", rtt limited by the generator"
            rate = run.summary.get("steady_rate")
            cells.append(f"{run.folder or run.stem}: generator {state}, steady rate "
                         + (f"{rate:.1f} msg/s" if isinstance(rate, int | float) else "n/a"))
        lines.append(f"{what:<5} " + "; ".join(cells))
    return lines


def suspect_notes(base: list[RunData], new: list[RunData]) -> list[str]:
    notes = []
    for what, runs in (("BASE", base), ("NEW", new)):
        suspect = suspect_runs(runs)
        if suspect:
            notes.append(f"the generator was suspect in {suspect} of {len(runs)} {what} "
                         "run(s): their latencies describe it as well as the target, so a "
                         "worse figure is inconclusive, not a regression")
    return notes


def _changes(rows: list[tuple[str, Row]], several: bool) -> str:
    parts = []
    for label, row in rows:
        unit = _unit(row)
        text = f"{row.figure.label} {_fmt(row.change, unit, True)}" + (
            f" {row.figure.unit}" if row.figure.unit else "")
        if row.change_pct is not None:
            text += f" ({_relative(row.change_pct)})"
        if row.why:
            text += f", {row.why}"
        parts.append(f"{label}: {text}" if several and label else text)
    return "; ".join(parts)


def verdict_line(regressed: list[tuple[str, Row]], several: bool,
                 unsure: list[tuple[str, Row]] | None = None) -> str:
    if regressed:
        return "verdict: REGRESSION: " + _changes(regressed, several)
    if unsure:
        return "verdict: inconclusive: " + _changes(unsure, several)
    return "verdict: no regression"


def _relative(pct: float) -> str:
    """A change as a share of the base: `+20.3 %`, or `117x` once it is over ten times it."""
    ratio = 1 + pct / 100
    return f"{ratio:.0f}x" if ratio >= 10 else f"{pct:+.1f} %"


def check_png(path: Path, flag: str = "--png", suffix: str = ".png") -> None:
    if path.suffix.lower() != suffix:
        raise UsageError(f"{flag} {path}: not a {suffix} file name")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: no such directory: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: directory {folder} is not writable")


def side_name(path: Path) -> str:
    """A side as the legend names it: its directory's name (a run's file: its run's)."""
    path = path.resolve()
    return (path if path.is_dir() else path.parent).name or str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Compare; 0 no regression, 3 a regression, 2 bad input (one line on stderr)."""
    try:
        args = get_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or bad input already reported in one line
        return int(exc.code or 0)
    noise = Noise(args.confidence, args.resamples, args.seed)
    try:
        if args.png is not None:
            check_png(args.png)
        if args.html is not None:
            check_png(args.html, "--html", ".html")
        base, new = load_side("BASE", args.base), load_side("NEW", args.new)
        thresholds = thresholds_of(args)
        lines, regressed, unsure, comparisons = report(args, base, new, thresholds, noise)
    except UsageError as exc:
        print(f"esmeperf-compare: error: {exc}", file=sys.stderr)
        return USAGE
    verdict = verdict_line(regressed, len(comparisons) > 1, unsure)
    lines += ["", verdict]
    status = REGRESSION if regressed else INCONCLUSIVE if unsure else OK
    names = (side_name(args.base), side_name(args.new))
    if args.png is not None:
        from .figure import plot_comparison, side_names

        try:
            plot_comparison(comparisons, args.png, side_names(*names))
            lines.append(f"png: {args.png}")
        except OSError as exc:
            print(f"esmeperf-compare: error: cannot write {args.png}: {exc.strerror or exc}",
                  file=sys.stderr)
            return USAGE
    if args.html is not None:
        try:
            comparison_page(args, comparisons, verdict, status, names, thresholds,
                            noise).write(args.html, footer=f"Written by esmeperf-compare "
                                         f"{esc(__version__)}.")
            lines.append(f"html: {args.html}")
        except OSError as exc:
            print(f"esmeperf-compare: error: cannot write {args.html}: {exc.strerror or exc}",
                  file=sys.stderr)
            return USAGE
    try:
        print("\n".join(lines), flush=True)
    except BrokenPipeError:  # `| head`: the verdict is the exit status all the same
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return status


def comparison_page(args: argparse.Namespace, comparisons: list[Compared], verdict: str,
                    status: int, names: tuple[str, str], thresholds: Thresholds,
                    noise: Noise) -> Page:
    """The comparison as one HTML page: the verdict first, each side's runs linked, then for
    each parameter set its rows (every verdict beside its figures and each run's value) and
    its chart."""
    from .figure import LATENCY_ROWS, comparison_figure, side_names

    legend = side_names(*names)
    page = Page(f"esmeperf-compare: {names[0]} against {names[1]}",
                subtitle=esc(f"base {args.base}, new {args.new}"))
    tone = {OK: "ok", REGRESSION: "bad", INCONCLUSIVE: "warn"}[status]
    page.add(f'<section id="answer" class="answer {tone}"><p class="big">'
             f"{esc(verdict[0].upper() + verdict[1:])}</p><p>Exit status {status}: "
             f"{esc(words.status_words(status, 'esmeperf-compare'))}.</p>"
             + "".join(f"<p>{esc(line)}</p>" for _, _, base, new in comparisons
                       for line in side_lines(base, new)) + "</section>")
    out_dir = args.html.resolve().parent
    sides = []
    for what, path in (("base", args.base), ("new", args.new)):
        runs = {id(r): r for _, _, base, new in comparisons for r in
                (base if what == "base" else new)}
        items = "".join(f"<li>{_run_link(run, path, out_dir)}</li>"
                        for run in runs.values())
        sides.append(f"<p><b>{what}</b>: {esc(path)}, {len(runs)} run(s)</p><ul>{items}</ul>")
    page.section("runs", "Runs", *sides)
    for index, (label, comparison, base, new) in enumerate(comparisons):
        rows = []
        for row in comparison.rows:
            unit = _unit(row)
            change = _fmt(row.change, unit, signed=True)
            if row.change_pct is not None and row.change:
                change += f" ({_relative(row.change_pct)})"
            interval = "" if row.interval is None else (
                f"[{_fmt(row.interval[0], unit, True)}, {_fmt(row.interval[1], unit, True)}]")
            klass = {"REGRESSION": "bad-text", "inconclusive": "warn-text",
                     "better": "ok-text"}.get(row.verdict, "")
            rows.append([
                Cell(esc(row.figure.label + (f" ({row.figure.unit})" if row.figure.unit
                                             else ""))),
                _values(row.base_mean, row.base, unit),
                _values(row.new_mean, row.new, unit),
                num(change), num(interval),
                Cell(f'<span class="{klass}">{esc(row.verdict)}</span>'
                     + (f" ({esc(row.why)})" if row.why else ""))])
        notes = "".join(f"<p><b>Note</b>: {esc(n)}.</p>" for n in suspect_notes(base, new))
        page.section(f"set{index}", f"{label or 'runs'}: {len(base)} base, {len(new)} new "
                     "run(s)", f"<p>{esc(noise_rule(comparison, thresholds, noise))}.</p>",
                     table(["figure", Cell("base", num=True), Cell("new", num=True),
                            Cell("change", num=True),
                            Cell(f"{noise.confidence:g} % interval", num=True), "verdict"],
                           rows), notes)
        fig = comparison_figure([(label, comparison)], [(base, new)], legend)
        bars = [row for row in comparison.rows if row.figure.label in LATENCY_ROWS]
        hovers = [Hover(fig.axes[1], [
            f"{row.figure.label}: base {_fmt(row.base_mean, 'ms')} ms, new "
            f"{_fmt(row.new_mean, 'ms')} ms: {row.verdict}" for row in bars],
            list(range(len(bars))))]
        page.chart(fig, f"compare{index}", hovers)
    return page


def _values(mean: float | None, runs: list[float], unit: str) -> Cell:
    """A side's mean, and each run's value under it when there are several."""
    text = esc(_fmt(mean, unit))
    if len(runs) > 1:
        text += ('<br><span class="sub">' + esc(", ".join(_fmt(v, unit) for v in runs))
                 + "</span>")
    return Cell(text, num=True, title=", ".join(_fmt(v, unit) for v in runs))


def _run_link(run: RunData, side: Path, out_dir: Path) -> str:
    """A run's name, linked to its HTML report (or its directory) from the page's place."""
    folder = side if side.is_dir() else side.parent
    if run.folder and (folder / run.folder).is_dir() and folder.resolve().name != run.folder:
        folder = folder / run.folder
    from ..plot.html import report_path

    report = report_path(run, folder)
    target = report if report.exists() else folder
    href = Path(os.path.relpath(target.resolve(), out_dir)).as_posix()
    return link(href, f"{run.folder or run.stem}: {run.label}" if run.params
                else run.folder or run.stem)

