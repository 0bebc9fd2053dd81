"""Thread-safe measurements: per-second counters, run counters, and the latencies
(latency.py) that together are everything a run measures."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import BATCH_MAX_MS
from .latency import LatencyDelta, LatencyRecorder
from .names import LATENCIES, WITH_UNCONFIRMED, Count, CountFamily

if TYPE_CHECKING:
    from ..config import Settings


class RateCounter:
    """Counts events per Unix second.

    Invariant: `_counts` is only read or written while holding `_lock`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[int] = Counter()

    def add(self, second: int, n: int = 1) -> None:
        with self._lock:
            self._counts[second] += n

    def at(self, second: int) -> int:
        """The count of one second."""
        with self._lock:
            return self._counts.get(second, 0)

    def snapshot(self) -> dict[int, int]:
        """A copy of the counts, safe to iterate while workers keep counting."""
        with self._lock:
            return dict(self._counts)

    def total(self, until: int | None = None) -> int:
        """The count of every second, or of the seconds up to `until` (inclusive)."""
        with self._lock:
            if until is None:
                return sum(self._counts.values())
            return sum(n for second, n in self._counts.items() if second <= until)

    def merge(self, counts: dict[int, int]) -> None:
        with self._lock:
            self._counts.update(counts)

    def drain(self) -> dict[int, int]:
        """Take the counts so far and start again from zero (for shipping to a parent)."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return dict(counts)


RATES = ("sent", "delivered", "organizer_received", "errors", "missed", "generator_cpu_ms",
         "target_cpu_ms", "arrivals")


@dataclass(frozen=True)
class MetricsDelta:
    """What a Metrics measured since its last drain (picklable): merge() adds it to another.
    A shard ships these to its parent twice a second."""

    rates: dict[str, dict[int, int]]  # RATES' counter -> Unix second -> count
    latencies: dict[str, LatencyDelta]  # LATENCIES' key -> its histograms per second
    counts: dict[str, int]  # run counters by their summary key
    extras: dict[str, Any]  # Metrics.extras' name -> its own drain()

    def total(self, rate: str) -> int:
        """The whole delta's count of one of RATES."""
        return sum(self.rates[rate].values())

    def newest_second(self) -> int | None:
        """The newest Unix second anything in it was counted in."""
        seconds = [s for counts in self.rates.values() for s in counts]
        return max(seconds, default=None)


class Metrics:
    """Everything a run measures; shared by all worker threads.

    Per-second counters (RATES: messages sent and delivered, organizer receipts, errors, send
    slots missed, the generator's and the embedded target's CPU ms, arrivals) and latencies
    (LATENCIES), each an attribute of its name; run counters by their summary key; and
    `extras`, measurements a run adds (the surge's), each with its own drain() and merge().
    """

    def __init__(self) -> None:
        self.sent = RateCounter()
        self.delivered = RateCounter()  # by the echo's arrival (its kernel timestamp)
        self.organizer_received = RateCounter()
        self.errors = RateCounter()
        self.missed = RateCounter()
        # CPU milliseconds the generator spent in each second (this process and its shards,
        # each adding its own), and the embedded target's (0 when there is none).
        self.generator_cpu_ms = RateCounter()
        self.target_cpu_ms = RateCounter()
        self.arrivals = RateCounter()  # when each participant sent its sign-up request
        self.message_rtt = LatencyRecorder()
        self.message_rtt_from_intended = LatencyRecorder()
        self.send_lateness = LatencyRecorder()
        self.generator_lag = LatencyRecorder()
        self.arrival_lateness = LatencyRecorder()
        self.sign_up = LatencyRecorder(per_second=False)
        self.chat_request = LatencyRecorder(per_second=False)
        self.ws_handshake = LatencyRecorder(per_second=False)
        self.arrival_to_chat = LatencyRecorder(per_second=False)
        self.organizer_reply = LatencyRecorder()
        self.unconfirmed = LatencyRecorder(per_second=False)
        self.extras: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, name: Count, n: int = 1) -> None:
        """Bump a run-wide counter."""
        with self._lock:
            self._counts[name.value] += n

    def count_of(self, family: CountFamily, key: str, n: int = 1) -> None:
        """Bump one counter of a family (frames by type, chats by organizer)."""
        with self._lock:
            self._counts[f"{family.value}_{key}"] += n

    def counts(self) -> dict[str, int]:
        """Every counter by its summary key."""
        with self._lock:
            return dict(self._counts)

    def get(self, name: Count) -> int:
        with self._lock:
            return self._counts[name.value]

    def rate(self, name: str) -> RateCounter:
        counter: RateCounter = getattr(self, name)
        return counter

    def recorder(self, key: str) -> LatencyRecorder:
        """The recorder of LATENCIES' `key`."""
        recorder: LatencyRecorder = getattr(self, key)
        return recorder

    def drain(self) -> MetricsDelta:
        """Everything measured since the last drain, to merge into another Metrics."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return MetricsDelta(
            rates={name: self.rate(name).drain() for name in RATES},
            latencies={latency.key: self.recorder(latency.key).drain() for latency in LATENCIES},
            counts=dict(counts),
            extras={name: extra.drain() for name, extra in self.extras.items()})

    def merge(self, delta: MetricsDelta) -> None:
        """Add a delta from Metrics.drain(); totals stay exactly the sum of the parts."""
        for name, counts in delta.rates.items():
            self.rate(name).merge(counts)
        for key, part in delta.latencies.items():
            self.recorder(key).merge(part)
        for name, extra in delta.extras.items():
            if name in self.extras:
                self.extras[name].merge(extra)
        with self._lock:
            self._counts.update(delta.counts)

    def latencies(self) -> dict[str, Any]:
        """The summary's `latency`: each of LATENCIES (but the unconfirmed ages alone) by its
        key, and the round trips with the unconfirmed ages as one distribution."""
        out = {latency.key: self.recorder(latency.key).summary() for latency in LATENCIES
               if latency.key != "unconfirmed"}
        out[WITH_UNCONFIRMED.key] = self.message_rtt.summary_with(self.unconfirmed)
        return out

    def recorders(self) -> dict[str, LatencyRecorder]:
        """Each of LATENCIES' recorders by its key (the .hlog's tags); `unconfirmed` is the
        part message_rtt_with_unconfirmed adds to message_rtt."""
        return {latency.key: self.recorder(latency.key) for latency in LATENCIES}


def settled_second(settings: Settings, now: float | None = None) -> int:
    """The newest Unix second whose echoes are all counted by now, as far as this side can
    have read them: delivered counts by the echo's arrival (its kernel timestamp), but a
    batched read takes an echo in only at its participant's next send, up to one -smi interval
    later, and a shard's delta comes up to half a second after that. A live view that shows
    this second's sent and delivered shows no loss the run does not have."""
    now = time.time() if now is None else now
    batched = settings.smi <= BATCH_MAX_MS and not settings.reply
    return int(now - 1 - (math.ceil(settings.smi / 1000) if batched else 0)
               - (0.5 if settings.processes > 1 else 0))
