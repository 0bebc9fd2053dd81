"""One job as the command line runs it: the embedded target, the run, the files, the last line."""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Settings, Target
from ..engine.signals import Lifecycle
from ..errors import ConfigError, EsmePerfError, TargetStartError
from ..measure.attribution import ACHIEVED_WARN, GENERATOR, REMEDY, UNDETERMINED
from ..status import ExitStatus
from ..system import openfiles

log = logging.getLogger("esmeperf")


def run_job(settings: Settings, target: Target | None, target_args: list[str], debug: bool,
            dask: tuple[str | None, int | None] | None = None,
            lifecycle: Lifecycle | None = None, live: Any = None,
            on_result: Callable[[Any], None] | None = None) -> int:
    """One run; an error before it started (the embedded target) is one line, exit 1.

    `lifecycle` owns the signals of the whole job (a sweep shares one across its runs), and
    so does `live`, the --metrics-port endpoint (esmeperf/measure/live.py) if any. `on_result` sees
    the run's result before its files are written (the capacity search's steps).
    """
    lifecycle = lifecycle or Lifecycle()
    lifecycle.next_run()
    try:
        if dask is None:
            return _run(settings, target, target_args, lifecycle, live=live,
                        on_result=on_result)
        from ..engine.dask import DaskCluster

        with DaskCluster(scheduler=dask[0], local_workers=dask[1]) as cluster:
            log.info("Dask cluster: %d workers", len(cluster.workers))
            settings = replace(settings, processes=len(cluster.workers))
            return _run(settings, target, target_args, lifecycle, cluster.launcher, live,
                        on_result)
    except EsmePerfError as exc:
        if debug:
            log.exception("failed")
        print(f"esmeperf: error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE if isinstance(exc, ConfigError) else ExitStatus.ERROR


def _run(settings: Settings, target: Target | None, target_args: list[str],
         lifecycle: Lifecycle, shard_launcher: Any = None, live: Any = None,
         on_result: Callable[[Any], None] | None = None) -> int:
    # Imported late: --help, bad input and the man page build need no run-time dependency.
    from ..engine import preflight
    from ..engine.run import Run

    embedded = None
    if target is None:
        embedded = _start_embedded(settings, target_args)
        target = Target.from_mapping(embedded.config, "embedded target", embedded=True)
        log.info("embedded target on %s (pid %s)", target.messenger_ws_url, embedded.pid)
    try:
        tokens = preflight.check(target, settings)
        run = Run(target, settings, lifecycle=lifecycle, tokens=tokens,
                  target_pid=embedded.pid if embedded else None,
                  target_alive=(lambda: embedded.returncode) if embedded else None)
        run.shard_launcher = shard_launcher
        if live is not None:  # scrapes read this run's measurements from now on
            live.attach(run.run_id, run.ctx.metrics, settings, run.ctx.stop)
        result = run.execute()
        if embedded is not None and embedded.returncode is not None and result.first_error:
            # Name the root cause: the workers only saw their sockets die.
            result.first_error.message += (
                f" (the embedded target had exited with status {embedded.returncode})")
        elif embedded is not None and result.first_error and embedded.ran_out_of_files():
            limit = openfiles.limits()
            result.first_error.message += (
                " (the embedded target ran out of open files, limit "
                f"{limit[0] if limit else 'unknown'}: raise ulimit -Hn)")
        elif embedded is not None:
            log.info("reading the target's /stats")
            try:
                stats = embedded.stats()
                # Per second, for the series beside the round trip; the summary keeps the rest.
                result.target_handling = {int(second): figures for second, figures in
                                          (stats.pop("handling_by_second", None) or {}).items()}
                result.target_stats = stats
            except Exception as exc:  # noqa: BLE001 - stats are a bonus, never fatal
                log.warning("could not read the target's /stats: %s", exc)
        if on_result is not None:
            on_result(result)
        # The lifecycle holds any signal from the end of the run to here (FINISHING).
        status = _report(result, live)
        if lifecycle.held:
            log.warning("stopped by %s after writing the results", lifecycle.held[0])
            return ExitStatus.INTERRUPTED
        return status
    finally:
        if embedded is not None:
            embedded.stop()


def _start_embedded(settings: Settings, target_args: list[str]) -> Any:
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


def _report(result: Any, live: Any = None) -> int:
    from ..plot.command import plot_run
    from ..results import report
    from ..results.summary import (
        PLOT_SUFFIX,
        build_summary,
        series_rows,
        write_results,
        write_summary,
    )

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
    if result.settings.plot:
        try:
            paths["plot"] = plot_run(series_rows(result), report.run_title(summary),
                                     out_dir / f"{stamp}{PLOT_SUFFIX}", summary)
        except Exception as exc:  # noqa: BLE001 - a plot failure must not hide the results
            log.error("could not draw the plot: %s", exc)
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
    who = (summary.get("attribution") or {}).get("limited_by")
    if who in (GENERATOR, UNDETERMINED) and not (error and error.get("attribution")):
        # A judged error says it in its own words; anything else gets the verdict here.
        text += ("; generator SUSPECT: " + ("the generator limited this run, not the target"
                                            if who == GENERATOR else
                                            "these figures may describe it, not the target")
                 + f": {REMEDY}")
    return text
