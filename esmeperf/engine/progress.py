"""What a person watching a run sees as it goes: a progress line a second, and a warning, once,
when arrivals or sends fall behind their schedule."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TextIO

from ..config import Settings
from ..measure import health
from ..measure.schedule import shortest_interval_ms
from ..measure.stall import Oldest
from ..measure.stats import Metrics, settled_second

log = logging.getLogger("esmeperf")

MISSED_WARN_MIN = 10  # skipped sends in one second before the live warning ...
MISSED_WARN_SHARE = 0.05  # ... and this share of that second's scheduled sends


@dataclass
class Sample:
    """Gauges read by the main thread once a second."""

    participants: int
    chats: int
    connections: int
    threads: int = 0  # threads alive in this process


class Progress:
    """The live line and the falling-behind warnings of one run."""

    def __init__(self, metrics: Metrics, settings: Settings) -> None:
        self._metrics, self._settings = metrics, settings
        self._warned: set[str] = set()  # the falling-behind warnings already given

    def warn_if_behind(self) -> None:
        """Say once, as it happens, that arrivals or sends fell behind their schedule."""
        m, second = self._metrics, int(time.time()) - 1
        late = m.arrival_lateness.second_percentile_ms(second, 99)
        limit_ms = health.arrival_limit_ms(shortest_interval_ms(self._settings))
        if late is not None and late >= limit_ms and "arrivals" not in self._warned:
            self._warned.add("arrivals")
            log.warning("warning: arrivals are %.1f s behind the -cpi grid (p99 of the last "
                        "second): the generator may be limiting the run", late / 1000)
        missed, sent = m.missed.at(second), m.sent.at(second)
        # A send or two lost to a scheduling hiccup is noise; a share of them is a trend.
        if missed >= max(MISSED_WARN_MIN, MISSED_WARN_SHARE * (missed + sent)) \
                and "sends" not in self._warned:
            self._warned.add("sends")
            log.warning("warning: participants skipped %d of %d sends in the last second (late "
                        "by a whole -smi interval): the generator may be limiting the run",
                        missed, missed + sent)

    def print(self, elapsed: float, sample: Sample, oldest: Oldest | None,
              file: TextIO) -> None:
        """One line of live progress: what a person watching the run wants to see."""
        m, settings = self._metrics, self._settings
        # The newest second whose echoes are all in (stats.settled_second): its sent and
        # delivered agree in a healthy run, whatever the interval.
        second = settled_second(settings)
        sent, delivered = m.sent.at(second), m.delivered.at(second)
        p99 = m.message_rtt.second_percentile_ms(second, 99)  # that second's, not the run's
        p99_text = f"{p99:.1f}ms" if p99 is not None else "-"  # "(last s)" says which second
        total = f"/{settings.duration:.0f}s" if settings.duration else ""
        print(f"{elapsed:6.0f}s{total} participants {sample.participants:>6} "
              f"chats {sample.chats:>6} sent/s {sent:>6} delivered/s {delivered:>6} "
              f"rtt p99 (last s) {p99_text:>8} errors {m.errors.total()}"
              # Batched reads see an echo up to one interval after it came, so a healthy run's
              # oldest message is about one interval old: shown from two.
              + (f" oldest unanswered {oldest.age_s:.1f}s" if oldest is not None
                 and oldest.age_s * 1000 > 2 * settings.smi else ""), file=file, flush=True)
