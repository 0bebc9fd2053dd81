"""One job as the command line runs it: the embedded target, the run, the files, the last line."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Output, Settings, Target
from ..engine.signals import Lifecycle
from ..errors import ConfigError, EsmePerfError, TargetStartError
from ..status import ExitStatus
from ..verdict.decide import decide, final_line

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


def run_job(settings: Settings, output: Output, job: Job,
            on_result: Callable[[Outcome], None] | None = None) -> int:
    """One run, its files and its last line; an error before it started (the embedded target,
    the Dask cluster) is one line, exit 1 (2 for a configuration error). `on_result` sees the
    outcome before its files are written (the capacity search's steps)."""
    job.lifecycle.next_run()
    try:
        if job.dask is None:
            from ..engine.shards import ProcessLauncher  # the run-time dependencies, now

            launcher = ProcessLauncher() if settings.processes > 1 else None
            return _run(settings, output, job, launcher, on_result)
        from ..engine.dask import DaskCluster

        with DaskCluster(scheduler=job.dask.scheduler,
                         local_workers=job.dask.local_workers) as cluster:
            log.info("Dask cluster: %d workers", len(cluster.workers))
            settings = replace(settings, processes=len(cluster.workers))
            return _run(settings, output, job, cluster.launcher(), on_result)
    except EsmePerfError as exc:
        if job.debug:
            log.exception("failed")
        print(f"esmeperf: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE if isinstance(exc, ConfigError) else ExitStatus.ERROR


def _run(settings: Settings, output: Output, job: Job, launcher: ShardLauncher | None,
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
                        launcher=launcher, embedded=embedded,
                        progress=None if output.quiet else sys.stderr)
        if job.live is not None:  # scrapes read this run's measurements from now on
            job.live.attach(engine.run_id, engine.metrics, settings, engine.life.stopped)
        result = engine.run()  # finished: the target's part and the shards' reports in it
        if on_result is not None:
            on_result(result)
        # The lifecycle holds any signal from the end of the run to here (FINISHING).
        return _report(result, output, job)
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


def _report(result: Outcome, output: Output, job: Job) -> int:
    """Write the run's files, show its table and final line; return its exit status. The
    verdict (verdict/decide.py) is the summary's: a signal held while the files were written
    is in it, and the summary is written again if one came after it was first written."""
    from ..plot.child import draw
    from ..results import report
    from ..results.summary import (
        PLOT_SUFFIX,
        build_summary,
        with_verdict,
        write_results,
        write_summary,
    )

    summary = build_summary(result, _held(job))
    if job.live is not None:  # the verdicts, served until the job ends
        job.live.finish(summary)
    stamp = int(time.time())
    out_dir = output.out_dir
    log.info("writing the results")
    try:
        paths = write_results(result, summary, out_dir, stamp)
    except OSError as exc:
        # Results survive: fall back to the temp directory rather than lose them.
        out_dir = Path(tempfile.mkdtemp(prefix="esmeperf-results-"))
        log.error("cannot write results to %s (%s); writing them to %s", output.out_dir,
                  exc, out_dir)
        paths = write_results(result, summary, out_dir, stamp)
    def mark_held() -> None:  # a signal while the files were written: the summary says so
        if _held(job) != summary["verdict"]["held_signal"]:
            write_summary(with_verdict(summary, _held(job)), paths["summary"])

    mark_held()  # before the drawing, which reads the summary file
    # The PNG and the HTML report, from the files just written, by a child process: matplotlib
    # never loads into this one, which measured (plot/child.py).
    paths.update(draw(paths["summary"], out_dir / f"{stamp}{PLOT_SUFFIX}"
                      if output.plot else None, output.html_report))
    mark_held()
    export = output.summary_export
    if export is not None:
        try:
            paths["summary_export"] = write_summary(summary, export)
        except OSError as exc:  # checked before the run; the summary is in --out all the same
            log.error("cannot write --summary-export %s (%s)", export, exc)
    verdict = decide(summary)
    if verdict.held:
        log.warning("stopped by %s after writing the results", verdict.held)
    # The table (stdout) lists the files; the logs (stderr) end with the final line.
    if output.report:
        report.show(summary, paths)
        print(final_line(summary, verdict), file=sys.stderr)
    if result.first_error is not None and job.debug:
        print(result.first_error.traceback, file=sys.stderr, end="")
    return verdict.status


def _held(job: Job) -> str | None:
    """The first signal held since the run ended (engine/signals.py), if any."""
    return job.lifecycle.held[0] if job.lifecycle.held else None
