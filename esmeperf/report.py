"""The end-of-run summary on stdout (as k6's end-of-test summary): `render()` builds it from the
summary dict alone, so every number in it is the summary JSON's own; `show()` prints it."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger("esmeperf")

# The summary's latency keys, in the order the table shows them; a key not listed here (one a
# later version adds) is shown after these under its own name.
LATENCY_LABELS = {
    "message_rtt": "round trip",
    "send_lateness": "send lateness",
    "arrival_lateness": "arrival lateness",
    "sign_up": "sign-up",
    "chat_request": "chat request",
    "ws_handshake": "handshake",
    "arrival_to_chat": "arrival to chat",
    "organizer_reply": "organizer reply",
    "message_rtt_with_unconfirmed": "rtt + unconfirmed",
}
LATENCY_COLUMNS = ("count", "p50_ms", "p90_ms", "p99_ms", "max_ms")
_LABEL_WIDTH = 20


def number(value: Any) -> str:
    """A value as the summary JSON writes it ("-" when missing), so the two read the same."""
    return "-" if value is None else json.dumps(value)


def _cells(cells: list[str], widths: list[int]) -> str:
    return "".join(f"  {c:>{w}}" for c, w in zip(cells, widths, strict=True))


def _latency(latency: Mapping[str, Any]) -> list[str]:
    """One row per latency measured; the round trip always, since it is the run's headline."""
    keys = [k for k in LATENCY_LABELS if k in latency]
    keys += [k for k in latency if k not in LATENCY_LABELS]
    entries = [(k, latency[k]) for k in keys if isinstance(latency[k], Mapping)
               and (latency[k].get("count") or k == "message_rtt")]
    header = ["count", "p50", "p90", "p99", "max"]
    rows = [[number(entry.get(c)) if entry.get("count") else ("0" if c == "count" else "-")
             for c in LATENCY_COLUMNS] for _, entry in entries]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"{'latency (ms)':<{_LABEL_WIDTH + 2}}{_cells(header, widths)}"]
    for (key, _), cells in zip(entries, rows, strict=True):
        label = LATENCY_LABELS.get(key, key.replace("_", " "))
        lines.append(f"  {label:<{_LABEL_WIDTH}}{_cells(cells, widths)}")
    return lines


def _line(label: str, text: str) -> str:
    return f"  {label:<{_LABEL_WIDTH}}  {text}"


def _totals(summary: Mapping[str, Any]) -> list[str]:
    created = number(summary.get("created_participants_count"))
    planned = summary.get("participants_planned")
    ratio = summary.get("delivered_ratio")
    return [
        "totals",
        _line("participants", f"{created} created"
              + ("" if planned is None else f" of {number(planned)} planned")),
        _line("chats", number(summary.get("chats_count"))),
        _line("messages sent", number(summary.get("messages_sent"))),
        _line("delivered", number(summary.get("messages_delivered"))
              + ("" if ratio is None else f" (ratio {number(ratio)})")),
        _line("steady rate", f"{number(summary.get('steady_rate'))} messages/s"),
    ]


def _gates(gates: list[Mapping[str, Any]]) -> list[str]:
    lines = ["gates"]
    for gate in gates:
        verdict = "pass" if gate.get("passed") else "FAIL"
        lines.append(_line(str(gate.get("gate")), f"{verdict}  measured "
                           f"{number(gate.get('measured'))}, limit {number(gate.get('limit'))}"))
    return lines


def _health(health: Mapping[str, Any]) -> list[str]:
    verdict = ("SUSPECT: the generator may have limited this run" if health.get("suspect")
               else "ok")
    return [f"{'generator health':<{_LABEL_WIDTH + 2}}  {verdict}",
            *(f"  - {reason}" for reason in health.get("reasons") or [])]


def _interval(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "?"


def render(summary: Mapping[str, Any], paths: Mapping[str, Path | str]) -> str:
    """The summary as a few aligned sections: the run, latencies, totals, gates, the
    generator's health (when the summary has it) and the files written."""
    settings = summary.get("settings") or {}
    intervals = " ".join(f"{name} {_interval(settings.get(f'{name}_ms'))}"
                         for name in ("sci", "cpi", "smi"))
    head = (f"esmeperf: {intervals} ms: ended by {summary.get('end_reason')}, "
            f"exit status {summary.get('exit_status')}")
    sections = [[head]]
    error = summary.get("first_error")
    if error:
        sections[0].append(_line("first error", f"{error.get('thread')}: {error.get('message')}"))
    sections.append(_latency(summary.get("latency") or {}))
    sections.append(_totals(summary))
    if summary.get("gates"):
        sections.append(_gates(summary["gates"]))
    if isinstance(summary.get("generator_health"), Mapping):
        sections.append(_health(summary["generator_health"]))
    if isinstance(summary.get("surge"), Mapping):
        from .surge import table

        sections.append(table(summary["surge"]))
    if paths:
        sections.append(["files", *(_line(kind.replace("_", " "), str(path))
                                    for kind, path in paths.items())])
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def show(summary: Mapping[str, Any], paths: Mapping[str, Path | str],
         stream: TextIO | None = None) -> None:
    """Print the summary on stdout; a reader that went away (`| head`) costs a warning only."""
    stream = stream or sys.stdout
    try:
        stream.write(render(summary, paths))
        stream.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null: the interpreter's own last flush would fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
        log.warning("warning: stdout was closed; the summary is in the files")
