"""Go's text formats for durations and times, as ESME's Go test writes them."""

from __future__ import annotations

from datetime import UTC, datetime

_NS_PER_S = 1_000_000_000


def _fraction(value: int, digits: int) -> str:
    """`value` scaled down by 10**digits, trailing zeros dropped, as Go's fmtFrac does."""
    whole, frac = divmod(value, 10**digits)
    if not frac:
        return str(whole)
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def duration(ns: int) -> str:
    """Format nanoseconds like Go's time.Duration.String(): "100ms", "2m24.871s", "1h0m0s"."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000:
        text = f"{ns}ns"
    elif ns < 1_000_000:
        text = _fraction(ns, 3) + "µs"
    elif ns < _NS_PER_S:
        text = _fraction(ns, 6) + "ms"
    else:
        seconds, frac = divmod(ns, _NS_PER_S)
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        text = _fraction(secs * _NS_PER_S + frac, 9) + "s"
        if hours or minutes:
            text = f"{minutes}m" + text
        if hours:
            text = f"{hours}h" + text
    return sign + text


def ms_duration(ms: float) -> str:
    """Format a number of milliseconds as a Go duration string."""
    return duration(round(ms * 1_000_000))


def rfc3339nano(ns: int) -> str:
    """Format Unix nanoseconds like Go's time.RFC3339Nano in the local zone ("Z" for UTC)."""
    seconds, frac = divmod(ns, _NS_PER_S)
    local = datetime.fromtimestamp(seconds, UTC).astimezone()
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    offset = local.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    if minutes == 0:
        return text + "Z"
    sign = "+" if minutes > 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{mins:02d}"

