"""`--find-capacity`: a stepped search for the knee, the active chats past which the target stops
keeping up (issue 16). ESME's analysis found it by hand over repeated runs.

Each step is a whole run (its own embedded target when there is no config, its own files in
`capacity/NN_chatsN/`) that holds N active chats: N participants arrive every STEP_CPI_MS, the
organizer starts a chat every STEP_CPI_MS / 2 so it keeps up, then the step warms up and measures
for at least MEASURE_S seconds. A step passes when, over its measured window:

- the sends made are at least MIN_RATE_RATIO of the sends due: every send slot of the -smi grid
  is either made or skipped by a participant a whole interval late (pacing.py), so the verdict
  comes from the schedule itself, not from a rate whose window edges count a few intervals of
  a slow step against it;
- delivered / sent >= MIN_DELIVERED (the whole step, after the echoes drained),
- round-trip p99 <= --max-p99 (default 1 s),
- nothing went wrong (no error, no stall).

Steps double from --start-chats (default START_CHATS) until one fails, then bisect between the
last pass and the first failure until they are within RESOLUTION of each other, all within
--duration (default DEFAULT_BUDGET_S). A failing step whose generator was saturated over its
measured window (health.window) failed for the generator, not the target: the search stops
there and names no knee (`limited_by` "generator"). A step cut short (a signal, or the
generator out of open files) is `interrupted`: neither a pass nor a failure. A search that
ended without a failure (out of budget, open files or interrupted) names no knee either: its
highest passing step is a lower bound (`limited_by` "none").
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Output, Settings
from ..measure import attribution, health
from ..results.rundata import STEPS_DIR
from ..results.summary import write_summary
from ..status import ExitStatus
from ..system import openfiles
from ..verdict import decide, gates, words

if TYPE_CHECKING:
    from ..engine.run import Outcome

log = logging.getLogger("esmeperf")

START_CHATS = 16
STEP_CPI_MS = 10.0  # arrivals in a step: 100 a second, within what one generator process holds
WARMUP_S = 3.0  # after the last arrival, before the measured window (at least 3 intervals)
MEASURE_S = 10.0  # the measured window (at least 5 intervals)
MIN_RATE_RATIO = 0.99
MIN_DELIVERED = 0.999
DEFAULT_MAX_P99_MS = 1000.0
DEFAULT_BUDGET_S = 600.0
RESOLUTION = 0.10  # bisect until the bracket is within 10 % of the passing side
CAPACITY_PLOT_SUFFIX = "_performance_test_capacity.png"


@dataclass
class Step:
    """One step of the search and what it measured."""

    chats: int
    intended_rate: float
    achieved_rate: float = 0.0
    delivered_ratio: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    chats_started: int = 0
    generator_limited: bool = False
    generator_reasons: tuple[str, ...] = ()
    exit_status: int = 0
    failed: tuple[str, ...] = ()  # the criteria it failed
    folder: str = ""
    due: int = 0  # send slots of the measured window: made or skipped
    made: int = 0  # the sends made in it
    interrupted: str = ""  # why the step was cut short (a signal, open files), if it was

    @property
    def passed(self) -> bool:
        return not self.failed and not self.interrupted

    @property
    def verdict(self) -> str:
        if self.interrupted:
            return "interrupted"
        return "pass" if self.passed else "FAIL"

    @property
    def attribution(self) -> str | None:
        """Who a failed step names (attribution.py): the generator when it was saturated."""
        if not self.failed:
            return None
        return attribution.GENERATOR if self.generator_limited else attribution.TARGET

    def as_dict(self) -> dict[str, Any]:
        return {"chats": self.chats, "intended_rate": round(self.intended_rate, 3),
                "achieved_rate": round(self.achieved_rate, 3),
                "rate_ratio": round(self.achieved_rate / self.intended_rate, 4)
                if self.intended_rate else None,
                "delivered_ratio": self.delivered_ratio, "rtt_p99_ms": self.p99_ms,
                "errors": self.errors, "chats_started": self.chats_started,
                "sends_due": self.due, "sends_made": self.made,
                "generator_limited": self.generator_limited,
                "generator_reasons": list(self.generator_reasons),
                "exit_status": self.exit_status, "passed": self.passed,
                "verdict": self.verdict, "interrupted": self.interrupted or None,
                "attribution": self.attribution,
                "failed": list(self.failed), "folder": self.folder}


def step_settings(base: Settings, chats: int) -> Settings:
    """The settings of the step holding `chats` active chats."""
    ramp_s = chats * STEP_CPI_MS / 1000
    warmup_s = max(WARMUP_S, 3 * base.smi / 1000)
    measure_s = max(MEASURE_S, 5 * base.smi / 1000)
    return replace(base, sci=STEP_CPI_MS / 2, cpi=STEP_CPI_MS, stages=(), surge=None,
                   max_participants=chats, duration=ramp_s + warmup_s + measure_s,
                   duration_source="--find-capacity", abort_on_fail=False)


def step_output(base: Output, out_dir: Path) -> Output:
    """What a step writes: its files in its own directory, its summary also under a fixed
    name the search reads back, its HTML report (unless --no-report); no PNG, no progress line,
    no table (the search logs a line a step)."""
    return Output(out_dir=out_dir, summary_export=out_dir / "summary.json", quiet=True,
                  report=False, plot=False, html_report=base.html_report)


def measure_window(settings: Settings) -> float:
    return max(MEASURE_S, 5 * settings.smi / 1000)


def judge(step: Step, max_p99_ms: float) -> Step:
    """Fill in the criteria the step failed (none for a step that was cut short)."""
    if step.interrupted:
        step.failed = ()
        return step
    failed = []
    if step.made < MIN_RATE_RATIO * step.due or not step.due:
        failed.append(f"sends made {step.made} < {MIN_RATE_RATIO:g} x {step.due} due")
    # The rules of the gates --min-delivered-ratio and --max-p99 (verdict/gates.py).
    if not gates.by_key("min_delivered_ratio").passes(step.delivered_ratio, MIN_DELIVERED):
        failed.append(f"delivered {step.delivered_ratio} < {MIN_DELIVERED:g}")
    if not gates.by_key("max_p99_ms").passes(step.p99_ms, max_p99_ms):
        failed.append(f"rtt p99 {step.p99_ms} ms > {max_p99_ms:g} ms")
    if step.errors or step.exit_status not in (ExitStatus.OK, ExitStatus.THRESHOLD):
        failed.append(f"errors {step.errors}, exit status {step.exit_status}")
    step.failed = tuple(failed)
    return step


@contextmanager
def _step_logs(debug: bool) -> Iterator[None]:
    """A step's own run logs (its target starting, its intervals, its shutdown) are detail in
    a search, which logs one line as each step starts and one as it ends: only the step's
    warnings and errors show, unless --debug."""
    previous = log.level
    if not debug:
        log.setLevel(max(previous, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(previous)


# Runs a step, fills its figures, gives its status.
StepRunner = Callable[[Settings, Output, Step], int]
# job.run_job(settings, output, job, on_result) for one job: a step's settings, what it
# writes, and what sees its outcome.
JobRunner = Callable[[Settings, Output, Callable[["Outcome"], None]], int]


def measured_by(run_job: JobRunner, debug: bool = False) -> StepRunner:
    """A StepRunner that runs the step as a whole job and reads its figures: the rate and p99
    of its measured window from the run's result, the rest from the summary it wrote. A
    step's own logs show only with `debug` (_step_logs)."""

    def run_step(settings: Settings, output: Output, step: Step) -> int:
        window = measure_window(settings)

        def on_result(result: Outcome) -> None:
            stop_s = result.stopped_ns / 1e9
            first, last = math.ceil(stop_s - window), math.floor(stop_s) - 1
            seconds = range(first, last + 1)
            metrics = result.ctx.metrics
            missed = metrics.missed.snapshot()
            step.made = sum(result.sent.get(s, 0) for s in seconds)
            step.due = step.made + sum(missed.get(s, 0) for s in seconds)
            step.achieved_rate = step.made / len(seconds) if len(seconds) else 0.0
            step.p99_ms = metrics.message_rtt.window_summary(first, last).get("p99_ms")
            # The generator's health over the same window as the verdict (not the whole run).
            verdict = health.window(metrics, first, last, result.settings)
            step.generator_limited = bool(verdict["suspect"])
            step.generator_reasons = tuple(health.own_reasons(verdict))
            error = result.first_error
            if error is not None and error.message.startswith(openfiles.OUT_OF_FILES_TEXT):
                step.interrupted = "the generator ran out of open files"

        with _step_logs(debug):
            try:
                status = run_job(settings, output, on_result)
            except KeyboardInterrupt:  # a signal while the step's target was starting
                step.interrupted = "a signal"
                return ExitStatus.INTERRUPTED
        try:
            assert output.summary_export is not None
            summary = json.loads(output.summary_export.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
        step.delivered_ratio = summary.get("delivered_ratio")
        step.errors = int((summary.get("counts") or {}).get("errors", 0)) + (
            1 if summary.get("first_error") else 0)
        step.chats_started = int(summary.get("chats_count") or 0)
        if status == ExitStatus.INTERRUPTED:
            step.interrupted = "a signal"
        return status

    return run_step


class Search:
    """The doubling-then-bisecting search; `run_step` runs one step and fills its figures."""

    def __init__(self, base: Settings, output: Output, run_step: StepRunner, budget_s: float,
                 max_chats: int | None, start_chats: int = START_CHATS) -> None:
        self.base = base
        self.output = output
        self.run_step = run_step
        self.budget_s = budget_s
        self.max_chats = max_chats
        self.max_p99_ms = base.gates.get("max_p99_ms") or DEFAULT_MAX_P99_MS
        self.steps: list[Step] = []
        self.started = time.monotonic()
        self.start_chats = start_chats
        self.interrupted = False
        self.bound = ""  # why the search stopped without a failure

    def run(self) -> None:
        passing, failing = 0, 0
        chats = self.start_chats
        while True:
            if failing and (failing - passing <= max(1, math.floor(passing * RESOLUTION))):
                return  # the knee is bracketed closely enough
            if self.max_chats is not None and chats > self.max_chats:
                if passing >= self.max_chats:
                    self.bound = f"open files: {self.max_chats} participants at most"
                    return
                chats = self.max_chats
            if not self._fits(chats):
                self.bound = f"--duration: no time left for a {chats}-chat step"
                return
            step = self._step(chats)
            if step.interrupted:
                self.interrupted = True
                self.bound = f"step {len(self.steps)} ({chats} chats) cut short by " \
                             f"{step.interrupted}"
                return
            if step.passed:
                passing = chats
            else:
                failing = chats
                if step.generator_limited:
                    return  # the generator's limit, not the target's: no knee from here
            if failing:
                chats = (passing + failing) // 2 if passing else max(1, failing // 2)
                if chats in (passing, failing) or chats < 1:
                    return
                if not passing and failing <= 1:
                    return
            else:
                chats *= 2

    def _fits(self, chats: int) -> bool:
        needed = step_settings(self.base, chats).duration or 0.0
        spent = time.monotonic() - self.started
        return spent + needed + 10 <= self.budget_s  # 10 s for a target's start and the files

    def _step(self, chats: int) -> Step:
        folder = f"{len(self.steps) + 1:02d}_chats{chats}"
        out_dir = self.output.out_dir / STEPS_DIR / folder
        out_dir.mkdir(parents=True, exist_ok=True)
        settings = step_settings(self.base, chats)
        step = Step(chats=chats, intended_rate=chats * 1000 / settings.smi, folder=folder)
        log.info("capacity step %d: %d chats (%.0f messages/s intended), %.0f s",
                 len(self.steps) + 1, chats, step.intended_rate, settings.duration or 0)
        status = self.run_step(settings, step_output(self.output, out_dir), step)
        step.exit_status = int(status)
        judge(step, self.max_p99_ms)
        self.steps.append(step)
        outcome = {"pass": "pass", "interrupted": f"interrupted by {step.interrupted}",
                   "FAIL": "FAIL: " + "; ".join(step.failed)}[step.verdict]
        log.info("capacity step %d: %d chats: %d of %d sends due made, %.1f of %.1f "
                 "messages/s, delivered %s, rtt p99 %s ms: %s%s", len(self.steps), chats,
                 step.made, step.due, step.achieved_rate, step.intended_rate,
                 step.delivered_ratio, step.p99_ms, outcome,
                 " (generator-limited: " + "; ".join(step.generator_reasons) + ")"
                 if step.generator_limited and step.failed else "")
        return step

    def result(self) -> dict[str, Any]:
        """The summary's `capacity` object: a knee only where a step failed for the target."""
        passed = [s for s in self.steps if s.passed]
        failed = [s for s in self.steps if s.failed]
        best = max(passed, key=lambda s: s.chats) if passed else None
        first_fail = min(failed, key=lambda s: s.chats) if failed else None
        knee = None
        if first_fail is not None and first_fail.generator_limited:
            limited_by = "generator"
            note = (f"the step of {first_fail.chats} chats failed while the generator itself "
                    f"was saturated ({'; '.join(first_fail.generator_reasons)}): that is not "
                    "the target's knee; spread the load (--processes, a Dask cluster) and "
                    "search again")
        elif first_fail is not None:
            limited_by, knee = "target", best
            note = (f"the target kept up with {best.chats} chats and not with "
                    f"{first_fail.chats} ({'; '.join(first_fail.failed)})" if best else
                    f"the target failed the first step, {first_fail.chats} chats "
                    f"({'; '.join(first_fail.failed)})")
        else:
            limited_by = "none"
            note = ("no step failed before the search ended"
                    + (f" ({self.bound})" if self.bound else "")
                    + (f": the knee is above {best.chats} chats, a lower bound" if best
                       else ": no step passed either, so nothing is known"))
        return {
            "knee_chats": knee.chats if knee else None,
            "knee_rate": round(knee.achieved_rate, 3) if knee else None,
            "limited_by": limited_by,
            "interrupted": self.interrupted,
            # The highest step that passed, knee or not (a lower bound without a knee).
            "highest_passing_chats": best.chats if best else None,
            "highest_passing_rate": round(best.achieved_rate, 3) if best else None,
            "note": note,
            "criteria": {"min_sends_made_ratio": MIN_RATE_RATIO,
                         "min_delivered_ratio": MIN_DELIVERED,
                         "max_p99_ms": self.max_p99_ms, "errors": 0,
                         "measured_window_s": measure_window(self.base)},
            "smi_ms": self.base.smi,
            "start_chats": self.start_chats,
            "steps": [s.as_dict() for s in self.steps],
        }


def find_capacity(base: Settings, output: Output, run_step: StepRunner,
                  start_chats: int = START_CHATS) -> int:
    """Search, then write the summary (the knee step's, with `capacity`), the PNG and (unless
    `output.html_report` is off) the HTML report, each step linked to its own."""
    budget = base.duration or DEFAULT_BUDGET_S
    limits = openfiles.limits()
    bounds = [n for n in (base.max_participants,
                          openfiles.participants_within(limits[0])
                          if limits and limits[0] > 0 else None) if n is not None]
    max_chats = min(bounds) if bounds else None  # --max-participants, or what files allow
    search = Search(base, output, run_step, budget, max_chats, start_chats)
    log.info("capacity search: doubling from %d chats, -smi %g ms, within %.0f s", start_chats,
             base.smi, budget)
    search.run()
    capacity = search.result()
    summary = _base_summary(output.out_dir, capacity)
    summary["capacity"] = capacity
    # The search's own verdict, not its knee step's (verdict/decide.py).
    verdict = decide.decide_search(capacity)
    summary["exit_status"] = verdict.status
    summary["verdict"] = verdict.as_dict()
    stamp = int(time.time())
    path = output.out_dir / f"{stamp}_performance_test_summary.json"
    write_summary(summary, path)  # atomic, with the umask, as every run's summary
    paths = {"summary": path}
    if output.plot and search.steps:
        from ..plot.figures import plot_capacity

        try:
            paths["plot"] = plot_capacity(capacity,
                                          output.out_dir / f"{stamp}{CAPACITY_PLOT_SUFFIX}")
        except Exception as exc:  # noqa: BLE001 - a plot failure must not hide the result
            log.error("could not draw the capacity plot: %s", exc)
    if output.html_report and search.steps:
        from ..plot.html import write_capacity_report

        try:
            paths["report"] = write_capacity_report(path)
        except Exception as exc:  # noqa: BLE001 - a report failure must not hide the result
            log.error("could not write the capacity report: %s", exc)
    print(render(capacity, paths))
    # The search ends with one line on stderr, as a run does.
    print(decide.search_line(capacity, verdict), file=sys.stderr)
    return verdict.status


def _base_summary(out_dir: Path, capacity: dict[str, Any]) -> dict[str, Any]:
    """The knee step's run summary (or the last step's), so tools that read a run read it."""
    steps = capacity["steps"]
    pick = next((s for s in steps if s["chats"] == (capacity["knee_chats"]
                                                    or capacity["highest_passing_chats"])
                 and s["passed"]), steps[-1] if steps else None)
    if pick is None:
        return {"description": "performance test capacity search"}
    try:
        summary = json.loads((out_dir / STEPS_DIR / pick["folder"] / "summary.json")
                             .read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    summary["description"] = "performance test capacity search"
    summary["end_reason"] = "capacity"
    return summary


def render(capacity: dict[str, Any], paths: dict[str, Path]) -> str:
    """The search as a table for stdout; its first line says who limited it, in words."""
    head = f"capacity: {decide.search_words(capacity)}"
    lines = [head,
             f"  {capacity['note']}",
             f"  {'step':<22}{'chats':>7}{'intended/s':>12}{'achieved/s':>12}{'made/due':>14}"
             f"{'delivered':>11}{'rtt p99':>10}  verdict"]
    for step in capacity["steps"]:
        ratio = step["delivered_ratio"]
        p99 = step["rtt_p99_ms"]
        verdict = step["verdict"] + (" (generator-limited)" if step["generator_limited"]
                                     and step["verdict"] == "FAIL" else "")
        made = f"{step['sends_made']}/{step['sends_due']}"
        lines.append(f"  {step['folder']:<22}{step['chats']:>7}{step['intended_rate']:>12.1f}"
                     f"{step['achieved_rate']:>12.1f}{made:>14}"
                     f"{words.ratio(ratio):>11}"
                     f"{'-' if p99 is None else f'{p99:.1f}ms':>10}  {verdict}")
    lines += ["", "files", *(f"  {kind:<20}{path}" for kind, path in paths.items())]
    return "\n".join(lines)
