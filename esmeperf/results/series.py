"""The per-second series CSV: esmeperf's own file, one row per Unix second of a run.

Every column of a row is about that one second: the counts (sent ... missed) are the events of
that second; the gauges (participants, chats, connections) are their values at its end;
load_fraction is the share of the second inside the load (participants' start to the stop).
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import os
from typing import TYPE_CHECKING, Any

from ..measure.health import generator_cores
from ..measure.names import Count
from ..measure.schedule import planned

if TYPE_CHECKING:
    from ..engine.run import Outcome

SERIES_COLUMNS = (
    "second", "participants", "chats", "sent", "delivered", "organizer_received", "errors",
    "missed", "connections", "rtt_p50_ms", "rtt_p99_ms", "lateness_p99_ms", "load_fraction",
    "arrival_lateness_p99_ms", "generator_cpu", "target_cpu", "arrivals", "arrivals_intended",
    "rtt_from_intended_p99_ms", "generator_lag_p99_ms", "target_handling_p99_ms",
)
_WHOLE_COLUMNS = frozenset(SERIES_COLUMNS[:9])  # second ... connections: whole numbers
_REQUIRED_COLUMNS = ("second", "sent")  # never empty (the Go test's rates have only these)
_NS = 1_000_000_000

Gauges = tuple[int, int, int | str]  # participants, chats, connections ("" when unknown)


def series_rows(result: Outcome) -> list[dict[str, Any]]:
    """One row per second from start to stop, zero-filled; every column about that second."""
    m = result.ctx.metrics
    sent, delivered = result.sent, m.delivered.snapshot()
    received, errors, missed = (m.organizer_received.snapshot(), m.errors.snapshot(),
                                m.missed.snapshot())
    first = result.started_ns // _NS
    last = max([result.stopped_ns // _NS, *sent, *delivered, *received])
    load = (result.participants_started_ns, result.stopped_ns)
    read = readings(result)
    gen_cpu, target_cpu = m.generator_cpu_ms.snapshot(), m.target_cpu_ms.snapshot()
    cores = generator_cores(result.settings.processes)
    arrivals, intended = m.arrivals.snapshot(), intended_arrivals(result)
    handling = result.target_handling
    rows = []
    for second in range(first, last + 1):
        participants, chats, connections = gauges_at_end(read, second)
        rows.append({
            "second": second,
            "participants": participants,
            "chats": chats,
            "sent": sent.get(second, 0),
            "delivered": delivered.get(second, 0),
            "organizer_received": received.get(second, 0),
            "errors": errors.get(second, 0),
            "missed": missed.get(second, 0),
            "connections": connections,
            "rtt_p50_ms": _blank(m.message_rtt.second_percentile_ms(second, 50)),
            "rtt_p99_ms": _blank(m.message_rtt.second_percentile_ms(second, 99)),
            "lateness_p99_ms": _blank(m.send_lateness.second_percentile_ms(second, 99)),
            "load_fraction": _overlap(second, *load),
            "arrival_lateness_p99_ms": _blank(m.arrival_lateness.second_percentile_ms(second,
                                                                                     99)),
            # Shares of the CPU each can use: a core per generator process, the target's one.
            "generator_cpu": _share(gen_cpu.get(second), 1000 * cores),
            "target_cpu": _share(target_cpu.get(second), 1000),
            # Sign-up requests sent in the second, and the arrivals the schedule asked for.
            "arrivals": arrivals.get(second, 0),
            "arrivals_intended": intended.get(second, 0),
            # What participants lived through, from each message's due time (stats.py).
            "rtt_from_intended_p99_ms": _blank(m.message_rtt_from_intended.second_percentile_ms(
                second, 99)),
            "generator_lag_p99_ms": _blank(m.generator_lag.second_percentile_ms(second, 99)),
            # The embedded target's own handling of the frames of the second (its /stats).
            "target_handling_p99_ms": _blank(
                handling[second]["p99_us"] / 1000 if second in handling else None),
        })
    return rows


def intended_arrivals(result: Outcome) -> dict[int, int]:
    """Arrivals the schedule (-cpi's grid or --stages) asked for in each Unix second, from the
    participants' start to the stop, within --max-participants."""
    origin, stop = result.participants_started_ns / _NS, result.stopped_ns / _NS

    def by(t: float) -> int:
        return planned(result.settings, min(t, stop) - origin)

    return {second: by(second + 1) - by(second)
            for second in range(int(origin), int(stop) + 1)}


def _share(ms: int | None, capacity_ms: float) -> float | str:
    return "" if ms is None else round(ms / capacity_ms, 3)


Reading = tuple[float, int, int, int]  # Unix time, participants, chats, connections


def readings(result: Outcome) -> list[Reading]:
    """(Unix time, participants, chats, connections) as the main thread read them.

    It reads once a second from the participants' start (run.py's tick), so the reading keyed
    second K was taken at K + the start's fraction of a second (the last one at the stop, at
    the latest). Nothing exists at the start; the final counts hold at the stop.
    """
    start, stop = result.participants_started_ns / _NS, result.stopped_ns / _NS
    phase = start % 1
    out: list[Reading] = [(start, 0, 0, 0)]
    for key in sorted(result.samples):
        when = min(key + phase, stop)
        if when > out[-1][0]:
            sample = result.samples[key]
            out.append((when, sample.participants, sample.chats, sample.connections))
    counts = result.ctx.metrics.counts()
    final = counts.get(Count.CREATED_PARTICIPANTS, 0), counts.get(Count.CHATS, 0)
    if stop > out[-1][0]:
        out.append((stop, *final, out[-1][3]))
    else:  # read at the stop itself: a sign-up or chat under way then has finished since
        when, participants, chats, connections = out[-1]
        out[-1] = (when, max(participants, final[0]), max(chats, final[1]), connections)
    return out


def gauges_at_end(readings: list[Reading], second: int) -> Gauges:
    """(participants, chats, connections) at the end of `second`, interpolated between the
    readings on either side of it (at most a second apart). Participants and chats are
    rounded up: they arrive one by one from the start, so a second that saw a message saw
    its sender. After the stop the final counts stand and connections are unknown ("")."""
    end = float(second + 1)
    if end <= readings[0][0]:
        return 0, 0, 0
    if end >= readings[-1][0]:
        return readings[-1][1], readings[-1][2], ""
    index = bisect.bisect_right(readings, end, key=lambda r: r[0])
    (t0, *before), (t1, *after) = readings[index - 1], readings[index]
    share = (end - t0) / (t1 - t0)
    people, chats, connections = (a + (b - a) * share for a, b in zip(before, after, strict=True))
    return math.ceil(people), math.ceil(chats), round(connections)


def _overlap(second: int, start_ns: int, stop_ns: int) -> float:
    """The share of `second` inside [start_ns, stop_ns), rounded to 0.001."""
    begin, end = second * _NS, (second + 1) * _NS
    inside = max(0, min(end, stop_ns) - max(begin, start_ns))
    return round(inside / _NS, 3)


def _blank(value: float | None) -> str | float:
    return "" if value is None else value


def csv_text(rows: list[dict[str, Any]]) -> str:
    """The CSV file's text: a header, then one line per row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SERIES_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_series(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a series CSV back into rows (values as strings, `second` as int).

    Raises ValueError, naming the line, for a file that is not a series: no `second` or `sent`
    column, or a value of a known column that is not a number. Files of older versions, with
    fewer columns, read as they are.
    """
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"not a series CSV (no {' or '.join(missing)} column)")
        rows = list(reader)
    for line, row in enumerate(rows, 2):
        for column in SERIES_COLUMNS:
            value = row.get(column)
            if value is None or value == "" and column not in _REQUIRED_COLUMNS:
                continue  # an older file without the column, or a second without latencies
            whole = column in _WHOLE_COLUMNS
            try:
                (int if whole else float)(value)
            except ValueError:
                kind = "a whole number" if whole else "a number"
                raise ValueError(f"line {line}: {column} {value!r} is not {kind}") from None
        row["second"] = int(row["second"])
    return rows
