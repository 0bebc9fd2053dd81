"""One run's engine: it owns the run's life from the first sign-in to the last thread joined.

    engine = Engine(target, settings, lifecycle=..., launcher=..., progress=sys.stderr)
    outcome = engine.run()       # always returns, whatever ended the run: finished (the
                                 # target's part, the shards' final reports), edited by no one

The life (life.py) moves STARTING -> LOADING -> STOPPING -> DRAINING -> CLOSING -> FINISHED;
every end goes through one `stop(reason)`: the duration, the first error (a worker's, a
shard's, a lost shard's or scheduler's), a stall, a gate, a signal. The shutdown reads top to
bottom in `_shutdown`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from ..config import Settings, Target
from ..measure.cpu import CpuMeter, cpu_seconds
from ..measure.names import Count
from ..measure.stats import Metrics
from ..scenario.context import Context
from ..scenario.organizer import Organizer
from ..scenario.participant import Spawner
from ..system import openfiles
from . import gatewatch
from .life import EndReason, FirstError, Life, State
from .progress import Progress, Sample
from .shards import Command, ReportSink, ShardGroup, ShardLauncher, ShardSpec
from .signals import Lifecycle
from .workers import CLOSE_GRACE, StepClock, Workers, worker_thread_settings

log = logging.getLogger("esmeperf")

SETTLE = 0.1  # seconds between the stop and the first look at what is still unechoed
GATE_LAG_S = 2  # --abort-on-fail's window ends this many seconds before the current one
# Seconds, beyond the shutdown's own bounds, a shard gets to send its final report: its close
# frames, its threads joined, the report across its link (a Dask queue, a pipe).
REPORT_GRACE = 5.0


class EmbeddedTarget(Protocol):
    """The embedded target the run watches: its CPU by pid, and whether it died."""

    @property
    def pid(self) -> int | None: ...

    @property
    def returncode(self) -> int | None: ...

    def ran_out_of_files(self) -> bool: ...

    def stats(self, timeout: float = ..., send_interval_ms: float | None = ...
              ) -> dict[str, Any]: ...


@dataclass
class Outcome:
    """Everything the result files are made from; what Engine.run() returns, once."""

    run_id: str
    target: Target
    settings: Settings
    started_ns: int
    stopped_ns: int
    organizer_started_ns: int
    participants_started_ns: int
    end_reason: str
    ctx: Context
    samples: dict[int, Sample]
    first_error: FirstError | None = None
    late_errors: int = 0
    threads_alive: list[str] = field(default_factory=list)
    target_stats: dict[str, Any] | None = None
    # The embedded target's frame handling per Unix second (count, p50_us, p99_us, max_us).
    target_handling: dict[int, dict[str, int]] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    shards: list[dict[str, Any]] = field(default_factory=list)  # their reports, once sealed
    cpu_s: float = 0.0  # the generator's CPU: this process and its shards, not the target
    # Sends per second, taken once: the summary, the rates file and the series all use this
    # one copy, so they agree even if a straggler counts a send later (Go's bug 5.9.2).
    sent: dict[int, int] = field(default_factory=dict)
    shard_group: ShardGroup | None = None

    @property
    def metrics(self) -> Metrics:
        return self.ctx.metrics

    def seal(self) -> None:
        """Take the shards' final reports (a late one merged until now), their threads left,
        errors after the stop and CPU into the outcome (Engine.run() does, once)."""
        if self.shard_group is None:
            return
        reports = self.shard_group.seal()
        self.shard_group = None
        self.shards = [r.as_dict() for r in reports]
        self.late_errors += sum(r.late_errors or 0 for r in reports)
        self.threads_alive += [f"shard-{r.shard}/{name}" for r in reports for name in r.alive
                               or []]
        self.cpu_s += sum(r.cpu_s or 0.0 for r in reports)
        # Deltas merged since the engine took its copy (a late final report's last one).
        self.sent = self.metrics.sent.snapshot()
        if self.threads_alive:
            log.warning("threads still running after shutdown: %s",
                        ", ".join(self.threads_alive[:20]))


class Engine:
    """Runs the ESME scenario once: organizers here, participants here or in shards."""

    def __init__(self, target: Target, settings: Settings, *,
                 lifecycle: Lifecycle | None = None, tokens: dict[str, str] | None = None,
                 launcher: ShardLauncher | None = None,
                 embedded: EmbeddedTarget | None = None,
                 progress: TextIO | None = None) -> None:
        self.target, self.settings = target, settings
        self.run_id = uuid.uuid4().hex[:12]
        self.life = Life()
        self.workers = Workers(self.life, target, settings, stamp=int(time.time()),
                               embedded_target=embedded is not None)
        self.ctx = self.workers.ctx
        self.metrics = self.ctx.metrics
        # The job's owner of signals; an engine made alone (a benchmark) gets one of its own.
        self.lifecycle = lifecycle or Lifecycle()
        self._tokens = tokens or {}  # organizers signed in by the pre-flight check
        self._launcher = launcher  # None: the participants run in this process
        self._embedded = embedded
        self._cpu = CpuMeter(self.metrics, embedded.pid if embedded else None, interval=1.0,
                             recent=self.workers.load)
        self._progress = Progress(self.metrics, settings)
        self._progress_to = progress  # where the progress line goes each second; None: nowhere
        self._shards: ShardGroup | None = None
        self._gate_breaches: list[dict[str, Any]] = []  # --abort-on-fail's, for the summary

    def stop(self, reason: EndReason, detail: str = "",
             error: FirstError | None = None) -> bool:
        """End the run (see Life.stop): every source of an end comes through here."""
        return self.life.stop(reason, detail, error)

    def _force(self, name: str) -> None:
        """A second signal: skip every wait that is left, here and in the shards."""
        self.life.force()
        self._to_shards(Command.FORCE)

    def run(self) -> Outcome:
        """Run until the duration, the first error or a signal; always return the outcome."""
        settings = self.settings
        started_ns = time.time_ns()
        cpu_before = cpu_seconds()
        samples: dict[int, Sample] = {}
        organizers = [Organizer(self.ctx, i + 1, creds) for i, creds in
                      enumerate(self.target.organizers[: settings.organizers])]
        with self.lifecycle.running(lambda name: self.stop(EndReason.SIGNAL, name),
                                    self._force), worker_thread_settings():
            participants_started_ns = self._load(organizers, samples)
            stopped_ns = time.time_ns()
            self._shutdown()
        outcome = Outcome(
            run_id=self.run_id, target=self.target, settings=settings, started_ns=started_ns,
            stopped_ns=stopped_ns,
            organizer_started_ns=min((o.time_started_ns for o in organizers
                                      if o.time_started_ns), default=started_ns),
            participants_started_ns=participants_started_ns or started_ns,
            end_reason=self.life.end_text(), ctx=self.ctx,
            samples=samples, first_error=self.life.first_error,
            late_errors=self.life.late_errors, threads_alive=self.workers.alive(),
            sent=self.metrics.sent.snapshot(), gates=self._gate_breaches,
            cpu_s=cpu_seconds() - cpu_before, shard_group=self._shards)
        self._finish(outcome)
        return outcome

    def _finish(self, outcome: Outcome) -> None:
        """What the run's end still owes its outcome, so no caller edits it afterwards: the
        embedded target's part (its death or its open files named in the first error, else
        its /stats), then the shards' final reports (a late one merged up to here)."""
        embedded, error = self._embedded, outcome.first_error
        if embedded is not None and embedded.returncode is not None and error is not None:
            # Name the root cause: the workers only saw their sockets die.
            error.message += f" (the embedded target had exited with status " \
                             f"{embedded.returncode})"
        elif embedded is not None and error is not None and embedded.ran_out_of_files():
            error.message = openfiles.with_target_out_of_files(error.message)
        elif embedded is not None:
            log.info("reading the target's /stats")
            try:
                stats = embedded.stats(send_interval_ms=self.settings.smi)
                # Per second, for the series beside the round trip; the summary keeps the rest.
                outcome.target_handling = {
                    int(second): figures for second, figures in
                    (stats.pop("handling_by_second", None) or {}).items()}
                outcome.target_stats = stats
            except Exception as exc:  # noqa: BLE001 - stats are a bonus, never fatal
                log.warning("could not read the target's /stats: %s", exc)
        outcome.seal()

    # -- loading ----------------------------------------------------------------------------

    def _load(self, organizers: Sequence[Organizer], samples: dict[int, Sample]) -> int:
        """Sign in, start the organizers and participants, watch the run until its end;
        return the Unix ns at which participants started (0 if they never did). Always
        leaves the run stopped."""
        participants_started_ns = 0
        try:
            self._log_settings()
            for organizer in organizers:
                organizer.token = self._tokens.get(organizer.creds.email, "")
                if not organizer.token:
                    organizer.sign_in()
            log.info("organizer initialized")
            self.life.enter(State.LOADING)
            self.workers.start_lag_probe()
            if not self.settings.rest_only:  # --rest-only: signed in, no WebSocket
                for organizer in organizers:
                    self.workers.start_thread(organizer.name, organizer.run)
            participants_started_ns = time.time_ns()
            origin = time.monotonic()  # the arrival grid's origin: --duration counts from here
            self._start_participants(participants_started_ns)
            self._watch(samples, origin)
        except BaseException as exc:  # noqa: B036 - sign-in errors, bugs: the run's first error
            self.workers.record_error(threading.current_thread().name, exc)
        finally:
            self.stop(EndReason.ERROR)  # no-op when a reason is set; else something broke
        return participants_started_ns

    def _start_participants(self, started_ns: int) -> None:
        """The spawner here, or one per shard (participant n goes to shard (n - 1) mod N)."""
        launcher, count = self._launcher, self.settings.processes
        if launcher is None:
            self.workers.start_thread("spawner", Spawner(self.ctx).run)
            return
        specs = [ShardSpec(index=index, count=count, target=self.target,
                           settings=self.settings, stamp=self.ctx.stamp,
                           start_wall=started_ns / 1e9,
                           email_tag=f"{self.run_id}s{index}" if launcher.distributed else "",
                           log_level=log.getEffectiveLevel())
                 for index in range(count)]
        self._shards = launcher(specs, ReportSink(self.life, self.metrics, count))
        log.info("participants spread over %d shards", count)

    def _log_settings(self) -> None:
        s = self.settings
        log.info("start chat interval: %g ms", s.sci)
        if s.stages:
            log.info("arrival stages: %s", ", ".join(f"{d:g}s:{r:g}/s" for d, r in s.stages))
        else:
            log.info("create participant interval: %g ms", s.cpi)
        log.info("send message interval: %g ms", s.smi)
        log.info("log websocket messages: %s", "true" if s.log_ws else "false")
        log.info("open files limit: %s", openfiles.describe())
        log.info("run id: %s; target: %s", self.run_id, self.target.messenger_ws_url)
        log.info("-" * 80)

    def _watch(self, samples: dict[int, Sample], start: float) -> None:
        """The main thread's loop, a tick a second: gauges, CPU, stalls, progress, gates, the
        embedded target's life and the duration."""
        settings, stopped = self.settings, self.life.stopped
        deadline = start + settings.duration if settings.duration else None
        tick = 0
        while True:
            tick += 1
            next_tick = start + tick if deadline is None else min(start + tick, deadline)
            if stopped.wait(max(0.0, next_tick - time.monotonic())):
                return
            samples[int(time.time())] = self._sample()
            self._cpu.tick()
            oldest = self.workers.check_stalls()
            self._progress.warn_if_behind()
            if settings.abort_on_fail:
                self._check_gates(time.monotonic() - start)
            if self._progress_to is not None:
                self._progress.print(time.monotonic() - start, samples[max(samples)], oldest,
                                     file=self._progress_to)
            code = self._embedded.returncode if self._embedded is not None else None
            if code is not None:
                self.workers.record_error("main", RuntimeError(
                    f"the embedded target exited with status {code}"))
            if deadline is not None and time.monotonic() >= deadline:
                self.stop(EndReason.DURATION)

    def _check_gates(self, elapsed: float) -> None:
        """--abort-on-fail: stop the run when a gate fails over the sliding window, once the
        load has filled it (the newest seconds are left out: shards' deltas may still come)."""
        if elapsed < gatewatch.WINDOW_S + GATE_LAG_S:
            return
        failed = gatewatch.breach(self.metrics, self.settings, int(time.time()) - GATE_LAG_S)
        if failed is not None and not self.life.stopped.is_set():
            self._gate_breaches.append(failed)
            log.error("esmeperf: %s: stopping the run", gatewatch.describe(failed))
            self.stop(EndReason.GATE)

    def _sample(self) -> Sample:
        m = self.metrics
        return Sample(m.get(Count.CREATED_PARTICIPANTS), m.get(Count.CHATS),
                      m.get(Count.CONNECTIONS_OPEN), threading.active_count())

    # -- the end ------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """After the stop, in this order, every step bounded:

        1. STOPPING: the shards are told to stop (nothing sends or arrives any more; they go
           on reading echoes and shipping deltas);
        2. DRAINING: the echoes still due are awaited, until every one is in (each shard says
           so), --echo-timeout passes or a second signal forces the end;
        3. CLOSING: the shards are told to close; here, close frames go out, the threads they
           end are joined, the connections left are shut down and their threads joined
           (CLOSE_GRACE, --join-timeout); each shard's final report is awaited (the same bounds
           plus REPORT_GRACE), a shard without one is lost with what its deltas brought;
        4. FINISHED.
        """
        life, steps = self.life, StepClock()
        life.enter(State.STOPPING)
        log.info("starting graceful shutdown")
        self._to_shards(Command.STOP)
        life.enter(State.DRAINING)
        life.forced.wait(SETTLE)  # a send racing the stop lands before the echoes are counted
        deadline = time.monotonic() + self.settings.echo_timeout
        while not life.forced.is_set() and time.monotonic() < deadline and not self._drained():
            life.forced.wait(0.05)
        steps.done("echoes awaited")
        life.enter(State.CLOSING)
        self._to_shards(Command.CLOSE)
        self.workers.close(steps)
        if self._shards is not None:
            self._shards.wait(CLOSE_GRACE + self.settings.join_timeout + REPORT_GRACE)
            steps.done("shards' final reports")
        steps.report()
        life.enter(State.FINISHED)

    def _drained(self) -> bool:
        """Every echo due is in: here, the counts; with shards, each shard's own word (the
        merged totals lag their deltas and cannot tell)."""
        if self._shards is not None:
            return self._shards.drained()
        m = self.metrics
        return not len(self.ctx.connections) or m.sent.total() <= m.delivered.total()

    def _to_shards(self, command: Command) -> None:
        """Tell every shard; a link failing now (a Dask scheduler gone) must not cost the
        results: the run's error, counted as late when the run has already ended."""
        if self._shards is None:
            return
        try:
            self._shards.send(command)
        except Exception as exc:  # noqa: BLE001 - logged and counted, never raised
            log.error("shards: %s", exc)
            self.workers.record_error("shards", exc)

