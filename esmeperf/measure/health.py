"""Was the generator itself the bottleneck? The rules behind the summary's generator_health.

A load generator that runs out of CPU sends late, starts arrivals late, and so measures itself
instead of the target. Each rule below looks at one symptom over the seconds of the load; any
that fires marks the run `suspect`, with one reason each. The target's side is judged too
(where the embedded target runs): a busy target is a finding about the target, not a reason to
distrust the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .schedule import shortest_interval_ms

if TYPE_CHECKING:
    from ..config import Settings
    from .stats import Metrics

BUSY = 0.90  # a second counts as saturated at this share of the CPU the process may use
BUSY_SHARE = 0.20  # ... and the rule fires when this share of the load's seconds are
SEND_LATE_SHARE = 0.50  # send lateness p99 at this share of -smi
ARRIVAL_LATE_MIN_S = 1.0  # arrival lateness p99 at least this ...
ARRIVAL_LATE_INTERVALS = 5  # ... and at least this many -cpi intervals
# Generator lag (lag.py) from which the generator's own timing is suspect: twice the GIL switch
# interval a run uses (a thread waiting for the GIL asks for it after 50 ms: passed over twice),
# above Node's usual event-loop alarm (70 ms). Healthy runs here: p99 1-5 ms alone, 25-60 ms
# beside a Dask scheduler and two workers on the same two cores; a frozen GIL: the freeze.
LAG_LIMIT_MS = 100.0
# A shard's deltas, due every half second, this many seconds apart while the load ran: its
# process (or its link to the client) was held up, and its figures with it.
DELTA_GAP_LIMIT_S = 5.0


# A Dask worker's clock this far off the client's moves its per-second counts into the wrong
# seconds visibly (counts are keyed by each host's own Unix second).
CLOCK_SKEW_WARN_S = 1.0


def clock_warnings(shards: Iterable[dict[str, Any]]) -> list[str]:
    """One warning per Dask worker whose clock_skew_s is past CLOCK_SKEW_WARN_S."""
    return [f"the clock of Dask worker {s['worker']} is {s['clock_skew_s']:+.3f} s off this "
            f"client's (+/- {s.get('uncertainty_s', 0):.3f} s): its per-second counts fall in "
            "other seconds than the client's" for s in shards
            if abs(s.get("clock_skew_s", 0.0)) > CLOCK_SKEW_WARN_S]


def arrival_limit_ms(interval_ms: float) -> float:
    """Arrival lateness from which arrivals count as behind the grid."""
    return max(ARRIVAL_LATE_MIN_S * 1000, ARRIVAL_LATE_INTERVALS * interval_ms)


def usable_cores() -> int:
    """The processors this process may run on (its affinity, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def generator_cores(processes: int) -> int:
    """The CPU the generator can use: one core per process at most (each has one GIL)."""
    return max(1, min(usable_cores(), processes))


@dataclass(frozen=True)
class Figures:
    """What the rules look at, from one run (or one window of it: window())."""

    load_seconds: list[int]  # the Unix seconds wholly inside the load (or the window)
    generator_cpu_ms: Mapping[int, int]  # per second, the whole generator (shards included)
    cores: int  # the CPU the generator can use (generator_cores)
    target_cpu_ms: Mapping[int, int] | None  # per second, the embedded target's; None: remote
    send_lateness_p99_ms: float | None
    smi_ms: float
    arrival_lateness_p99_ms: float | None
    cpi_ms: float
    threads_alive_max: int
    generator_lag_p99_ms: float | None = None  # lag.py's probe, every process merged
    shard_delta_gap_s: float | None = None  # the longest wait between a shard's deltas


def _busy_share(cpu_ms: Mapping[int, int], seconds: Iterable[int], capacity_ms: float) -> float:
    seconds = list(seconds)
    if not seconds:
        return 0.0
    busy = sum(1 for s in seconds if cpu_ms.get(s, 0) >= BUSY * capacity_ms)
    return busy / len(seconds)


def assess(f: Figures) -> dict[str, Any]:
    """generator_health: suspect, the reasons, and the figures the rules used."""
    reasons: list[str] = []
    gen_share = _busy_share(f.generator_cpu_ms, f.load_seconds, 1000 * f.cores)
    if f.load_seconds and gen_share >= BUSY_SHARE:
        reasons.append(f"generator CPU >= {BUSY:.0%} of {f.cores} core(s) in "
                       f"{gen_share:.0%} of seconds")
    lag_ms = f.generator_lag_p99_ms or 0.0
    if lag_ms >= LAG_LIMIT_MS:
        reasons.append(f"generator lag p99 = {lag_ms:.1f} ms (its threads ran that late)")
    send_share = (f.send_lateness_p99_ms / f.smi_ms) if f.send_lateness_p99_ms else 0.0
    if send_share >= SEND_LATE_SHARE:
        reasons.append(f"send lateness p99 = {send_share:.0%} of the interval")
    gap = f.shard_delta_gap_s or 0.0
    if gap >= DELTA_GAP_LIMIT_S:
        reasons.append(f"a shard's deltas came {gap:.1f} s apart (due every 0.5 s): its "
                       "process or its link was held up")
    late_limit_ms = arrival_limit_ms(f.cpi_ms)
    late_ms = f.arrival_lateness_p99_ms or 0.0
    if late_ms >= late_limit_ms:
        reasons.append(f"arrivals {late_ms / 1000:.1f} s behind the grid (p99)")
    suspect = bool(reasons)
    findings: list[str] = []
    target_share = None
    if f.target_cpu_ms is not None:
        target_share = _busy_share(f.target_cpu_ms, f.load_seconds, 1000.0)
        if f.load_seconds and target_share >= BUSY_SHARE:
            findings.append(f"target-bound: the embedded target used >= {BUSY:.0%} of its one "
                            f"core in {target_share:.0%} of seconds")
    seconds = len(f.load_seconds) or 1
    return {
        "suspect": suspect,
        "reasons": reasons + findings,
        "generator_cpu_busy_share": round(gen_share, 3),
        "generator_cpu_mean": round(sum(f.generator_cpu_ms.get(s, 0) for s in f.load_seconds)
                                    / seconds / 1000, 3),
        "cores": f.cores,
        "generator_lag_p99_ms": f.generator_lag_p99_ms,
        "target_cpu_busy_share": None if target_share is None else round(target_share, 3),
        "send_lateness_p99_share": round(send_share, 3),
        "arrival_lateness_p99_ms": f.arrival_lateness_p99_ms,
        "threads_alive_max": f.threads_alive_max,
        "thresholds": {"busy": BUSY, "busy_share": BUSY_SHARE,
                       "generator_lag_ms": LAG_LIMIT_MS,
                       "send_late_share": SEND_LATE_SHARE,
                       "arrival_late_ms": late_limit_ms,
                       "shard_delta_gap_s": DELTA_GAP_LIMIT_S},
        "shard_delta_gap_s": f.shard_delta_gap_s,
    }


def own_reasons(verdict: Mapping[str, Any]) -> list[str]:
    """The reasons of an assess() verdict that are the generator's own (its findings on the
    embedded target, "target-bound", left out)."""
    return [r for r in verdict.get("reasons") or () if not r.startswith("target-bound")]


def window(metrics: Metrics, first: int, last: int, settings: Settings) -> dict[str, Any]:
    """assess() over the seconds first..last alone (their histograms merged exactly): the
    generator's health in the window a verdict is about (a gate's, a capacity step's)."""
    latency = {name: recorder.window_summary(first, last).get("p99_ms") for name, recorder in
               (("lateness", metrics.send_lateness), ("arrivals", metrics.arrival_lateness),
                ("lag", metrics.generator_lag))}
    return assess(Figures(
        load_seconds=list(range(first, last + 1)),
        generator_cpu_ms=metrics.generator_cpu_ms.snapshot(),
        cores=generator_cores(settings.processes), target_cpu_ms=None,
        send_lateness_p99_ms=latency["lateness"], smi_ms=settings.smi,
        arrival_lateness_p99_ms=latency["arrivals"], cpi_ms=shortest_interval_ms(settings),
        threads_alive_max=0, generator_lag_p99_ms=latency["lag"]))
