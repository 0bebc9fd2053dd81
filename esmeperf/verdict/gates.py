"""The gates, each defined once, as data (issue 39).

A `Gate` holds everything about one pass/fail threshold: the flag that sets its limit, how its
figure is read over the whole run (from the summary) and over a window of seconds (from the live
metrics, for --abort-on-fail), which side of the limit passes, and its words. The command line's
gate flags, the summary's `gates`, the sliding window's check, the table, the HTML report and the
final line all come from `GATES`: adding a gate is one entry here, plus its tests.

One rule for a figure that was not measured: over the whole run it fails the gate (nothing
measured is no pass), over a window it is not judged (a window without echoes yet).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..measure import attribution, health
from ..usage import positive_float
from . import words

if TYPE_CHECKING:
    from ..config import Settings
    from ..measure.stats import Metrics

WINDOW_S = 10  # --abort-on-fail's sliding window, in complete seconds

Measured = float | str | None


@dataclass(frozen=True)
class Window:
    """What a gate reads over the seconds first..last of a run still going."""

    metrics: Metrics
    first: int
    last: int
    settings: Settings

    def total(self, series: Any) -> int:
        by_second = series.snapshot()
        return sum(by_second.get(s, 0) for s in range(self.first, self.last + 1))

    def health(self) -> dict[str, Any]:
        return health.window(self.metrics, self.first, self.last, self.settings)


@dataclass(frozen=True)
class Gate:
    """One gate: its limit's key (in Settings.gates and the summary), its flag, and its rules."""

    key: str  # "max_p99_ms": the summary's `gate`, and the key of its limit unless `setting`
    flag: str  # "--max-p99"
    help: str
    words: str  # what it measures, for the outputs: "round-trip p99, ms"
    over_run: Callable[[Mapping[str, Any]], Measured]  # the figure, from the run's summary
    over_window: Callable[[Window], Measured]  # the figure, over a window of the live run
    passes: Callable[[Any, Any], bool]  # (measured, limit) -> passed
    metavar: str | None = None  # None: a switch, whose limit is True when given
    parse: Callable[[str], float] = float  # the limit from its flag's text (not a switch)
    names_generator: bool = False  # a failure is the generator's own (--fail-on-suspect)
    setting: str = ""  # the key of its limit in Settings.gates, where it is not `key`
    # It reads the round trip: over the run, a failure is judged as the round trip's tail is
    # (attribution.judge_latency) before it may name the target.
    reads_rtt: bool = False

    @property
    def switch(self) -> bool:
        return self.metavar is None

    @property
    def limit_key(self) -> str:
        return self.setting or self.key


def _ratio(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def _at_most(measured: Any, limit: Any) -> bool:
    return measured is not None and measured <= limit


def _at_least(measured: Any, limit: Any) -> bool:
    return measured is not None and measured >= limit


def _window_p99(w: Window) -> Measured:
    return w.metrics.message_rtt.window_summary(w.first, w.last).get("p99_ms")


def _window_delivered(w: Window) -> Measured:
    sent = w.total(w.metrics.sent)
    # A steady rate shifts both edges of the window by one round trip, so they cancel; a
    # target that stopped answering gives 0.
    return round(min(1.0, w.total(w.metrics.delivered) / sent), 6) if sent else None


def _run_suspect(summary: Mapping[str, Any]) -> Measured:
    return words.suspect_words(bool((summary.get("generator_health") or {}).get("suspect")))


GATES: list[Gate] = [
    Gate("max_p99_ms", "--max-p99", "message round-trip p99 must be at most MS",
         "round-trip p99, ms",
         over_run=lambda s: s["latency"]["message_rtt"].get("p99_ms"),
         over_window=_window_p99, passes=_at_most, metavar="MS", parse=positive_float,
         reads_rtt=True),
    Gate("min_delivered_ratio", "--min-delivered-ratio",
         "delivered/sent must be at least R (e.g. 0.99)", "delivered / sent",
         over_run=lambda s: s.get("delivered_ratio"), over_window=_window_delivered,
         passes=_at_least, metavar="R", parse=_ratio),
    Gate("min_rate", "--min-rate",
         "steady-state messages/s (second half of the run) at least N",
         "messages sent per second",
         over_run=lambda s: s.get("steady_rate"),
         over_window=lambda w: round(w.total(w.metrics.sent) / WINDOW_S, 3),
         passes=_at_least, metavar="N", parse=positive_float),
    Gate(attribution.GENERATOR_GATE, "--fail-on-suspect",
         "a run whose generator was suspect (generator_health: its CPU, lag, send or arrival "
         "lateness) fails: its latencies describe the generator as much as the target",
         "the generator's health",
         over_run=_run_suspect,
         over_window=lambda w: words.suspect_words(bool(w.health()["suspect"])),
         passes=lambda measured, _: measured == "ok", names_generator=True,
         setting="fail_on_suspect"),
]


def by_key(key: str) -> Gate:
    return next(gate for gate in GATES if gate.key == key)


@contextmanager
def added(gate: Gate) -> Iterator[Gate]:
    """A gate in force for a while (a test's own): GATES again as it was afterwards."""
    GATES.append(gate)
    try:
        yield gate
    finally:
        GATES.remove(gate)


def configured(limits: Mapping[str, Any]) -> list[tuple[Gate, Any]]:
    """The gates a run set, in GATES' order, each with its limit."""
    return [(gate, limits[gate.limit_key]) for gate in GATES
            if limits.get(gate.limit_key) is not None]


def _entry(gate: Gate, limit: Any, measured: Measured) -> dict[str, Any]:
    return {"gate": gate.key, "limit": "ok" if gate.switch else limit, "measured": measured,
            "passed": gate.passes(measured, limit), "words": gate.words}


def judge_run(limits: Mapping[str, Any], summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each gate the run set, judged over the whole run: its limit, its figure, whether it
    passed; a failed one also with who it names (measure/attribution.py), judged against the
    generator's health over the run."""
    gates = configured(limits)
    out = [_entry(gate, limit, gate.over_run(summary)) for gate, limit in gates]
    suspect = bool((summary.get("generator_health") or {}).get("suspect"))
    who = attribution.judge_suspect(suspect, target_share(summary))
    # With a healthy generator, a round trip whose tail was the generator's (or outside the
    # target's handling) is that, gate or no gate.
    latency = None if suspect else attribution.judge_latency(rtt_tail(summary),
                                                             target_handling_p99_ms(summary))
    for (gate, _), entry in zip(gates, out, strict=True):
        if entry["passed"]:
            continue
        entry["attribution"] = (attribution.GENERATOR if gate.names_generator else
                                latency.who if gate.reads_rtt and latency is not None else who)
    return out


def judge_window(window: Window) -> dict[str, Any] | None:
    """The first gate the window breaks, or None; with who it names: the target, unless the
    generator was suspect over the same window (then no telling: the target's own figures are
    not known live). A figure not measured in the window is not judged."""
    for gate, limit in configured(window.settings.gates):
        measured = gate.over_window(window)
        if measured is None or gate.passes(measured, limit):
            continue
        failed = _entry(gate, limit, measured)
        failed.update({"window": f"{WINDOW_S} s", "window_seconds": [window.first, window.last]})
        verdict = window.health()
        reasons = health.own_reasons(verdict)
        failed["attribution"] = (attribution.GENERATOR if gate.names_generator else
                                 attribution.judge_suspect(verdict["suspect"], None))
        if reasons:
            failed["generator_reasons"] = reasons
        return failed
    return None


def target_handling_p99_ms(summary: Mapping[str, Any]) -> float | None:
    """The embedded target's own frame handling p99 over the run (its /stats), in ms."""
    handling = (summary.get("target_stats") or {}).get("handling_us") or {}
    return handling["p99"] / 1000 if isinstance(handling.get("p99"), int | float) else None


def rtt_tail(summary: Mapping[str, Any]) -> attribution.Tail | None:
    """The summary's `rtt_tail` as attribution.judge_latency takes it."""
    tail = summary.get("rtt_tail")
    if not tail:
        return None
    return attribution.Tail(tail["rtt_p99_ms"], tail["samples"], tail["in_lagged_seconds"],
                            tail["lag_threshold_ms"])


def target_share(summary: Mapping[str, Any]) -> float | None:
    return attribution.target_share(target_handling_p99_ms(summary),
                                    summary["latency"]["message_rtt"].get("p99_ms"))
