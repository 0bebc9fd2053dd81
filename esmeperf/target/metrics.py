"""Cheap counters and a microsecond latency histogram for /stats."""

from __future__ import annotations

# Linear 1 µs buckets up to this bound; slower samples land in the last bucket (max is exact).
_BUCKETS = 100_000


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
        rank = max(1, -(-self.total * pct // 100))
        seen = 0
        for value, count in enumerate(self._counts):
            seen += count
            if seen >= rank:
                return min(value, self.max)
        return self.max

    def summary(self) -> dict[str, int]:
        return {"p50": int(self.percentile(50)), "p99": int(self.percentile(99)), "max": self.max}


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
