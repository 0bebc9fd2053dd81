"""Who limited a verdict: the target, the generator, or no telling (issue 27).

A verdict that names the target (a stall, a timeout, a failed gate, a capacity step's failure,
a regression) is only as good as the generator that measured it: a generator out of CPU reads
its echoes late and sends late, and then measures itself. So before any such verdict names the
target, the generator's own health over the same window is checked:

- `target`: the generator was healthy over the window, so what it saw was the target's doing;
- `generator`: the generator was saturated and there is positive evidence that the target did
  its part (its answer waited unread in our socket, or its own handling time was a small share
  of the round trip);
- `undetermined`: the generator was saturated and nothing shows the target was not slow too.

A run that ended as planned with a healthy generator is judged too, on its latency alone
(issue 37, `judge_latency`): its round-trip p99 is the generator's when most of the samples at
or above it came in seconds in which the generator's own lag was a fair part of it, and no
one's in particular when the target's own handling was a small part of it (the rest happened
outside the target's handling: this machine's CPU, its scheduler, the network). Either way it
is not called the target's, nor a run nothing limited.

`REMEDY` is what the words of a generator or undetermined verdict end with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import health

if TYPE_CHECKING:
    from .lag import Window
    from .stall import Oldest

TARGET, GENERATOR, UNDETERMINED = "target", "generator", "undetermined"
REMEDY = ("spread the load over more processes (--processes N, --cluster local:N or "
          "--scheduler) or lower it")
GENERATOR_GATE = "generator_healthy"  # --fail-on-suspect's gate
ACHIEVED_WARN = 0.99  # achieved/intended sends below this: the headline says so
# The target's handling at most this share of the round trip: the rest was not the target's.
TARGET_SHARE_SMALL = 0.10
# judge_latency: a second lagged when the generator's lag p99 in it was at least this share of
# the run's round-trip p99 (and LAG_FLOOR_MS); the p99 is the generator's when more than
# TAIL_IN_LAG of the samples at or above it came in such seconds.
LAG_OF_RTT = 0.20
LAG_FLOOR_MS = 5.0
TAIL_IN_LAG = 0.5
# judge_latency: a round-trip p99 over this many times the target's own handling p99 (its
# handling under 1/OUTSIDE_FACTOR = 5 % of it) happened mostly outside the target's handling.
OUTSIDE_FACTOR = 20.0
# judge_latency: the target's own handling p99 at least this share of the round trip's p99
# accounts for the tail: then no lag beside it makes it the generator's.
TARGET_OWNS = 0.5


@dataclass(frozen=True)
class Verdict:
    """Who a verdict names, and the words that say why."""

    who: str  # TARGET, GENERATOR or UNDETERMINED
    text: str


def limited(window: Window, cores: int, span_s: float) -> list[str]:
    """Why the generator was saturated over a window of its own readings (empty: it was not):
    its lag (lag.py) past health.LAG_LIMIT_MS in a fifth of the seconds or more, or once past
    half the window's span (a freeze long enough to explain the wait), or its CPU saturated in
    a fifth of the seconds or more (health.py's thresholds)."""
    reasons = []
    lagging = window.lagging_share(health.LAG_LIMIT_MS)
    if lagging >= health.BUSY_SHARE or window.worst_lag_ms >= span_s * 500:
        reasons.append(f"its threads ran up to {window.worst_lag_ms / 1000:.2f} s late "
                       f"(lag >= {health.LAG_LIMIT_MS:g} ms in {lagging:.0%} of seconds)")
    busy = window.busy_share(health.BUSY, 1000.0 * cores)
    if busy >= health.BUSY_SHARE:
        reasons.append(f"its CPU was >= {health.BUSY:.0%} of {cores} core(s) in {busy:.0%} of "
                       "seconds")
    return reasons


def judge_stall(oldest: Oldest, timeout_s: float, window: Window, cores: int) -> Verdict:
    """The words of a stall (a request unanswered past --stall-timeout), and who it names."""
    head = (f"{oldest.what} unanswered for {oldest.age_s:.1f} s (--stall-timeout "
            f"{timeout_s:g} s)")
    unread = oldest.unread
    reasons = limited(window, cores, oldest.age_s)
    if unread:
        why = f"; {'; '.join(reasons)}" if reasons else ""
        return Verdict(GENERATOR, f"{head}: the generator, not the target: the target's answer "
                                  f"waited unread in the socket ({unread} bytes){why}; {REMEDY}")
    if reasons:
        return Verdict(UNDETERMINED, f"{head}: cannot tell whether the target or the generator "
                                     f"stalled: nothing came back, but over those "
                                     f"{oldest.age_s:.0f} s the generator was saturated "
                                     f"({'; '.join(reasons)}); {REMEDY}, and run again")
    return Verdict(TARGET, f"{head}: the target stopped answering")


def judge_timeout(message: str, window: Window, cores: int, span_s: float) -> Verdict:
    """A wait for the target that ran out (a chat, a handshake, a REST call): the target's,
    unless the generator was saturated while it waited."""
    reasons = limited(window, cores, span_s)
    if reasons:
        return Verdict(UNDETERMINED, f"{message} (while the generator was saturated: "
                                     f"{'; '.join(reasons)}: this may be its limit, not the "
                                     f"target's; {REMEDY})")
    return Verdict(TARGET, message)


def target_share(target_p99_ms: float | None, rtt_p99_ms: float | None) -> float | None:
    """The target's own handling p99 as a share of the round trip's p99, where both exist."""
    if target_p99_ms is None or not rtt_p99_ms:
        return None
    return round(min(1.0, target_p99_ms / rtt_p99_ms), 6)


def judge_suspect(suspect: bool, share: float | None) -> str:
    """A verdict over a run or a window whose generator health is known: the target when the
    generator was healthy; else the generator when the target's own handling was a small share
    of the round trip (TARGET_SHARE_SMALL), else no telling."""
    if not suspect:
        return TARGET
    if share is not None and share <= TARGET_SHARE_SMALL:
        return GENERATOR
    return UNDETERMINED


@dataclass(frozen=True)
class Tail:
    """Where a run's round-trip p99 came from (the summary's `rtt_tail`): the samples at or
    above it, and how many of them came in seconds in which the generator lagged."""

    rtt_p99_ms: float
    samples: int
    in_lagged_seconds: int
    lag_threshold_ms: float

    @property
    def lagged_share(self) -> float:
        return self.in_lagged_seconds / self.samples if self.samples else 0.0


def lag_threshold_ms(rtt_p99_ms: float) -> float:
    """The generator lag p99 from which a second counts as lagged, for a run's round-trip p99."""
    return max(LAG_FLOOR_MS, LAG_OF_RTT * rtt_p99_ms)


def judge_latency(tail: Tail | None, target_p99_ms: float | None) -> Verdict | None:
    """Who a healthy run's round-trip p99 belongs to when it is not the target's: the generator
    (most of the tail in seconds it lagged), no one in particular (the target's own handling a
    small part of it), or None: nothing says it was not the target's, or the target's own
    handling accounts for it (TARGET_OWNS), whatever the generator's lag beside it."""
    if tail is None or not tail.samples:
        return None
    head = f"the round-trip p99 ({tail.rtt_p99_ms:g} ms)"
    if target_p99_ms is not None and target_p99_ms >= TARGET_OWNS * tail.rtt_p99_ms:
        return None  # the target's own handling accounts for it
    lagged = tail.lagged_share > TAIL_IN_LAG
    outside = (target_p99_ms is not None and tail.rtt_p99_ms > OUTSIDE_FACTOR * target_p99_ms)
    words = []
    if lagged:
        words.append(f"{tail.lagged_share:.0%} of the samples at or above it came in seconds in "
                     f"which the generator's own lag p99 was >= {tail.lag_threshold_ms:g} ms")
    if outside:
        assert target_p99_ms is not None
        words.append(f"it is {tail.rtt_p99_ms / max(target_p99_ms, 1e-3):.0f}x the target's own "
                     f"handling p99 ({target_p99_ms:g} ms): most of it happened outside the "
                     "target's handling (this machine's CPU and scheduler, shared by the "
                     "generator, or the network)")
    if not words:
        return None
    return Verdict(GENERATOR if lagged else UNDETERMINED, f"{head}: {'; '.join(words)}")
