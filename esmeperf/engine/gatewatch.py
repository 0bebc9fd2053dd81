"""`--abort-on-fail`: the gates, checked once a second over the last WINDOW_S seconds.

The gates judge a whole run when it ends; a k6 user also wants a run that has plainly failed
to stop early, not burn its hour. Each gate's rule over a window is part of its one definition
(esmeperf/verdict/gates.py): the round-trip p99 of the window's echoes (their histograms
merged), echoes over sends, sends per second, the generator's health over the window.

The window is judged only once the load has filled it, so the ramp-up is not a breach. A breach
of a target's gate says who it names (attribution.py): the target, unless the generator was
suspect over the same window; then no telling, as the target's own figures are not known live.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..measure import attribution
from ..measure.stats import Metrics
from ..verdict import gates
from ..verdict.gates import WINDOW_S

__all__ = ["WINDOW_S", "breach", "describe"]


def breach(metrics: Metrics, settings: Settings, last: int) -> dict[str, Any] | None:
    """The first gate the window of seconds (last - WINDOW_S, last] breaks, or None."""
    return gates.judge_window(gates.Window(metrics, last - WINDOW_S + 1, last, settings))


def describe(failed: dict[str, Any]) -> str:
    """One line for the log and the final line, with who the breach names."""
    text = (f"gate {failed['gate']} failed over the last {failed['window']}: measured "
            f"{failed['measured']} vs limit {failed['limit']}")
    reasons = "; ".join(failed.get("generator_reasons") or [])
    if failed.get("attribution") == attribution.UNDETERMINED:
        text += (f", while the generator was suspect ({reasons}): this may be its limit, not "
                 f"the target's; {attribution.REMEDY}")
    elif failed.get("attribution") == attribution.GENERATOR:
        text += f" ({reasons}): the generator's limit, not the target's; {attribution.REMEDY}"
    return text
