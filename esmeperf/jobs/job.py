"""One job as the command line runs it: the embedded target, the run, the files, the last line."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings, Target
from ..engine.signals import Lifecycle
from ..errors import ConfigError, EsmePerfError, TargetStartError
from ..measure.attribution import ACHIEVED_WARN, GENERATOR, REMEDY, UNDETERMINED
from ..status import ExitStatus
from ..system import openfiles

if TYPE_CHECKING:
    from ..engine.run import Outcome
    from ..engine.shards import ShardLauncher
    from ..measure.live import Endpoint
    from ..target.launcher import TargetProcess

log = logging.getLogger("esmeperf")


@dataclass(frozen=True)
class Dask:
    """Where the shards of a distributed run go: a scheduler's address, or a LocalCluster."""

    scheduler: str | None = None
    local_workers: int | None = None


@dataclass(frozen=True)
class Job:
    """What every run of one command shares (a sweep's runs, a capacity search's steps)."""

    target: Target | None  # the configured ESME; None: an embedded target for each run
    target_args: tuple[str, ...] = ()  # the embedded target's extra arguments
    debug: bool = False
    # The owner of SIGINT and SIGTERM for the whole job, from the first flag to the last file.
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    dask: Dask | None = None
    live: Endpoint | None = None  # the --metrics-port endpoint (measure/live.py)


def run_job(settings: Settings, job: Job,
            on_result: Callable[[Outcome], None] | None = None) -> int:
    """One run, its files and its last line; an error before it started (the embedded target,
    the Dask cluster) is one line, exit 1 (2 for a configuration error). `on_result` sees the
    outcome before its files are written (the capacity search's steps)."""
    job.lifecycle.next_run()
    try:
        if job.dask is None:
            from ..engine.shards import ProcessLauncher  # the run-time dependencies, now

            launcher = ProcessLauncher() if settings.processes > 1 else None
            return _run(settings, job, launcher, on_result)
        from ..engine.dask import DaskCluster

        with DaskCluster(scheduler=job.dask.scheduler,
                         local_workers=job.dask.local_workers) as cluster:
            log.info("Dask cluster: %d workers", len(cluster.workers))
            settings = replace(settings, processes=len(cluster.workers))
            return _run(settings, job, cluster.launcher(), on_result)
    except EsmePerfError as exc:
        if job.debug:
            log.exception("failed")
        print(f"esmeperf: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE if isinstance(exc, ConfigError) else ExitStatus.ERROR


def _run(settings: Settings, job: Job, launcher: ShardLauncher | None,
         on_result: Callable[[Outcome], None] | None) -> int:
    # Imported late: --help, bad input and the man page build need no run-time dependency.
    from ..engine import preflight
    from ..engine.run import Engine

    embedded, target = None, job.target
    if target is None:
        embedded = _start_embedded(settings, list(job.target_args))
        target = Target.from_mapping(embedded.config, "embedded target", embedded=True)
        log.info("embedded target on %s (pid %s)", target.messenger_ws_url, embedded.pid)
    try:
        tokens = preflight.check(target, settings)
        engine = Engine(target, settings, lifecycle=job.lifecycle, tokens=tokens,
                        launcher=launcher, embedded=embedded)
        if job.live is not None:  # scrapes read this run's measurements from now on
            job.live.attach(engine.run_id, engine.metrics, settings, engine.life.stopped)
        result = engine.run()
        if embedded is not None and embedded.returncode is not None and result.first_error:
            # Name the root cause: the workers only saw their sockets die.
            result.first_error.message += (
                f" (the embedded target had exited with status {embedded.returncode})")
        elif embedded is not None and result.first_error and embedded.ran_out_of_files():
            result.first_error.message = openfiles.with_target_out_of_files(
                result.first_error.message)
        elif embedded is not None:
            log.info("reading the target's /stats")
            try:
                stats = embedded.stats(send_interval_ms=settings.smi)
                # Per second, for the series beside the round trip; the summary keeps the rest.
                result.target_handling = {int(second): figures for second, figures in
                                          (stats.pop("handling_by_second", None) or {}).items()}
                result.target_stats = stats
            except Exception as exc:  # noqa: BLE001 - stats are a bonus, never fatal
                log.warning("could not read the target's /stats: %s", exc)
        result.seal()  # the shards' final reports: a late one is merged up to here
        if on_result is not None:
            on_result(result)
        # The lifecycle holds any signal from the end of the run to here (FINISHING).
        status = _report(result, job.live)
        if job.lifecycle.held:
            log.warning("stopped by %s after writing the results", job.lifecycle.held[0])
            return ExitStatus.INTERRUPTED
        return status
    finally:
        if embedded is not None:
            embedded.stop()


def _start_embedded(settings: Settings, target_args: list[str]) -> TargetProcess:
    from ..target.launcher import TargetError, TargetProcess

    process = TargetProcess(*target_args, "--organizers", str(settings.organizers))
    log.info("starting the embedded target")
    try:
        process.start()
    except TargetError as exc:
        process.stop()
        raise TargetStartError(f"could not start the embedded target: {exc}") from exc
    except BaseException:  # Ctrl-C while waiting for it: leave no child behind
        process.stop()
        raise
    return process


def _report(result: Outcome, live: Endpoint | None = None) -> int:
    from ..plot.child import draw
    from ..results import report
    from ..results.summary import PLOT_SUFFIX, build_summary, write_results, write_summary

    summary = build_summary(result)
    status = result.status
    failed = [g for g in summary["gates"] if not g["passed"]]
    if status == ExitStatus.OK and failed:
        status = ExitStatus.THRESHOLD
    summary["exit_status"] = int(status)
    if live is not None:  # the verdicts, served until the job ends
        live.finish(summary)
    stamp = int(time.time())
    out_dir = result.settings.out_dir
    log.info("writing the results")
    try:
        paths = write_results(result, summary, out_dir, stamp)
    except OSError as exc:
        # Results survive: fall back to the temp directory rather than lose them.
        out_dir = Path(tempfile.mkdtemp(prefix="esmeperf-results-"))
        log.error("cannot write results to %s (%s); writing them to %s", result.settings.out_dir,
                  exc, out_dir)
        paths = write_results(result, summary, out_dir, stamp)
    # The PNG and the HTML report, from the files just written, by a child process: matplotlib
    # never loads into this one, which measured (plot/child.py).
    paths.update(draw(paths["summary"], out_dir / f"{stamp}{PLOT_SUFFIX}"
                      if result.settings.plot else None, result.settings.html_report))
    export = result.settings.summary_export
    if export is not None:
        try:
            paths["summary_export"] = write_summary(summary, export)
        except OSError as exc:  # checked before the run; the summary is in --out all the same
            log.error("cannot write --summary-export %s (%s)", export, exc)
    # The table (stdout) lists the files; the logs (stderr) end with the final line.
    if result.settings.report:
        report.show(summary, paths)
        print(final_line(summary, failed), file=sys.stderr)
    if result.first_error is not None and result.settings.debug:
        print(result.first_error.traceback, file=sys.stderr, end="")
    return int(status)


def final_line(summary: dict[str, Any], failed: list[dict[str, Any]]) -> str:
    """The one line every run ends with: what ran, what failed, and who limited it."""
    rtt = summary["latency"]["message_rtt"]
    p99 = f", rtt p99 {rtt['p99_ms']:g} ms" if rtt.get("count") else ""
    ratio = summary["delivered_ratio"]
    sent, missed = summary["messages_sent"], summary.get("messages_missed") or 0
    achieved = summary.get("achieved_ratio")
    due = (f" of {sent + missed} due ({achieved:.2f})"
           if achieved is not None and achieved < ACHIEVED_WARN else "")
    text = (f"esmeperf: ended by {summary['end_reason']}: "
            f"{summary['created_participants_count']} participants, "
            f"{summary['chats_count']} chats, {sent} sent{due}, "
            f"{summary['messages_delivered']} delivered"
            + (f" ({ratio:.4f})" if ratio is not None else "") + p99)
    error = summary["first_error"]
    if error:
        text += f"; error: {error['thread']}: {error['message']}"
    for gate in failed:
        text += f"; gate {gate['gate']} failed: {gate['measured']} vs {gate['limit']}"
    verdict = summary.get("attribution") or {}
    who = verdict.get("limited_by")
    if who in (GENERATOR, UNDETERMINED) and verdict.get("source") == "latency":
        # A healthy generator whose latency figures are still not the target's (issue 37).
        text += ("; rtt limited by the generator, not the target" if who == GENERATOR else
                 "; rtt mostly outside the target's own handling: not the target's alone")
    elif who in (GENERATOR, UNDETERMINED) and not (error and error.get("attribution")):
        # A judged error says it in its own words; anything else gets the verdict here.
        text += ("; generator SUSPECT: " + ("the generator limited this run, not the target"
                                            if who == GENERATOR else
                                            "these figures may describe it, not the target")
                 + f": {REMEDY}")
    return text
