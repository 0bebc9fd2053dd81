"""The words every output says a verdict in, and the one format of each kind of number.

The table, the final line, the HTML report, compare, the capacity search and the live endpoint
take their words from here, so they cannot disagree. A status's words are the first clause of
its meaning in esmeperf/status.py (the text --help and the man pages give in full): one source.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..status import MEANINGS

# How a run ended, by its end reason's first word (the summary's `end_reason`).
END_WORDS = {
    "duration": "it ran for its --duration",
    "stages": "it ran its --stages to their end",
    "error": "the first error in a worker stopped it",
    "stall": "a request went unanswered past --stall-timeout (its first error)",
    "gate": "--abort-on-fail stopped it: a gate failed over the last 10 s",
    "signal": "a signal stopped it",
    "parent": "the run that owned it stopped it",
    "capacity": "the capacity search ended",
}
HELD = "a signal came while the results were written (they are whole)"


def status_words(status: int | None, command: str = "esmeperf") -> str:
    """What an exit status means, in a few words: its meaning's first clause."""
    for code, meaning in MEANINGS[command]:
        if code == status:
            plain = meaning.replace("`", "")
            return re.split(r"[;:(]", plain, maxsplit=1)[0].strip().rstrip(",")
    return "" if status is None else f"exit status {status}"


def ended_words(end_reason: str | None, settings: Mapping[str, Any] | None = None) -> str:
    """Why the run ended, in words: `it ran for its --duration (30 s)`, or for a --stages run
    without --duration, `it ran its --stages to their end (25 s)`."""
    reason = str(end_reason or "")
    first = reason.split()[0] if reason else ""
    settings = settings or {}
    duration = settings.get("duration_s")
    if first == "duration" and settings.get("duration_source") == "--stages":
        first = "stages"
    words = END_WORDS.get(first, reason)
    if first in ("duration", "stages") and isinstance(duration, int | float):
        words += f" ({duration:g} s)"
    if first == "signal" and reason != first:
        words += f" ({reason.split(maxsplit=1)[1]})"
    return words


def ratio(value: Any) -> str:
    """A ratio (delivered, achieved): four decimals everywhere (`1.0000`, `0.9871`), and six
    where four would round a shortfall up to `1.0000` (`0.999962`); `-` when missing."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return "-"
    text = f"{value:.4f}"
    return f"{value:.6f}" if text == "1.0000" and value < 1 else text


def ms(value: Any) -> str:
    """Milliseconds as the summary has them: `1.62 ms`; `-` when missing."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:g} ms"


def rate(value: Any) -> str:
    """Messages per second: `400`, `6964.3`; `-` when missing."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{round(value, 1):g}"


def share(fraction: float) -> str:
    """A share as a percentage with the digits it needs: 42.0 %, 1.7 %, 0.015 %."""
    pct = fraction * 100
    return f"{pct:.1f} %" if pct >= 1 else f"{pct:.2g} %"


def measured(value: Any) -> str:
    """A gate's limit or measured figure as the summary JSON writes it (`3.75`, `10.0`), a
    word (`SUSPECT`) as it is; `-` when missing."""
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def suspect_words(suspect: bool) -> str:
    """The generator's health in a word or two, the same in every output."""
    return "SUSPECT" if suspect else "ok"
