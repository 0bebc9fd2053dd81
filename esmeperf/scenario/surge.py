"""A surge of help requests, and whether the chats open before it endured it (issue 16).

ESME's question is whether, "in the flood of requests for help, already opened communication
with support will endure". A run with a surge window splits what it measures two ways:

- **cohorts** of participants, by when they were scheduled to arrive: `before` the surge (their
  chats were open or opening when it came), `during` it (the flood), `after` it;
- **phases** of the run, by when a message was sent: before, during and after the surge.

Each (cohort, phase) cell keeps its own round trips, send lateness, sends and echoes, and each
cohort its time to chat, so one table answers the question: did the `before` cohort's chats keep
working in the `during` phase?

The window comes from `--surge FROM-TO`, or else from `--stages`: the stages that reach the
plan's peak rate and hold it, from the start of the step or ramp into the peak to the end of
the last stage at the peak (`0s:5,60s:5,0s:100,20s:100,0s:5,60s:5`: 60-80 s). A plan that
starts with its peak has nothing open before it, so it has no surge. Times are offsets from the
arrival grid's origin.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..measure.latency import LatencyRecorder
from ..verdict import gates

COHORTS = PHASES = ("before", "during", "after")
# The chats open before the surge endured it when, while it lasted, they kept this share of
# their messages echoed and their round-trip p99 within --max-p99 (or this default).
ENDURED_MIN_DELIVERED = 0.999
ENDURED_MAX_P99_MS = 1000.0


@dataclass(frozen=True)
class Window:
    """The surge: [start, end) seconds from the arrival grid's origin."""

    start: float
    end: float
    source: str  # "--surge" or "--stages"

    def part(self, offset: float) -> int:
        """0, 1 or 2: before, during or after the surge (an index into COHORTS/PHASES)."""
        return 0 if offset < self.start else 1 if offset < self.end else 2


def parse_window(text: str) -> tuple[float, float]:
    """`60s-80s` -> (60.0, 80.0); ValueError if bad."""
    from ..config import timespan

    first, sep, second = text.partition("-")
    if not sep:
        raise ValueError(f"expected FROM-TO such as 60s-80s, got {text!r}")
    start = 0.0 if first.strip() in ("0", "0s") else timespan(first)
    end = timespan(second)
    if end <= start:
        raise ValueError(f"the surge must end after it starts, got {text!r}")
    return start, end


def window_from_stages(stages: Sequence[tuple[float, float]]) -> Window | None:
    """The ramp into the plan's peak rate and the stages that hold it; None if it starts at 0
    (nothing was open before it) or the plan has no stages."""
    if not stages:
        return None
    peak = max(rate for _, rate in stages)
    first = next(i for i, (_, rate) in enumerate(stages) if rate == peak)
    last = first
    while last + 1 < len(stages) and stages[last + 1][1] == peak:
        last += 1
    start = sum(duration for duration, _ in stages[:first])
    end = sum(duration for duration, _ in stages[:last + 1])
    if start <= 0:
        return None
    return Window(start, end, "--stages")


def window_of(settings: Any) -> Window | None:
    """The run's surge window, if it has one."""
    if settings.surge is not None:
        start, end = settings.surge
        return Window(start, end, "--surge")
    return window_from_stages(settings.stages)


class _Cell:
    """What one cohort sent in one phase."""

    def __init__(self) -> None:
        self.rtt = LatencyRecorder(per_second=False)
        self.lateness = LatencyRecorder(per_second=False)


class SurgeStats:
    """Per-cohort, per-phase measurements; thread-safe, and mergeable across shards.

    `origin_wall` is the Unix time of the arrival grid's origin (the spawner sets it; shards
    share the parent's); a message's phase is that of its send time.
    """

    def __init__(self, window: Window) -> None:
        self.window = window
        self.origin_wall = 0.0
        self._cells = [[_Cell() for _ in PHASES] for _ in COHORTS]
        self.time_to_chat = [LatencyRecorder(per_second=False) for _ in COHORTS]
        self._lock = threading.Lock()
        # [cohort][phase] counts of sends and echoes (an echo counts in its send's phase).
        self._sent = [[0] * len(PHASES) for _ in COHORTS]
        self._delivered = [[0] * len(PHASES) for _ in COHORTS]
        self._participants = [0] * len(COHORTS)

    def phase_ns(self, unix_ns: int) -> int:
        """The phase (0, 1, 2) of a moment given in Unix ns."""
        return self.window.part(unix_ns / 1e9 - self.origin_wall)

    def arrived(self, cohort: int) -> None:
        with self._lock:
            self._participants[cohort] += 1

    def sent(self, cohort: int, phase: int, lateness_s: float) -> None:
        with self._lock:
            self._sent[cohort][phase] += 1
        self._cells[cohort][phase].lateness.record(0, lateness_s)

    def delivered(self, cohort: int, phase: int, rtt_s: float) -> None:
        with self._lock:
            self._delivered[cohort][phase] += 1
        self._cells[cohort][phase].rtt.record(0, rtt_s)

    # -- shards ---------------------------------------------------------------------------

    def drain(self) -> dict[str, Any]:
        """Everything since the last drain, picklable (LatencyRecorder.drain for histograms)."""
        with self._lock:
            counts = {"sent": self._sent, "delivered": self._delivered,
                      "participants": self._participants}
            self._sent = [[0] * len(PHASES) for _ in COHORTS]
            self._delivered = [[0] * len(PHASES) for _ in COHORTS]
            self._participants = [0] * len(COHORTS)
        return {
            "counts": counts,
            "cells": [[{"rtt": cell.rtt.drain(), "lateness": cell.lateness.drain()}
                       for cell in row] for row in self._cells],
            "time_to_chat": [rec.drain() for rec in self.time_to_chat],
        }

    def merge(self, delta: dict[str, Any]) -> None:
        counts = delta["counts"]
        with self._lock:
            for c in range(len(COHORTS)):
                self._participants[c] += counts["participants"][c]
                for p in range(len(PHASES)):
                    self._sent[c][p] += counts["sent"][c][p]
                    self._delivered[c][p] += counts["delivered"][c][p]
        for row, cells in zip(self._cells, delta["cells"], strict=True):
            for cell, parts in zip(row, cells, strict=True):
                cell.rtt.merge(parts["rtt"])
                cell.lateness.merge(parts["lateness"])
        for rec, part in zip(self.time_to_chat, delta["time_to_chat"], strict=True):
            rec.merge(part)

    # -- the result -----------------------------------------------------------------------

    def summary(self, max_p99_ms: float | None = None) -> dict[str, Any]:
        """The `surge` object of the summary: the window, each cohort's figures per phase,
        and the verdict on the chats open before the surge."""
        with self._lock:
            sent = [row[:] for row in self._sent]
            delivered = [row[:] for row in self._delivered]
            participants = self._participants[:]
        cohorts: dict[str, Any] = {}
        for c, cohort in enumerate(COHORTS):
            phases = {}
            for p, phase in enumerate(PHASES):
                cell = self._cells[c][p]
                phases[phase] = {
                    "sent": sent[c][p],
                    "delivered": delivered[c][p],
                    "delivered_ratio": (round(delivered[c][p] / sent[c][p], 6)
                                        if sent[c][p] else None),
                    "rtt": cell.rtt.summary(),
                    "send_lateness": cell.lateness.summary(),
                }
            cohorts[cohort] = {"participants": participants[c],
                               "time_to_chat": self.time_to_chat[c].summary(),
                               "phases": phases}
        limit = max_p99_ms if max_p99_ms is not None else ENDURED_MAX_P99_MS
        return {"window_s": [self.window.start, self.window.end],
                "source": self.window.source, "cohorts": cohorts,
                "open_chats_endured": endured(cohorts["before"]["phases"]["during"], limit),
                "endured_rule": f"the 'before' cohort's messages sent during the surge: "
                                f"delivered/sent >= {ENDURED_MIN_DELIVERED:g} and round-trip "
                                f"p99 <= {limit:g} ms"}


def endured(cell: dict[str, Any], max_p99_ms: float) -> bool | None:
    """Did the open chats keep working during the surge? None: they sent nothing then."""
    if not cell["sent"]:
        return None
    # The rules of the gates --min-delivered-ratio and --max-p99 (verdict/gates.py), over the
    # cell's messages.
    return (gates.by_key("min_delivered_ratio").passes(cell["delivered_ratio"],
                                                       ENDURED_MIN_DELIVERED)
            and gates.by_key("max_p99_ms").passes(cell["rtt"].get("p99_ms"), max_p99_ms))
