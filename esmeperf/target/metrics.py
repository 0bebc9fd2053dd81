"""Cheap counters and microsecond latency histograms for /stats."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

# Linear 1 µs buckets up to this bound; slower samples land in the last bucket (max is exact).
_BUCKETS = 100_000
# Per-second histograms: 16 exact buckets (0-15 µs), then 8 a power of two (12.5 % wide), to
# 2^27 µs (134 s): 200 counters a second, so an hour of seconds fits in a few MB.
_EXACT = 16
_LOG_BUCKETS = _EXACT + 8 * 23
KEEP_SECONDS = 3600  # the newest seconds /stats reports per second


class Histogram:
    """Fixed 1 µs buckets: recording is one list increment, so it fits the per-frame path."""

    def __init__(self) -> None:
        self._counts = [0] * (_BUCKETS + 1)
        self.total = 0
        self.max = 0

    def record(self, us: int) -> None:
        self._counts[us if us < _BUCKETS else _BUCKETS] += 1
        self.total += 1
        if us > self.max:
            self.max = us

    def percentile(self, pct: float) -> int:
        """Smallest bucket value with at least pct % of samples at or below it; 0 if empty."""
        if not self.total:
            return 0
        value = _at_rank(enumerate(self._counts), self.total, pct)
        return self.max if value is None else min(value, self.max)

    def summary(self) -> dict[str, int]:
        return {"p50": int(self.percentile(50)), "p99": int(self.percentile(99)), "max": self.max}


def _at_rank(counted: Iterable[tuple[Any, int]], total: int, pct: float) -> Any:
    """The first value of `counted` ((value, count) in ascending order) at which the running
    count reaches pct % of `total` (the nearest-rank percentile); None if it never does."""
    rank, seen = max(1, -(-total * pct // 100)), 0
    for value, count in counted:
        seen += count
        if seen >= rank:
            return value
    return None


def _log_bucket(us: int) -> int:
    if us < _EXACT:
        return max(0, us)
    shift = us.bit_length() - 4  # keep the top four bits: 8..15
    return min(_LOG_BUCKETS - 1, _EXACT + (shift - 1) * 8 + (us >> shift) - 8)


def _log_bucket_top(index: int) -> int:
    """The largest value that falls in bucket `index`."""
    if index < _EXACT:
        return index
    shift, top = (index - _EXACT) // 8 + 1, (index - _EXACT) % 8 + 8
    return ((top + 1) << shift) - 1


class PerSecond:
    """Handling times per Unix second, in log buckets (12.5 %): the generator puts each second's
    p99 beside its round trip. The newest KEEP_SECONDS seconds are kept."""

    def __init__(self) -> None:
        self._seconds: dict[int, list[int]] = {}
        self._max: dict[int, int] = {}

    def record(self, second: int, us: int) -> None:
        counts = self._seconds.get(second)
        if counts is None:
            counts = self._seconds[second] = [0] * _LOG_BUCKETS
            self._max[second] = 0
            if len(self._seconds) > KEEP_SECONDS:
                oldest = min(self._seconds)
                del self._seconds[oldest], self._max[oldest]
        counts[_log_bucket(us)] += 1
        if us > self._max[second]:
            self._max[second] = us

    def summary(self) -> dict[str, dict[str, int]]:
        """Unix second (a string, as JSON keys are) -> count, p50_us, p99_us (the bucket's top,
        so never below the truth by more than 12.5 %) and the exact max_us."""
        out = {}
        for second in sorted(self._seconds):
            counts, total = self._seconds[second], sum(self._seconds[second])
            figures = {"count": total}
            for name, pct in (("p50_us", 50), ("p99_us", 99)):
                index = _at_rank(enumerate(counts), total, pct)
                figures[name] = min(_log_bucket_top(index), self._max[second])
            figures["max_us"] = self._max[second]
            out[str(second)] = figures
        return out


class Intervals:
    """The times between successive send_message frames of each participant connection, as
    this process saw them arrive: a ruler of the client's pacing that neither client controls.

    Kept as a count per 10 µs step, so memory grows with the spread of the intervals, not with
    the number of messages; `error_summary` compares them with the interval the client meant.
    """

    STEP_US = 10

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.total = 0

    def record(self, ns: int) -> None:
        step = ns // (self.STEP_US * 1000)
        counts = self._counts
        counts[step] = counts.get(step, 0) + 1
        self.total += 1

    def error_summary(self, interval_ms: float) -> dict[str, float | int]:
        """|interval - interval_ms| over every interval: count, p50, p99 and max in µs (each
        to STEP_US). A slot the client skipped shows as an interval's worth of error."""
        if not self.total:
            return {"count": 0}
        meant_us, step = interval_ms * 1000, self.STEP_US
        errors = sorted((abs(key * step + step / 2 - meant_us), n)
                        for key, n in self._counts.items())
        out: dict[str, float | int] = {"count": self.total}
        for name, pct in (("p50", 50), ("p99", 99)):
            out[name] = round(_at_rank(errors, self.total, pct))
        out["max"] = round(errors[-1][0])
        return out


class Counters:
    """Plain integer counters mutated only from the event-loop thread, so no lock is needed."""

    def __init__(self) -> None:
        self.connections_total = 0
        self.chat_requests_total = 0
        self.chat_requests_popped = 0
        self.chats = 0
        self.participant_messages = 0
        self.organizer_messages = 0
        self.description_messages = 0
        self.frames_received = 0
        self.frames_delivered = 0
        self.frames_dropped = 0
        self.handshakes_refused = 0
        self.handling = Histogram()
        self.handling_by_second = PerSecond()
        self.send_intervals = Intervals()

    def handled(self, us: int) -> None:
        """One frame handled in `us` microseconds: the run's histogram and its second's."""
        self.handling.record(us)
        self.handling_by_second.record(int(time.time()), us)
