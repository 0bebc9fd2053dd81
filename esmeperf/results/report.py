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

from ..measure.names import LATENCIES, WITH_UNCONFIRMED
from ..verdict import words
from ..verdict.decide import decide

log = logging.getLogger("esmeperf")

# The summary's latency keys, in the order the table shows them (measure/names.py); a key not
# listed there (one a later version adds) is shown after these under its own name.
LATENCY_LABELS = {latency.key: latency.label for latency in (*LATENCIES, WITH_UNCONFIRMED)
                  if latency.key != "unconfirmed"}
WHOSE = {latency.key: latency.whose for latency in (*LATENCIES, WITH_UNCONFIRMED)}
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
    lines = [f"{'latency (ms)':<{_LABEL_WIDTH + 2}}{_cells(header, widths)}  whose time"]
    for (key, _), cells in zip(entries, rows, strict=True):
        label = LATENCY_LABELS.get(key, key.replace("_", " "))
        lines.append(f"  {label:<{_LABEL_WIDTH}}{_cells(cells, widths)}  {WHOSE.get(key, '')}"
                     .rstrip())
    return lines


def pacing_line(error: Mapping[str, Any] | None) -> list[str]:
    """The send-interval error as the embedded target's clock saw it (a ruler neither side
    controls), or nothing when the summary has none (a real ESME)."""
    if not isinstance(error, Mapping) or not error.get("count"):
        return []
    return [_line("send interval error",
                  f"|interval - smi| p50 {number(error.get('p50_ms'))}, p99 "
                  f"{number(error.get('p99_ms'))}, max {number(error.get('max_ms'))} ms over "
                  f"{error['count']} intervals (the target's clock)")]


def _line(label: str, text: str) -> str:
    return f"  {label:<{_LABEL_WIDTH}}  {text}"


def _totals(summary: Mapping[str, Any]) -> list[str]:
    created = number(summary.get("created_participants_count"))
    planned = summary.get("participants_planned")
    if (summary.get("settings") or {}).get("rest_only"):
        return ["totals", _line("participants", f"{created} created, each with its chat "
                                "request filed" + ("" if planned is None else
                                                   f" (of {number(planned)} planned)"))]
    ratio = summary.get("delivered_ratio")
    sent, missed = summary.get("messages_sent"), summary.get("messages_missed")
    achieved = summary.get("achieved_ratio")
    due = ""
    if isinstance(sent, int) and isinstance(missed, int) and missed:
        due = (f" of {sent + missed} due (achieved {words.ratio(achieved)}; {missed} slots "
               "skipped, each late by a whole interval)")
    intended = summary.get("intended_rate")
    return [
        "totals",
        _line("participants", f"{created} created"
              + ("" if planned is None else f" of {number(planned)} planned")),
        _line("chats", number(summary.get("chats_count"))),
        _line("messages sent", number(sent) + due),
        _line("delivered", number(summary.get("messages_delivered"))
              + ("" if ratio is None else f" (ratio {words.ratio(ratio)})")),
        _line("steady rate", f"{_rate(summary.get('steady_rate'))} messages/s"
              + ("" if intended is None or not missed else
                 f" (intended {_rate(intended)})")),
    ]


def _rate(value: Any) -> str:
    """A rate to a tenth (messages/s): `6964.3`, not `6964.333`."""
    return f"{value:.1f}" if isinstance(value, int | float) else number(value)


def _gates(gates: list[Mapping[str, Any]]) -> list[str]:
    lines = ["gates"]
    for gate in gates:
        verdict = "pass" if gate.get("passed") else "FAIL"
        what = f" ({gate['words']})" if gate.get("words") else ""
        lines.append(_line(str(gate.get("gate")), f"{verdict}  measured "
                           f"{words.measured(gate.get('measured'))}, limit "
                           f"{words.measured(gate.get('limit'))}{what}"))
    return lines


def _health(health: Mapping[str, Any], who: Mapping[str, Any] | None) -> list[str]:
    verdict = ("SUSPECT: the generator may have limited this run" if health.get("suspect")
               else "ok")
    lines = [f"{'generator health':<{_LABEL_WIDTH + 2}}  {verdict}",
             *(f"  - {reason}" for reason in health.get("reasons") or [])]
    if who and who.get("limited_by") not in (None, "none"):
        # A verdict from the health above is not said twice; an error's or a gate's is.
        source = who.get("source")
        why = ("the first error, above" if source == "error" else
               "its own limits (above), not the target's" if source == "health"
               and who["limited_by"] == "generator" else
               "the generator's limits (above) or the target's: no telling"
               if source == "health" else who.get("why"))
        lines.append(_line("limited by", f"{who['limited_by']}: {why}"))
        if who.get("remedy"):
            lines.append(_line("remedy", str(who["remedy"])))
    share = (who or {}).get("target_share_of_rtt_p99")
    if who and share is not None:
        lines.append(_line("target's share", f"its own handling p99 "
                           f"{number(who['target_handling_p99_ms'])} ms of a round-trip p99 of "
                           f"{number(who['message_rtt_p99_ms'])} ms ({words.share(share)})"))
    return lines


def _interval(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "?"


def run_title(summary: Mapping[str, Any]) -> str:
    """A run's PNG title: its intervals, how it ended, and SUSPECT when the generator was."""
    health = summary.get("generator_health")
    suspect = isinstance(health, Mapping) and health.get("suspect")
    return (f"{run_label(summary.get('settings') or {})}; ended by {summary.get('end_reason')}"
            + ("; generator SUSPECT" if suspect else ""))


def run_label(settings: Mapping[str, Any]) -> str:
    """The run's intervals as it used them: `sci 10 cpi 20 smi 100 ms`, or with --stages
    `sci 5 ms, stages 60s:5,20s:100,60s:5, smi 1000 ms` (a staged run has no -cpi)."""
    sci, smi = _interval(settings.get("sci_ms")), _interval(settings.get("smi_ms"))
    stages = settings.get("stages")
    plan = ",".join(f"{_interval(d)}s:{_interval(r)}" for d, r in stages or ())
    if settings.get("rest_only"):  # no chat is started, no message sent: -sci and -smi unused
        return "REST only, " + (f"stages {plan}" if stages else
                                f"cpi {_interval(settings.get('cpi_ms'))} ms")
    if stages:
        return f"sci {sci} ms, stages {plan}, smi {smi} ms"
    return f"sci {sci} cpi {_interval(settings.get('cpi_ms'))} smi {smi} ms"


def render(summary: Mapping[str, Any], paths: Mapping[str, Path | str]) -> str:
    """The summary as a few aligned sections: the run, latencies, totals, gates, the
    generator's health (when the summary has it) and the files written."""
    health = summary.get("generator_health")
    verdict = decide(summary) if "latency" in summary else None
    head = (f"esmeperf: {run_label(summary.get('settings') or {})}: ended by "
            f"{summary.get('end_reason')}, exit status {summary.get('exit_status')}")
    if verdict is not None:
        head += (f" ({verdict.words})"
                 + (", generator SUSPECT" if verdict.suspect else ""))
    sections = [[head]]
    error = summary.get("first_error")
    if error:
        sections[0].append(_line("first error", f"{error.get('thread')}: {error.get('message')}"))
    sections.append(_latency(summary.get("latency") or {})
                    + pacing_line(summary.get("send_interval_error")))
    sections.append(_totals(summary))
    if summary.get("gates"):
        sections.append(_gates(summary["gates"]))
    if isinstance(health, Mapping):
        sections.append(_health(health, summary.get("attribution")))
    if isinstance(summary.get("surge"), Mapping):
        sections.append(surge_table(summary["surge"]))
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


_PHASES = ("before", "during", "after")  # a cohort's arrival and a message's send, in order


def surge_table(surge: Mapping[str, Any]) -> list[str]:
    """The surge as text rows, for the report on stdout and the README: a line per cohort
    (when its participants arrived: how many, their time to chat), then a row per phase its
    messages were sent in. A cohort cannot send before it arrived: those rows are left out."""
    start, end = surge["window_s"]
    endured = {True: "yes", False: "NO", None: "n/a"}[surge["open_chats_endured"]]
    lines = [f"surge {start:g}-{end:g} s ({surge['source']}): open chats endured: {endured}",
             f"  {'':<18}{'sent':>8}{'delivered':>11}{'rtt p50':>10}{'rtt p99':>10}"
             f"{'late p99':>10}"]
    for cohort, figures in surge["cohorts"].items():
        chat = figures["time_to_chat"].get("p99_ms")
        lines.append(f"  arrived {cohort}: {figures.get('participants', '?')} participants"
                     + ("" if chat is None else f", time to chat p99 {_ms(chat)}"))
        for phase, cell in figures["phases"].items():
            if not cell["sent"] and _earlier(phase, cohort):
                continue
            ratio = cell["delivered_ratio"]
            lines.append(
                f"    {'sent ' + phase:<16}{cell['sent']:>8}"
                f"{words.ratio(ratio):>11}"
                f"{_ms(cell['rtt'].get('p50_ms')):>10}{_ms(cell['rtt'].get('p99_ms')):>10}"
                f"{_ms(cell['send_lateness'].get('p99_ms')):>10}")
    return lines


def _earlier(phase: str, cohort: str) -> bool:
    return phase in _PHASES and cohort in _PHASES and _PHASES.index(phase) < _PHASES.index(cohort)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"
