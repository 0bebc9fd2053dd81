"""One run's own noise, from its seconds: what esmeperf-compare knows of a figure's spread when
each side has a single run (issue 27).

A run's round-trip p99 is one number, but the run is many seconds, and its seconds differ:
some quiet, some hit by a GC pause or by another process on the machine. Resampling the
seconds shows how much the figure moves with them. A moving-block bootstrap (blocks of
BLOCK_S consecutive seconds, so that a slow spell stays together) draws RESAMPLES runs of the
same length from each side's seconds; each draw's figure is computed as the run's own is (the
latency percentiles from the seconds' HDR histograms added up, the rate as a mean of seconds).
The interval of the change is the change plus the spread of new minus the spread of base, so a
change inside it is within what either run's own seconds make of it.

Runs shorter than MIN_SECONDS whole seconds give no interval: thresholds alone judge them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ..results.rundata import RunData

BLOCK_S = 5
RESAMPLES = 1000
MIN_SECONDS = 6
SEED = 1


@dataclass(frozen=True)
class Seconds:
    """A run's per-second data, as arrays: what each bootstrap draw is summed from."""

    latency_us: np.ndarray  # the distinct round-trip values (bucket tops, us), ascending
    latency: np.ndarray  # seconds x values: each second's count of each value
    sent: np.ndarray  # messages sent in each whole second of the load's second half
    sent_all: np.ndarray  # messages sent in each second of the run
    delivered_all: np.ndarray  # echoes that arrived in each second of the run


def weights(count: int, rng: np.random.Generator) -> np.ndarray:
    """RESAMPLES x count: how often each second is drawn, in blocks of BLOCK_S seconds."""
    import numpy as np

    block = min(BLOCK_S, count)
    blocks = -(-count // block)
    starts = rng.integers(0, count - block + 1, size=(RESAMPLES, blocks))
    picked = (starts[:, :, None] + np.arange(block)).reshape(RESAMPLES, -1)[:, :count]
    out = np.zeros((RESAMPLES, count))
    np.add.at(out, (np.arange(RESAMPLES)[:, None], picked), 1)
    return out


def seconds_of(run: RunData) -> Seconds | None:
    """The run's seconds from its series and its .hlog; None when it has too few of them or
    no such files (ESME's Go test output)."""
    import numpy as np

    from ..results.hlog import read_intervals

    rows = [r for r in run.rows if r.get("load_fraction") not in (None, "")]
    whole = [int(r["sent"]) for r in rows if float(r["load_fraction"]) >= 1.0]
    if len(whole) < MIN_SECONDS or run.latency_log is None:
        return None
    try:
        intervals = read_intervals(run.latency_log, "message_rtt")
    except (OSError, ValueError):
        return None
    counts: list[dict[int, int]] = []
    for _, hist in intervals:
        counts.append({item.value_iterated_to: item.count_added_in_this_iter_step
                       for item in hist.get_recorded_iterator()})
    if len(counts) < MIN_SECONDS:
        return None
    values = sorted({v for second in counts for v in second})
    column = {v: i for i, v in enumerate(values)}
    latency = np.zeros((len(counts), len(values)))
    for i, second in enumerate(counts):
        for value, count in second.items():
            latency[i, column[value]] = count
    return Seconds(latency_us=np.array(values, dtype=float), latency=latency,
                   sent=np.array(whole[len(whole) // 2:], dtype=float),
                   sent_all=np.array([int(r["sent"]) for r in run.rows], dtype=float),
                   delivered_all=np.array([int(r.get("delivered") or 0) for r in run.rows],
                                          dtype=float))


def _percentile(pct: float) -> Callable[[Seconds, np.random.Generator], np.ndarray]:
    def draws(s: Seconds, rng: np.random.Generator) -> np.ndarray:
        import numpy as np

        counts = weights(len(s.latency), rng) @ s.latency  # each draw's histogram
        running = np.cumsum(counts, axis=1)
        if pct >= 100:  # the max: the largest value any drawn second holds
            index = counts.shape[1] - 1 - np.argmax(counts[:, ::-1] > 0, axis=1)
        else:
            index = np.argmax(running >= running[:, -1:] * pct / 100, axis=1)
        return s.latency_us[index] / 1000
    return draws


def _rate(s: Seconds, rng: np.random.Generator) -> np.ndarray:
    return weights(len(s.sent), rng) @ s.sent / len(s.sent)


def _ratio(s: Seconds, rng: np.random.Generator) -> np.ndarray:
    import numpy as np

    w = weights(len(s.sent_all), rng)
    sent = w @ s.sent_all
    return np.divide(w @ s.delivered_all, sent, out=np.ones_like(sent), where=sent > 0)


# esmeperf-compare's figures (comparison.FIGURES' labels) that a run's seconds can spread.
DRAWS: dict[str, Callable[[Seconds, Any], np.ndarray]] = {
    "round trip p50": _percentile(50), "round trip p90": _percentile(90),
    "round trip p99": _percentile(99), "round trip max": _percentile(100),
    "achieved rate": _rate, "delivered ratio": _ratio,
}


def interval(label: str, change: float, base: Seconds, new: Seconds,
             confidence: float) -> tuple[float, float] | None:
    """The `confidence` % interval of the change of figure `label` from base to new, or None
    for a figure the seconds cannot spread."""
    import numpy as np

    draw = DRAWS.get(label)
    if draw is None:
        return None
    rng = np.random.default_rng(SEED)
    base_draws, new_draws = draw(base, rng), draw(new, rng)
    spread = (new_draws - new_draws.mean()) - (base_draws - base_draws.mean())
    tail = (100 - confidence) / 2
    low, high = np.percentile(spread, [tail, 100 - tail])
    return float(change + low), float(change + high)


def cached(runs: Sequence[RunData]) -> dict[int, Seconds | None]:
    """seconds_of() of each run, by id: a run's .hlog is read once for all its figures."""
    return {id(run): seconds_of(run) for run in runs}
