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
