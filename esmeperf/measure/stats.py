"""Thread-safe measurements: per-second counters, run counters, and the latencies
(latency.py) that together are everything a run measures."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..config import BATCH_MAX_MS
from .counts import Count, CountFamily
from .latency import LatencyRecorder

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
        # Each echo from the moment its message was due on the -smi grid (its round trip plus
        # its send lateness), each send slot skipped from its due time to when it was given up,
        # and each unconfirmed message from its due time to its participant's end: what a
        # participant lived through, coordinated omission corrected (wrk2), by arrival second.
        self.rtt_from_intended = LatencyRecorder()
        self.lateness = LatencyRecorder()
        # How late this process's threads ran after they were due (lag.py's probe).
        self.generator_lag = LatencyRecorder()
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
            "message_rtt_from_intended": self.rtt_from_intended.summary(),
            "send_lateness": self.lateness.summary(),
            "generator_lag": self.generator_lag.summary(),
            "arrival_lateness": self.arrival_lateness.summary(),
            "organizer_reply": self.reply_latency.summary(),
            "sign_up": self.signup.summary(),
            "chat_request": self.chat_request.summary(),
            "ws_handshake": self.handshake.summary(),
            "arrival_to_chat": self.chat_wait.summary(),
        }

    def recorders(self) -> dict[str, LatencyRecorder]:
        """Each latency by its key in the summary's `latency` (the .hlog's tags); `unconfirmed`
        is the part message_rtt_with_unconfirmed adds to message_rtt."""
        return {"message_rtt": self.rtt, "message_rtt_from_intended": self.rtt_from_intended,
                "send_lateness": self.lateness, "generator_lag": self.generator_lag,
                "arrival_lateness": self.arrival_lateness, "organizer_reply": self.reply_latency,
                "sign_up": self.signup, "chat_request": self.chat_request,
                "ws_handshake": self.handshake, "arrival_to_chat": self.chat_wait,
                "unconfirmed": self.unconfirmed}


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
