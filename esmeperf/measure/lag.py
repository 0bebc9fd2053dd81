"""Generator lag: how late this process's threads run after they were due (issue 27).

CPU share is a late and blunt signal for a process with one GIL: a generator can sit at 86 %
of a core while its threads wait seconds for their turn. Node measures its event loop's delay
with a timer that should fire every few milliseconds and records how late it fires; this is the
same for a GIL: a probe thread waits PROBE_INTERVAL_S on an Event, and how much longer than
that it took to run again (the kernel's timer, the run queue, then the GIL) is recorded in an
HDR histogram per Unix second (`Metrics.generator_lag`), with the ticks a long delay swallowed
(coordinated omission corrected, as HdrHistogram's recordCorrectedValue does). A GIL held by
a long C call, a garbage collection of a big heap, or another process taking the CPU all show
there, whatever the load.

Batched reads (connection.py) wake at their send's deadline like the probe wakes at its own, so
the read side's delay past its deadline is the send lateness every message already records.

`RecentLoad` keeps the last minutes of the probe's worst lag and the CPU meter's readings per
second, for verdicts that must look at the generator over a window as it happens (a stall):
a shard ships its `Metrics` to the parent twice a second and so cannot read them back.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .latency import LatencyRecorder

PROBE_INTERVAL_S = 0.01  # the probe's wait: its oversleep is the lag (Node's default, 10 ms)
HISTORY_S = 600  # seconds RecentLoad remembers


class RecentLoad:
    """Per-second worst lag and CPU of this process for the last HISTORY_S seconds.

    Written by the probe thread and the CPU meter, read by the thread that judges a stall; each
    update is one dict store (atomic under the GIL), reads take a copy.
    """

    def __init__(self) -> None:
        self._lag_ms: dict[int, float] = {}  # second -> worst probe lag in it
        self._cpu_ms: dict[int, int] = {}  # second -> CPU ms this process used in it
        # When the probe is next due to run (monotonic; 0: no probe): a judge that runs
        # before the probe after a freeze still sees the probe overdue.
        self.probe_due = 0.0

    def lag(self, second: int, ms: float) -> None:
        if ms > self._lag_ms.get(second, -1.0):
            self._lag_ms[second] = ms
        self._forget(self._lag_ms, second)

    def cpu(self, second: int, ms: int) -> None:
        self._cpu_ms[second] = self._cpu_ms.get(second, 0) + ms
        self._forget(self._cpu_ms, second)

    @staticmethod
    def _forget(history: dict[int, float] | dict[int, int], second: int) -> None:
        if len(history) > HISTORY_S + 60:
            for old in [s for s in history if s < second - HISTORY_S]:
                del history[old]

    def window(self, first: int, last: int) -> Window:
        """What the seconds first..last (inclusive) held."""
        lags = [v for s, v in dict(self._lag_ms).items() if first <= s <= last]
        cpus = [v for s, v in dict(self._cpu_ms).items() if first <= s <= last]
        overdue = time.monotonic() - self.probe_due if self.probe_due else 0.0
        if overdue > 0:  # the probe has not run since it was due: it is that late now
            lags.append(overdue * 1000)
        return Window(lag_ms=lags, cpu_ms=cpus)


@dataclass(frozen=True)
class Window:
    """This process's load over a few seconds, as RecentLoad saw it."""

    lag_ms: list[float]  # the worst lag of each second that has a reading
    cpu_ms: list[int]  # the CPU of each second that has a reading

    @property
    def worst_lag_ms(self) -> float:
        return max(self.lag_ms, default=0.0)

    def lagging_share(self, limit_ms: float) -> float:
        """The share of the seconds whose worst lag reached `limit_ms`."""
        if not self.lag_ms:
            return 0.0
        return sum(1 for ms in self.lag_ms if ms >= limit_ms) / len(self.lag_ms)

    def busy_share(self, busy: float, capacity_ms: float) -> float:
        """The share of the readings at `busy` or more of `capacity_ms`."""
        if not self.cpu_ms:
            return 0.0
        return sum(1 for ms in self.cpu_ms if ms >= busy * capacity_ms) / len(self.cpu_ms)


class LagProbe:
    """The probe thread's body: run it as a worker thread; it ends when `stop` is set."""

    def __init__(self, recorder: LatencyRecorder, stop: threading.Event,
                 recent: RecentLoad) -> None:
        self._recorder, self._stop, self._recent = recorder, stop, recent

    def run(self) -> None:
        recorder, recent, stop, interval = self._recorder, self._recent, self._stop, \
            PROBE_INTERVAL_S
        while True:
            started = time.monotonic()
            recent.probe_due = started + interval
            if stop.wait(interval):
                recent.probe_due = 0.0
                return
            lag = max(0.0, time.monotonic() - started - interval)
            second = int(time.time())
            recent.lag(second, lag * 1000)
            # The wake-ups a long stall swallowed count too, each as late as it would have
            # been (HdrHistogram's recordCorrectedValue): a 1.6 s freeze is 160 late ticks,
            # not one, so the percentiles say how much of the time the generator was stuck.
            while True:
                recorder.record(second, lag)
                lag -= interval
                if lag < interval:
                    break
