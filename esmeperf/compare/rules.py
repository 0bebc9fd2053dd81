"""Base against new: the figures compared, the noise model and the verdicts (esmeperf-compare).

Pure functions of loaded runs (rundata.RunData); esmeperf/compare/command.py is the command
around them.

Noise model. A change counts only when it is beyond both a share of the base and an absolute
amount (p99 worse by more than 20 % and 5 ms), so neither a small latency doubling (0.3 -> 0.6
ms) nor a 1 % wobble of a big one is a regression, and when it is beyond the runs' noise:

- with repeats on both sides, the runs show it: a seeded bootstrap (runs resampled with
  replacement on each side) gives an interval of the difference of the two sides' means;
- with one run a side, each run's own seconds show it (noise.py: a moving-block bootstrap over
  its seconds, its per-second HDR histograms added up for the latency percentiles).

A change beyond the thresholds whose interval holds zero is `inconclusive`, not a regression;
so is a worse figure when either side's generator was suspect (generator_health, or a round-trip
tail the run gave to the generator: its attribution's source `latency`): its figures
describe the generator as much as the target, and a regression is the target's to own; and so
is a worse latency no bigger than LAG_FACTOR times the rise of the generator's own lag p99
(lag.py) from base to new: the machine was busier, which slows the target as well, so the
change is not shown to be the target's.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..results.rundata import RunData
from ..results.summary import steady_rate

SAME, WORSE, BETTER, NA = "same", "REGRESSION", "better", "n/a"
INCONCLUSIVE = "inconclusive"
LAG_FACTOR = 2.0  # a worse latency within this many times the generator lag's rise: the machine


@dataclass(frozen=True)
class Threshold:
    """The smallest change that counts: beyond `pct` % of the base and beyond `absolute`."""

    pct: float
    absolute: float

    def exceeded(self, base: float, change: float) -> bool:
        return abs(change) > self.absolute and abs(change) > abs(base) * self.pct / 100


@dataclass(frozen=True)
class Figure:
    """One row: how to read it from a run, its unit, and which way is worse."""

    label: str
    unit: str
    higher_is_worse: bool
    read: Callable[[RunData], float | None]
    threshold: str  # the Thresholds field that judges it


@dataclass(frozen=True)
class Thresholds:
    """The documented defaults; esmeperf-compare has a flag for each."""

    latency: Threshold = Threshold(20.0, 5.0)  # round-trip p50, p90, p99 (ms)
    max: Threshold = Threshold(100.0, 50.0)  # round-trip max (ms): one value, the noisiest
    rate: Threshold = Threshold(5.0, 0.0)  # achieved messages/s
    ratio: Threshold = Threshold(0.0, 0.001)  # delivered ratio
    errors: Threshold = Threshold(0.0, 0.0)  # errors: any more than the base
    count: Threshold = Threshold(5.0, 0.0)  # participants created, chats


def _latency(key: str) -> Callable[[RunData], float | None]:
    def read(run: RunData) -> float | None:
        rtt = (run.summary.get("latency") or {}).get("message_rtt") or {}
        value = rtt.get(key) if rtt.get("count") else None
        return float(value) if isinstance(value, int | float) else None
    return read


def achieved_rate(run: RunData) -> float | None:
    """Messages/s over the second half of the load.

    From esmeperf's series, the half is of the load's time: its partial seconds count by
    their share (load_fraction), so two runs of one ramp agree wherever in a second each
    stopped. From the Go test's message rates, which have no such share, the whole seconds'
    (the summary's achieved_rate, results.steady_rate).
    """
    rows = [r for r in run.rows if r.get("load_fraction") not in (None, "")]
    inside = [(int(r["sent"]), float(r["load_fraction"])) for r in rows
              if float(r["load_fraction"]) > 0]
    if inside:
        half, sent, time = sum(f for _, f in inside) / 2, 0.0, 0.0
        for count, fraction in reversed(inside):
            take = min(fraction, half - time)  # the share of this second inside the half
            sent_share = count * take / fraction
            sent, time = sent + sent_share, time + take
            if time >= half:
                break
        return sent / time if time else None
    rates = {int(r["second"]): int(r["sent"]) for r in run.rows if int(r["sent"])}
    return steady_rate(rates) if rates else None


def _key(name: str) -> Callable[[RunData], float | None]:
    def read(run: RunData) -> float | None:
        value = run.summary.get(name)
        return float(value) if isinstance(value, int | float) else None
    return read


def errors(run: RunData) -> float | None:
    """Worker errors of the run (the series' per-second counts); None for the Go test's."""
    if not run.rows or "errors" not in run.rows[0]:
        return None
    return float(sum(int(r.get("errors") or 0) for r in run.rows))


FIGURES = (
    Figure("round trip p50", "ms", True, _latency("p50_ms"), "latency"),
    Figure("round trip p90", "ms", True, _latency("p90_ms"), "latency"),
    Figure("round trip p99", "ms", True, _latency("p99_ms"), "latency"),
    Figure("round trip max", "ms", True, _latency("max_ms"), "max"),
    Figure("achieved rate", "msg/s", False, achieved_rate, "rate"),
    Figure("delivered ratio", "", False, _key("delivered_ratio"), "ratio"),
    Figure("errors", "", True, errors, "errors"),
    Figure("participants", "", False, _key("created_participants_count"), "count"),
    Figure("chats", "", False, _key("chats_count"), "count"),
)


@dataclass(frozen=True)
class Noise:
    """How repeats are judged: a `confidence` % bootstrap interval from `resamples` draws."""

    confidence: float = 95.0
    resamples: int = 10_000
    seed: int = 1


@dataclass
class Row:
    figure: Figure
    base: list[float]
    new: list[float]
    verdict: str = NA
    interval: tuple[float, float] | None = None
    why: str = ""

    @property
    def base_mean(self) -> float | None:
        return statistics.fmean(self.base) if self.base else None

    @property
    def new_mean(self) -> float | None:
        return statistics.fmean(self.new) if self.new else None

    @property
    def change(self) -> float | None:
        if self.base_mean is None or self.new_mean is None:
            return None
        return self.new_mean - self.base_mean

    @property
    def change_pct(self) -> float | None:
        change, base = self.change, self.base_mean
        return None if change is None or not base else change / abs(base) * 100


@dataclass
class Comparison:
    rows: list[Row] = field(default_factory=list)
    repeats: bool = False  # judged by the bootstrap (repeats on both sides)
    seconds: bool = False  # single runs judged by their own seconds' spread (noise.py)
    suspect: tuple[str, ...] = ()  # the sides ("BASE", "NEW") with a suspect generator

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == WORSE]

    @property
    def inconclusive(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == INCONCLUSIVE]


def bootstrap_interval(base: Sequence[float], new: Sequence[float],
                       noise: Noise) -> tuple[float, float]:
    """The `noise.confidence` % percentile interval of mean(new) - mean(base), resampling the
    runs of each side with replacement; seeded, so the same runs give the same interval."""
    rng = random.Random(noise.seed)
    diffs = sorted(statistics.fmean(rng.choices(new, k=len(new)))
                   - statistics.fmean(rng.choices(base, k=len(base)))
                   for _ in range(noise.resamples))
    tail = (100 - noise.confidence) / 200
    low = diffs[int(tail * (len(diffs) - 1))]
    high = diffs[round((1 - tail) * (len(diffs) - 1))]
    return low, high


def judge(row: Row, threshold: Threshold, interval: tuple[float, float] | None,
          suspect: Sequence[str] = (), lag_rise_ms: float = 0.0) -> None:
    """Set the row's verdict from its change, the threshold, the noise interval of the change
    (None: thresholds alone), the sides whose generator was suspect and, for a latency, how
    much the generator's own lag p99 rose from base to new."""
    change, base = row.change, row.base_mean
    row.interval = interval
    if change is None or base is None:
        row.verdict, row.why = NA, "not in both"
        return
    worse = change > 0 if row.figure.higher_is_worse else change < 0
    beyond_noise = interval is not None and not interval[0] <= 0 <= interval[1]
    if not worse and change and beyond_noise:
        # An improvement the runs' noise cannot explain is one, however small: the thresholds
        # guard against calling noise a regression, not against seeing a real gain.
        row.verdict, row.why = BETTER, "beyond the runs' noise"
        return
    if not threshold.exceeded(base, change):
        row.verdict = SAME
        return
    if interval is not None and not beyond_noise:
        row.verdict, row.why = (INCONCLUSIVE if worse else SAME), "within the runs' noise"
        return
    if worse and suspect:
        row.verdict = INCONCLUSIVE
        row.why = f"generator suspect in {' and '.join(suspect)}"
        return
    if worse and row.figure.unit == "ms" and 0 < abs(change) <= LAG_FACTOR * lag_rise_ms:
        row.verdict = INCONCLUSIVE
        row.why = f"the generator's lag p99 rose {lag_rise_ms:.1f} ms: a busier machine"
        return
    row.verdict = WORSE if worse else BETTER


def compare(base: Sequence[RunData], new: Sequence[RunData],
            thresholds: Thresholds | None = None, noise: Noise | None = None) -> Comparison:
    """Every figure of FIGURES, base runs against new runs, judged."""
    from . import noise as run_noise

    thresholds, noise = thresholds or Thresholds(), noise or Noise()
    repeats = len(base) > 1 and len(new) > 1
    suspect = tuple(side for side, runs in (("BASE", base), ("NEW", new))
                    if suspect_runs(runs))
    spread = None
    if len(base) == 1 and len(new) == 1:
        seconds = run_noise.cached([base[0], new[0]])
        left, right = seconds[id(base[0])], seconds[id(new[0])]
        spread = (left, right) if left is not None and right is not None else None
    out = Comparison(repeats=repeats, seconds=spread is not None, suspect=suspect)
    lags = [[v for v in map(generator_lag_p99, runs) if v is not None] for runs in (base, new)]
    lag_rise = (statistics.fmean(lags[1]) - statistics.fmean(lags[0])
                if lags[0] and lags[1] else 0.0)
    for figure in FIGURES:
        row = Row(figure, _values(figure, base), _values(figure, new))
        interval = None
        if repeats and len(row.base) > 1 and len(row.new) > 1:
            interval = bootstrap_interval(row.base, row.new, noise)
        elif spread is not None and row.change is not None:
            interval = run_noise.interval(figure.label, row.change, *spread, noise.confidence)
        judge(row, getattr(thresholds, figure.threshold), interval, suspect, lag_rise)
        out.rows.append(row)
    return out


def _values(figure: Figure, runs: Sequence[RunData]) -> list[float]:
    return [v for v in (figure.read(run) for run in runs) if v is not None]


def suspect_runs(runs: Sequence[RunData]) -> int:
    """How many runs the generator's health rules marked suspect, or whose round-trip tail
    the run itself gave to the generator (attribution source `latency`, issue 37)."""
    return sum(_suspect(r.summary) for r in runs)


def _suspect(summary: dict) -> bool:
    if (summary.get("generator_health") or {}).get("suspect"):
        return True
    who = summary.get("attribution") or {}
    return who.get("source") == "latency" and who.get("limited_by") == "generator"


def generator_lag_p99(run: RunData) -> float | None:
    """The run's generator lag p99 in ms (lag.py), None where it was not measured."""
    lag = (run.summary.get("latency") or {}).get("generator_lag") or {}
    value = lag.get("p99_ms") if lag.get("count") else None
    return float(value) if isinstance(value, int | float) else None
