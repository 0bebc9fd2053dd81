"""When participants arrive: `-cpi`'s fixed grid, or `--stages` ramping arrival rates.

`--stages D:R[,D:R...]` is k6's ramping-arrival-rate: over each stage's duration D the rate
ramps linearly from the previous stage's end rate (0 before the first) to R arrivals a second.
A stage of `0s` is a sudden step: the rate is R from that instant. Arrival k comes when the
integral of the rate reaches k, so the schedule is exact and open: a slow sign-up delays no
one. Example: 5s:10,10s:10,5s:0 is 25 + 100 + 25 = 150 arrivals; 0s:10,10s:10 is 100, at 10
a second from the start.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..config import Settings, timespan

Stage = tuple[float, float]  # (duration in seconds, rate at its end in arrivals per second)


def parse_stages(text: str) -> tuple[Stage, ...]:
    """`5s:10,10s:10,5s:0` -> ((5.0, 10.0), (10.0, 10.0), (5.0, 0.0)); ValueError if bad."""
    stages = []
    for part in text.split(","):
        duration, sep, rate = part.strip().partition(":")
        if not sep:
            raise ValueError(f"expected DURATION:RATE such as 30s:10, got {part.strip()!r}")
        try:
            value = float(rate)
        except ValueError:
            raise ValueError(f"expected arrivals per second after ':', got {rate!r}") from None
        if not 0 <= value < math.inf:
            raise ValueError(f"a rate must be 0 or more arrivals per second, got {rate!r}")
        step = duration.strip() in ("0", "0s", "0ms", "0m", "0h")  # a sudden step to `value`
        stages.append((0.0 if step else timespan(duration), value))
    if not any(rate for _, rate in stages):
        raise ValueError("every stage has rate 0: no participant would arrive")
    if not any(duration for duration, _ in stages):
        raise ValueError("every stage lasts 0 s: give one a duration, e.g. 0s:10,30s:10")
    return tuple(stages)


@dataclass(frozen=True)
class Schedule:
    """Arrival offsets (seconds from the grid's origin) for participant 1, 2, ..."""

    cpi_s: float | None = None  # the fixed grid: arrival n at n x cpi
    stages: tuple[Stage, ...] = ()

    @property
    def length(self) -> float | None:
        """Seconds the stages last (None for the open-ended grid)."""
        return sum(d for d, _ in self.stages) if self.stages else None

    def arrivals_by(self, t: float) -> int:
        """How many arrivals the schedule asks for by `t` seconds after its origin."""
        if not self.stages:
            assert self.cpi_s is not None
            return max(0, math.floor(t / self.cpi_s + 1e-9))
        total, start, rate = 0.0, 0.0, 0.0
        for duration, end_rate in self.stages:
            if not duration:  # a step: the rate changes at once
                rate = end_rate
                continue
            span = min(max(t - start, 0.0), duration)
            total += rate * span + (end_rate - rate) * span * span / (2 * duration)
            start, rate = start + duration, end_rate
            if t <= start:
                break
        return math.floor(total + 1e-9)

    def offsets(self) -> Iterator[float]:
        """The offset of arrival 1, 2, ...: where the integral of the rate reaches k."""
        if not self.stages:
            assert self.cpi_s is not None
            k = 1
            while True:
                yield k * self.cpi_s
                k += 1
        k, done, start, rate = 1, 0.0, 0.0, 0.0
        for duration, end_rate in self.stages:
            if not duration:  # a step: the rate changes at once
                rate = end_rate
                continue
            slope = (end_rate - rate) / duration
            area = rate * duration + slope * duration * duration / 2
            while k <= done + area + 1e-9:
                need = k - done  # the area still to cover inside this stage
                yield start + _time_for(need, rate, slope, duration)
                k += 1
            done, start, rate = done + area, start + duration, end_rate


def _time_for(area: float, rate: float, slope: float, duration: float) -> float:
    """The time x in [0, duration] where rate*x + slope*x^2/2 reaches `area`."""
    if abs(slope) < 1e-12:
        return min(duration, area / rate)
    disc = max(0.0, rate * rate + 2 * slope * area)
    # The root of slope/2 x^2 + rate x - area = 0 that lies in the stage (written without
    # cancellation: rate + sqrt(disc) is never near 0 when slope is negative here).
    x = 2 * area / (rate + math.sqrt(disc)) if rate + math.sqrt(disc) > 0 else duration
    return min(duration, x)


def take(offsets: Iterator[float], first: int, stride: int) -> Iterator[tuple[int, float]]:
    """Arrivals first, first + stride, ... (1-based numbers) with their offsets: one shard's."""
    for number, offset in enumerate(offsets, 1):
        if number >= first and (number - first) % stride == 0:
            yield number, offset


def schedule_of(settings: Settings) -> Schedule:
    """The run's arrival schedule."""
    if settings.stages:
        return Schedule(stages=settings.stages)
    return Schedule(cpi_s=settings.cpi / 1000)


def planned(settings: Settings, seconds: float) -> int:
    """Arrivals the run's schedule asks for by `seconds` after its origin, within
    --max-participants (the summary's participants_planned, the series' intended arrivals)."""
    slots = schedule_of(settings).arrivals_by(seconds)
    return slots if settings.max_participants is None else min(slots, settings.max_participants)


def shortest_interval_ms(settings: Settings) -> float:
    """-cpi, or the gap between arrivals at the stages' highest rate."""
    if settings.stages:
        return 1000 / max(rate for _, rate in settings.stages)
    return settings.cpi


def total(stages: Sequence[Stage]) -> int:
    """How many participants a whole stage plan creates."""
    return Schedule(stages=tuple(stages)).arrivals_by(sum(d for d, _ in stages))
