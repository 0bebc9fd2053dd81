"""Latency histograms: HDR histograms per Unix second, retired into a run's total (issue 17).

Thread-safe: every worker thread records into the same recorders; shards ship their deltas to
the parent, which merges them exactly.
"""

from __future__ import annotations

import base64
import bisect
import collections
import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

from hdrh.histogram import HdrHistogram

# Latencies are recorded in microseconds, from 1 us up to 10 minutes.
_LOWEST_US, _HIGHEST_US = 1, 600_000_000
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
SECOND_PERCENTILES = (50.0, 99.0)  # what the per-second series keeps of each second
# Seconds more than this behind the newest one recorded are retired: their histograms (170 KiB
# each, at 3 digits from 1 us to 10 minutes) are added into the run's total, kept encoded (a few
# hundred bytes) and freed. Values come in their own second, or just after it from a busy
# thread or a shard's delta (twice a second); a later one reopens its second, exactly.
LIVE_SECONDS = 1
# Queued values a recording thread records in one go (a few hundred microseconds of work).
FLUSH_AT = 256


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


def running_counts(hist: HdrHistogram) -> list[int] | None:
    """The running total of the counts array up to the largest value's bucket (past it, the
    total), taken in C (not a Python loop over each of a 3-digit histogram's 21,504 buckets);
    None where the array's layout is not the one known."""
    counts = hist.counts
    if sys.byteorder != "little" or memoryview(counts).format not in ("<Q", "Q"):
        return None
    # A second's histogram holds values up to tens of ms: a third of the buckets or fewer.
    end = min(len(counts), hist._counts_index_for(hist.get_max_value()) + 1)  # noqa: SLF001
    return list(itertools.accumulate(memoryview(counts).cast("B").cast("Q")[:end]))


def percentile_values(hist: HdrHistogram, pcts: list[float]) -> dict[float, int]:
    """hist.get_percentile_to_value_dict(pcts), the same values, about 10x faster: the running
    count is taken in C over the counts array, not by a Python loop over every bucket (3 ms
    for a 3-digit histogram, under a recorder's lock, blocking every thread that records)."""
    running = running_counts(hist)
    if running is None:
        return dict(hist.get_percentile_to_value_dict(pcts))
    out = {}
    for pct in pcts:
        index = bisect.bisect_left(running, hist.get_target_count_at_percentile(pct))
        value = hist.get_value_from_index(index)
        out[pct] = (hist.get_highest_equivalent_value(value) if pct
                    else hist.get_lowest_equivalent_value(value))
    return out


def count_at_or_above(hist: HdrHistogram, bound_us: int) -> int:
    """How many values fall in buckets that reach `bound_us` (their highest equivalent value
    at or above it): the running count from C, not an iteration over the buckets."""
    total = hist.get_total_count()
    if not total or hist.get_max_value() < bound_us:
        return 0
    index = hist._counts_index_for(bound_us)  # noqa: SLF001 - the bucket holding the bound
    running = running_counts(hist)
    if running is None:  # not the layout known here: hdrhistogram's own iterator
        return sum(item.count_at_value_iterated_to for item in hist.get_recorded_iterator()
                   if hist.get_highest_equivalent_value(item.value_iterated_to) >= bound_us)
    below = running[min(index, len(running)) - 1] if index > 0 else 0
    return total - below


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
    values = percentile_values(hist, list(PERCENTILES))
    out: dict[str, float | int] = {"count": count}
    for pct in PERCENTILES:
        out[f"p{pct:g}_ms"] = values[pct] / 1000
    out["max_ms"] = hist.get_max_value() / 1000
    out["mean_ms"] = round(total_us / count / 1000, 3)
    return out


class LatencyRecorder:
    """HDR histograms of latencies, one per Unix second; each value is recorded once.

    A second's histogram stays open (live) while late values and shard deltas may still reach
    it: LIVE_SECONDS behind the newest second. Then it is retired: added into the run's total,
    kept HDR-encoded (compressed, a few hundred bytes: the .hlog's interval for that second) and
    freed. The whole run is the total plus the live seconds, so recording costs one histogram
    update per value, not two, and memory stays flat however long the run.

    `per_second=False`: the callers pass no second (0); the recorder takes it from the clock.
    """

    def __init__(self, per_second: bool = True) -> None:
        self._lock = threading.Lock()
        # Values recorded and not yet in a histogram: workers append without the lock, so a
        # thread that loses the GIL while recording holds up no other (hdrhistogram's
        # record_value is Python, about 1 us: under a lock shared by thousands of threads, a
        # holder preempted there made the others queue on the lock, two context switches each).
        self._queued: collections.deque[tuple[int, float]] = collections.deque()
        self._clock = not per_second
        self._live: dict[int, HdrHistogram] = {}
        self._retired: dict[int, Retired] = {}
        self._total: HdrHistogram | None = None  # the retired seconds added up, once there are
        self._sum_us = 0
        self._newest = 0
        self._percentiles: dict[int, dict[float, float]] = {}  # retired second -> pct -> ms

    def record(self, second: int, seconds: float) -> None:
        """Queue a value (one append, taken without a lock); the thread that finds
        FLUSH_AT values queued records them, if no other is doing so, and every reader records
        what is queued before it reads."""
        if self._clock:
            second = int(time.time())
        queued = self._queued
        queued.append((second, seconds))
        if len(queued) >= FLUSH_AT and self._lock.acquire(blocking=False):
            try:
                self._flush()
            finally:
                self._lock.release()

    @contextlib.contextmanager
    def _settled(self) -> Iterator[None]:
        """The lock held, every value queued so far recorded."""
        with self._lock:
            self._flush()
            yield

    def _flush(self) -> None:
        """Record the queued values into their seconds' histograms (lock held).

        Values leave the queue one popleft() at a time, each atomic: a value appended
        meanwhile is recorded now or by the next flush, never lost or twice.
        """
        queued, live = self._queued, self._live
        popleft = queued.popleft
        for _ in range(len(queued)):
            second, seconds = popleft()
            us = _clamp(int(seconds * 1_000_000))
            self._sum_us += us
            hist = live.get(second)
            if hist is None:
                hist = self._open(second)
            hist.record_value(us)

    def _open(self, second: int) -> HdrHistogram:
        """A new live histogram for `second`; retire what fell out of the window (lock held).

        A retired second can open again (a value or a shard's delta came late): it is retired
        again later, merged with what it had.
        """
        hist = self._live[second] = new_histogram(3)
        if second > self._newest:
            self._newest = second
            for old in [s for s in self._live if s < second - LIVE_SECONDS]:
                self._retire(old)
        return hist

    def _retire(self, second: int) -> None:
        hist = self._live.pop(second)
        if self._total is None:
            self._total = new_histogram(3)
        self._total.add(hist)  # only the new counts: an earlier retirement is in already
        earlier = self._retired.get(second)
        if earlier is not None:
            add_encoded(hist, earlier.encode())
            self._percentiles.pop(second, None)
        self._retired[second] = Retired(base64.b64decode(hist.encode()), hist.get_max_value())
        if not self._clock:  # the series reads these seconds' percentiles: take them now
            values = percentile_values(hist, list(SECOND_PERCENTILES))
            self._percentiles[second] = {p: values[p] / 1000 for p in SECOND_PERCENTILES}
        release(hist)

    def _whole(self) -> HdrHistogram:
        """The whole run as one histogram (lock held); release() it after use."""
        whole = new_histogram(3)
        for hist in [self._total] if self._total is not None else []:
            whole.add(hist)
        for hist in self._live.values():
            whole.add(hist)
        return whole

    def summary(self) -> dict[str, float | int]:
        with self._settled():
            whole = self._whole()
            sum_us = self._sum_us
        out = summarize(whole, sum_us)
        release(whole)
        return out

    def summary_with(self, other: LatencyRecorder) -> dict[str, float | int]:
        """This recorder's and `other`'s whole-run values summarised as one distribution."""
        with self._settled():
            merged = self._whole()
            sum_us = self._sum_us
        with other._settled():
            theirs = other._whole()
            sum_us += other._sum_us
        merged.add(theirs)
        release(theirs)
        out = summarize(merged, sum_us)
        release(merged)
        return out

    def cumulative(self, bounds_us: list[int]) -> tuple[list[int], int, int]:
        """Whole-run counts at or below each bound (ascending, in us), the total count and the
        sum in us: what a Prometheus histogram exposes, read from the HDR buckets on demand, so
        a scrape costs nothing per recorded value. A bucket counts below a bound when its
        highest equivalent value is at most the bound."""
        with self._settled():
            whole = self._whole()
            sum_us = self._sum_us
        total = whole.get_total_count()
        below = [0] * len(bounds_us)
        if total:
            running = running_counts(whole)
            if running is None:  # not the layout known here: hdrhistogram's own iterator
                per_bound = [0] * (len(bounds_us) + 1)
                for item in whole.get_recorded_iterator():
                    per_bound[bisect.bisect_left(bounds_us, item.value_iterated_to)] += \
                        item.count_at_value_iterated_to
                below = list(itertools.accumulate(per_bound[:-1]))
            else:
                for i, bound in enumerate(bounds_us):
                    index = min(whole._counts_index_for(bound), len(running) - 1)  # noqa: SLF001
                    value = whole.get_value_from_index(index)
                    if whole.get_highest_equivalent_value(value) > bound:
                        index -= 1  # the bound's own bucket reaches past it
                    below[i] = running[index] if index >= 0 else 0
        release(whole)
        return below, total, sum_us

    def second_percentile_ms(self, second: int, pct: float) -> float | None:
        """A percentile of one second's latencies; None for a second without any."""
        with self._settled():
            hist = self._live.get(second)
            if hist is not None:
                if not hist.get_total_count():
                    return None
                return percentile_values(hist, [pct])[pct] / 1000
            known = self._percentiles.get(second)
            if known is not None and pct in known:
                return known[pct]
            retired = self._retired.get(second)
            if retired is None:
                return None
            # Computed on demand (the series asks for few recorders' seconds) and kept.
            hist = HdrHistogram.decode(retired.encode())
            wanted = sorted({*SECOND_PERCENTILES, pct, *(known or {})})
            values = percentile_values(hist, wanted)
            release(hist)
            self._percentiles[second] = known = {p: values[p] / 1000 for p in wanted}
            return known[pct]

    def window_summary(self, first: int, last: int) -> dict[str, float | int]:
        """summarize() of the values of the seconds first..last (inclusive), their histograms
        merged exactly (--abort-on-fail's window, a capacity step's measured window). The mean
        is left out: sums are kept for the whole run only."""
        window = new_histogram(3)
        with self._settled():
            for second in range(first, last + 1):
                hist, retired = self._live.get(second), self._retired.get(second)
                if hist is not None:
                    window.add(hist)
                if retired is not None:
                    add_encoded(window, retired.encode())
        out = summarize(window, 0)
        out.pop("mean_ms", None)
        release(window)
        return out

    def counts_at_or_above(self, bound_us: int) -> dict[int, int]:
        """Per second, how many values were at or above `bound_us` (to the histogram's
        precision); seconds with none are left out. Only seconds whose largest value reaches
        the bound are read, so a run's tail costs a few histograms, not all of them."""
        out: dict[int, int] = {}
        for second, retired in self.intervals():
            if retired.get_max_value() < bound_us:
                continue
            hist = HdrHistogram.decode(retired.encode())
            n = count_at_or_above(hist, bound_us)
            release(hist)
            if n:
                out[second] = n
        return out

    def seconds(self) -> list[int]:
        with self._settled():
            return sorted(self._live.keys() | self._retired.keys())

    def intervals(self) -> list[tuple[int, Retired]]:
        """Every second's histogram, HDR-encoded, in order (an .hlog's intervals)."""
        out = []
        with self._settled():
            for second in sorted(self._live.keys() | self._retired.keys()):
                hist, earlier = self._live.get(second), self._retired.get(second)
                if hist is None:
                    assert earlier is not None
                    out.append((second, earlier))
                    continue
                one = new_histogram(3)  # a reopened second: both parts as one interval
                one.add(hist)
                if earlier is not None:
                    add_encoded(one, earlier.encode())
                if one.get_total_count():
                    out.append((second, Retired(base64.b64decode(one.encode()),
                                                one.get_max_value())))
                release(one)
        return out

    def drain(self) -> LatencyDelta:
        """Take what was recorded so far, HDR-encoded per second, and start again from empty."""
        with self._settled():
            live, self._live = self._live, {}
            retired, self._retired = self._retired, {}
            total, self._total = self._total, None
            sum_us, self._sum_us = self._sum_us, 0
            self._percentiles = {}
        seconds = [(s, r.encode()) for s, r in retired.items()]
        seconds += [(s, h.encode()) for s, h in live.items() if h.get_total_count()]
        for hist in [*live.values(), *([total] if total is not None else [])]:
            release(hist)
        return LatencyDelta(sum_us, seconds)

    def merge(self, delta: LatencyDelta) -> None:
        """Add a drained delta: the histograms merge exactly, bucket by bucket."""
        with self._settled():
            self._sum_us += delta.sum_us
            for second, encoded in sorted(delta.seconds):
                hist = self._live.get(second)
                if hist is None:
                    hist = self._open(second)
                add_encoded(hist, encoded)


class LatencyDelta(NamedTuple):
    """What a LatencyRecorder recorded since its last drain: the sum of its values (us) and
    each second's histogram, HDR-encoded (base64)."""

    sum_us: int
    seconds: list[tuple[int, bytes]]


class Retired(NamedTuple):
    """A second's histogram as HdrHistogram's V2 encoding (zlib; base64 only on output), and
    its largest value in us: what an .hlog interval line needs, at a few hundred bytes."""

    compressed: bytes
    max_us: int

    def encode(self) -> bytes:
        """The base64 form HdrHistogram.encode() returns (and HistogramLogWriter writes)."""
        return base64.b64encode(self.compressed)

    def get_max_value(self) -> int:
        """As HdrHistogram's, so HistogramLogWriter takes a Retired as it takes a histogram."""
        return self.max_us
