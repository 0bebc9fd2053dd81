"""Thread-safe measurements: per-second counters, latency histograms and run counters."""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram

from .counts import Count, CountFamily

# Latencies are recorded in microseconds, from 1 us up to 10 minutes.
_LOWEST_US, _HIGHEST_US = 1, 600_000_000
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
SECOND_PERCENTILES = (50.0, 99.0)  # what the per-second series keeps of each second
# Seconds older than this (behind the newest one recorded) are summarised and their histograms
# freed: a long run would otherwise hold a 20 KiB histogram per recorder per second.
LIVE_SECONDS = 30


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

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def merge(self, counts: dict[int, int]) -> None:
        with self._lock:
            self._counts.update(counts)

    def drain(self) -> dict[int, int]:
        """Take the counts so far and start again from zero (for shipping to a parent)."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return dict(counts)


def new_histogram(digits: int = 3) -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, digits)


def release(hist: HdrHistogram) -> None:
    """Free a histogram's counts now: hdrhistogram's encoder and histogram point at each
    other, so without this the counts (20-140 KiB) wait for a full garbage collection, which a
    busy run of long-lived objects seldom triggers."""
    hist.encoder.histogram = None


def add_encoded(hist: HdrHistogram, encoded: bytes) -> None:
    """hist += the histogram `encoded` (HdrHistogram.decode_and_add, without the garbage)."""
    other = HdrHistogram.decode(encoded)
    hist.add(other)
    release(other)


def _clamp(us: int) -> int:
    return min(max(us, _LOWEST_US), _HIGHEST_US)


def summarize(hist: HdrHistogram, total_us: int) -> dict[str, float | int]:
    """Count, percentiles, max and mean of a histogram, in milliseconds.

    One pass over the buckets for all percentiles; the mean comes from the recorder's own sum
    (hdrhistogram's get_mean_value walks every bucket again, in pure Python).
    """
    count = hist.get_total_count()
    if not count:
        return {"count": 0}
    values = hist.get_percentile_to_value_dict(list(PERCENTILES))
    out: dict[str, float | int] = {"count": count}
    for pct in PERCENTILES:
        out[f"p{pct:g}_ms"] = values[pct] / 1000
    out["max_ms"] = hist.get_max_value() / 1000
    out["mean_ms"] = round(total_us / count / 1000, 3)
    return out


class LatencyRecorder:
    """An HDR histogram of the whole run plus a coarser one per Unix second.

    A second's histogram is kept while it may still change (LIVE_SECONDS); after that only its
    SECOND_PERCENTILES are kept, so memory stays flat however long the run.
    """

    def __init__(self, per_second: bool = True) -> None:
        self._lock = threading.Lock()
        self._total = new_histogram(3)
        self._sum_us = 0
        self._per_second: dict[int, HdrHistogram] | None = {} if per_second else None
        self._done: dict[int, dict[float, float]] = {}  # second -> percentile -> ms
        self._newest = 0

    def record(self, second: int, seconds: float) -> None:
        us = _clamp(int(seconds * 1_000_000))
        with self._lock:
            self._total.record_value(us)
            self._sum_us += us
            if self._per_second is not None:
                hist = self._per_second.get(second)
                if hist is None:
                    hist = self._per_second[second] = new_histogram(2)
                    self._retire(second)
                hist.record_value(us)

    def _retire(self, second: int) -> None:
        """Summarise and free the seconds that fell out of the live window (lock held)."""
        if second <= self._newest or self._per_second is None:
            return
        self._newest = second
        for old in [s for s in self._per_second if s < second - LIVE_SECONDS]:
            hist = self._per_second.pop(old)
            values = hist.get_percentile_to_value_dict(list(SECOND_PERCENTILES))
            self._done[old] = {pct: values[pct] / 1000 for pct in SECOND_PERCENTILES}
            release(hist)

    def summary(self) -> dict[str, float | int]:
        with self._lock:
            return summarize(self._total, self._sum_us)

    def summary_with(self, other: LatencyRecorder) -> dict[str, float | int]:
        """This recorder's and `other`'s whole-run values summarised as one distribution."""
        merged = new_histogram(3)
        with self._lock:
            merged.add(self._total)
            sum_us = self._sum_us
        with other._lock:
            merged.add(other._total)
            sum_us += other._sum_us
        out = summarize(merged, sum_us)
        release(merged)
        return out

    def cumulative(self, bounds_us: list[int]) -> tuple[list[int], int, int]:
        """Whole-run counts at or below each bound (ascending, in us), the total count and the
        sum in us: what a Prometheus histogram exposes, read from the HDR buckets on demand, so
        a scrape costs nothing per recorded value."""
        with self._lock:
            total, sum_us = self._total.get_total_count(), self._sum_us
            per_bound = [0] * (len(bounds_us) + 1)  # the last slot: above every bound
            if total:
                for item in self._total.get_recorded_iterator():
                    per_bound[bisect.bisect_left(bounds_us, item.value_iterated_to)] += \
                        item.count_at_value_iterated_to
        below = list(itertools.accumulate(per_bound[:-1]))
        return below, total, sum_us

    def second_percentile_ms(self, second: int, pct: float) -> float | None:
        """A percentile of one second's latencies (only SECOND_PERCENTILES once retired)."""
        with self._lock:
            hist = (self._per_second or {}).get(second)
            if hist is None:
                return self._done.get(second, {}).get(pct)
            if not hist.get_total_count():
                return None
            return hist.get_value_at_percentile(pct) / 1000

    def seconds(self) -> list[int]:
        with self._lock:
            return sorted(set(self._per_second or {}) | set(self._done))

    def drain(self) -> dict[str, Any]:
        """Take what was recorded so far, HDR-encoded, and start again from empty."""
        with self._lock:
            total, self._total = self._total, new_histogram(3)
            sum_us, self._sum_us = self._sum_us, 0
            seconds = self._per_second
            if seconds is not None:
                self._per_second = {}
        delta = {
            "total": total.encode() if total.get_total_count() else None,
            "sum_us": sum_us,
            "seconds": {s: h.encode() for s, h in (seconds or {}).items()},
        }
        for hist in [total, *(seconds or {}).values()]:
            release(hist)
        return delta

    def merge(self, delta: dict[str, Any]) -> None:
        """Add a drained delta: the histograms merge exactly, bucket by bucket."""
        with self._lock:
            if delta["total"] is not None:
                add_encoded(self._total, delta["total"])
            self._sum_us += delta["sum_us"]
            if self._per_second is not None:
                for second, encoded in sorted(delta["seconds"].items()):
                    hist = self._per_second.get(second)
                    if hist is None:
                        hist = self._per_second[second] = new_histogram(2)
                        self._retire(second)
                    add_encoded(hist, encoded)


class Metrics:
    """Everything a run measures; shared by all worker threads."""

    def __init__(self) -> None:
        self.sent = RateCounter()
        self.delivered = RateCounter()
        self.organizer_received = RateCounter()
        self.errors = RateCounter()
        self.missed = RateCounter()
        # CPU milliseconds the generator spent in each second (this process and its shards,
        # each adding its own), and the embedded target's (0 when there is none).
        self.generator_cpu_ms = RateCounter()
        self.target_cpu_ms = RateCounter()
        self.rtt = LatencyRecorder()
        self.lateness = LatencyRecorder()
        # A participant's intended arrival on the grid -> its sign-up request sent.
        self.arrival_lateness = LatencyRecorder()
        self.reply_latency = LatencyRecorder()
        self.signup = LatencyRecorder(per_second=False)
        self.chat_request = LatencyRecorder(per_second=False)
        self.handshake = LatencyRecorder(per_second=False)
        self.chat_wait = LatencyRecorder(per_second=False)
        # Each message never confirmed, at the age it had when its participant ended: the
        # round trips it would have had at least (a frozen target can't hide behind a low p99).
        self.unconfirmed = LatencyRecorder(per_second=False)
        # Participant arrivals per second: when each sent its sign-up request.
        self.arrivals = RateCounter()
        # Optional measurements a run adds (e.g. "surge": surge.SurgeStats), each with its own
        # drain() and merge(), so shards ship them with the rest.
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

    def _parts(self) -> dict[str, RateCounter | LatencyRecorder]:
        return {name: value for name, value in vars(self).items()
                if isinstance(value, RateCounter | LatencyRecorder)}

    def drain(self) -> dict[str, Any]:
        """Everything measured since the last drain, picklable, to merge into another Metrics."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        delta: dict[str, Any] = {name: part.drain() for name, part in self._parts().items()}
        delta["counts"] = dict(counts)
        delta["extras"] = {name: extra.drain() for name, extra in self.extras.items()}
        return delta

    def merge(self, delta: dict[str, Any]) -> None:
        """Add a delta from Metrics.drain(); totals stay exactly the sum of the parts."""
        for name, part in self._parts().items():
            part.merge(delta[name])
        for name, extra in delta.get("extras", {}).items():
            if name in self.extras:
                self.extras[name].merge(extra)
        with self._lock:
            self._counts.update(delta["counts"])

    def latencies(self) -> dict[str, Any]:
        return {
            "message_rtt": self.rtt.summary(),
            "message_rtt_with_unconfirmed": self.rtt.summary_with(self.unconfirmed),
            "send_lateness": self.lateness.summary(),
            "arrival_lateness": self.arrival_lateness.summary(),
            "organizer_reply": self.reply_latency.summary(),
            "sign_up": self.signup.summary(),
            "chat_request": self.chat_request.summary(),
            "ws_handshake": self.handshake.summary(),
            "arrival_to_chat": self.chat_wait.summary(),
        }
