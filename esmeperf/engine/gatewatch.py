"""`--abort-on-fail`: the gates, checked once a second over the last WINDOW_S seconds.

The end-of-run gates (results.check_gates) judge a whole run; a k6 user also wants a run that
has plainly failed to stop early, not burn its hour. Over a sliding window of complete seconds:

- `--max-p99`: the round-trip p99 of the messages echoed in the window (their histograms
  merged, not a mean of per-second p99s);
- `--min-delivered-ratio`: echoes over sends in the window (a steady rate shifts both edges by
  one round trip, so they cancel; a target that stopped answering gives 0);
- `--min-rate`: messages sent per second in the window;
- `--fail-on-suspect`: the generator's health (health.py) over the window.

The window is judged only once the load has filled it, so the ramp-up is not a breach. A breach
of a target's gate says who it names (attribution.py): the target, unless the generator was
suspect over the same window; then no telling, as the target's own figures are not known live.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..measure import attribution, health
from ..measure.stats import Metrics

WINDOW_S = 10


def breach(metrics: Metrics, settings: Settings, last: int) -> dict[str, Any] | None:
    """The first gate the window of seconds (last - WINDOW_S, last] breaks, or None."""
    first = last - WINDOW_S + 1
    failed = _breach(metrics, settings, first, last)
    if failed is None:
        return None
    verdict = health.window(metrics, first, last, settings)
    reasons = [r for r in verdict["reasons"] if not r.startswith("target-bound")]
    if failed["gate"] == attribution.GENERATOR_GATE:
        failed["attribution"] = attribution.GENERATOR
    else:
        failed["attribution"] = attribution.judge_suspect(verdict["suspect"], None)
    if reasons:
        failed["generator_reasons"] = reasons
    return failed


def _breach(metrics: Metrics, settings: Settings, first: int,
            last: int) -> dict[str, Any] | None:
    gates = settings.gates
    window = [first, last]
    sent_by_second = metrics.sent.snapshot()
    sent = sum(sent_by_second.get(s, 0) for s in range(first, last + 1))
    if gates.min_rate is not None and sent / WINDOW_S < gates.min_rate:
        return _failed("min_rate", gates.min_rate, round(sent / WINDOW_S, 3), window)
    if gates.min_delivered_ratio is not None and sent:
        delivered_by_second = metrics.delivered.snapshot()
        delivered = sum(delivered_by_second.get(s, 0) for s in range(first, last + 1))
        ratio = round(min(1.0, delivered / sent), 6)
        if ratio < gates.min_delivered_ratio:
            return _failed("min_delivered_ratio", gates.min_delivered_ratio, ratio, window)
    if gates.max_p99_ms is not None:
        p99 = metrics.message_rtt.window_summary(first, last).get("p99_ms")
        if p99 is not None and p99 > gates.max_p99_ms:
            return _failed("max_p99_ms", gates.max_p99_ms, p99, window)
    if gates.fail_on_suspect and health.window(metrics, first, last, settings)["suspect"]:
        return _failed(attribution.GENERATOR_GATE, "ok", "SUSPECT", window)
    return None


def _failed(gate: str, limit: float | str, measured: float | str,
            window: list[int]) -> dict[str, Any]:
    return {"gate": gate, "limit": limit, "measured": measured, "passed": False,
            "window": f"{WINDOW_S} s", "window_seconds": window}


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
