"""One verdict from one run: its exit status and the words every output says it in (issue 39).

`decide(summary)` turns a run's figures (the summary, which every output reads) into a
`Verdict`: the exit status, what it means, what ended the run, the gates that failed, a signal
held while the files were written, the generator's health and who limited the run. The summary
file, the table, the final line, the HTML report, the live endpoint, a sweep, a capacity search
and compare all take it from here; nothing else sets an exit status from a run's end.

    status:  the first error -> 1; a signal -> 130; --abort-on-fail -> 3; a gate failed over
             the run -> 3 (an end that was otherwise as planned); a signal held while the
             results were written -> 130 (the files are whole, the job was asked to stop).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..measure import attribution
from ..measure.health import own_reasons
from ..status import ExitStatus
from . import gates, words


@dataclass(frozen=True)
class Verdict:
    """How a run ended and what that means, once for every output."""

    status: int
    words: str  # what the status means
    ended: str  # what ended the run, in words
    failed: tuple[Mapping[str, Any], ...] = ()  # the gates that failed
    suspect: bool = False  # the generator's health
    limited_by: str = "none"
    held: str | None = None  # a signal held while the results were written

    def as_dict(self) -> dict[str, Any]:
        """The summary's `verdict`: what the outputs read back."""
        return {"exit_status": self.status, "words": self.words, "ended": self.ended,
                "failed_gates": [g["gate"] for g in self.failed],
                "generator": words.suspect_words(self.suspect),
                "limited_by": self.limited_by, "held_signal": self.held}


def end_status(end_reason: str | None, first_error: Any) -> ExitStatus:
    """The exit status the end alone implies (before the gates over the whole run)."""
    reason = str(end_reason or "").split(maxsplit=1)
    if first_error:
        return ExitStatus.ERROR
    if reason and reason[0] == "signal":
        return ExitStatus.INTERRUPTED
    if reason and reason[0] == "gate":
        return ExitStatus.THRESHOLD
    return ExitStatus.OK


def decide(summary: Mapping[str, Any], held: str | None = None) -> Verdict:
    """The run's verdict from its summary (`held`: a signal that came while its files were
    written; by default the one the summary recorded)."""
    if held is None:
        held = (summary.get("verdict") or {}).get("held_signal")
    status = end_status(summary.get("end_reason"), summary.get("first_error"))
    failed = tuple(g for g in summary.get("gates") or () if not g.get("passed"))
    if status == ExitStatus.OK and failed:
        status = ExitStatus.THRESHOLD
    if held:
        status = ExitStatus.INTERRUPTED
    health = summary.get("generator_health") or {}
    who = summary.get("attribution") or {}
    ended = words.ended_words(summary.get("end_reason"), summary.get("settings"))
    if held:
        ended += f"; {held}: {words.HELD}"
    return Verdict(status=int(status), words=words.status_words(int(status)), ended=ended,
                   failed=failed, suspect=bool(health.get("suspect")),
                   limited_by=str(who.get("limited_by") or "none"), held=held)


def worst(statuses: Iterable[int]) -> int:
    """Several runs' status (a sweep's): the most serious of theirs."""
    order = (ExitStatus.INTERRUPTED, ExitStatus.USAGE, ExitStatus.ERROR, ExitStatus.THRESHOLD)
    seen = set(statuses)
    return next((int(s) for s in order if s in seen), int(ExitStatus.OK))


def decide_search(capacity: Mapping[str, Any]) -> Verdict:
    """A capacity search's verdict: interrupted when a step was cut short by a signal, else OK
    (a search that ran to its end, with a knee or without); limited by what its steps found."""
    status = (ExitStatus.INTERRUPTED if any(step.get("exit_status") == ExitStatus.INTERRUPTED
                                            for step in capacity.get("steps") or ())
              else ExitStatus.OK)
    return Verdict(status=int(status), words=words.status_words(int(status)),
                   ended=words.END_WORDS["capacity"],
                   limited_by=str(capacity.get("limited_by") or "none"))


# -- who limited the run ----------------------------------------------------------------------


def attribute(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's `attribution`: who limited the run, when a verdict names someone.

    The first error's own attribution (a stall, a timeout), else a failed gate's, else, when
    the generator was suspect, the generator's or no telling (its latencies describe it); else
    the round trip's own (attribution.judge_latency); `none` when the generator was healthy and
    no verdict named anyone. With the embedded target, its own frame handling p99 beside the
    round trip's says how much of it was its.
    """
    share = gates.target_share(summary)
    handling = gates.target_handling_p99_ms(summary)
    error = summary.get("first_error") or {}
    failed = [g for g in summary.get("gates") or () if not g["passed"] and g.get("attribution")]
    health = summary["generator_health"]
    if error.get("attribution"):
        source, limited_by = "error", error["attribution"]
        why = f"{error['thread']}: {error['message']}"
    elif failed:
        gate = failed[0]
        source, limited_by = "gate", gate["attribution"]
        why = (f"gate {gate['gate']} failed (measured {words.measured(gate['measured'])}, "
               f"limit {words.measured(gate['limit'])})")
    elif health["suspect"]:
        source, limited_by = "health", attribution.judge_suspect(True, share)
        why = "the generator was suspect: " + "; ".join(own_reasons(health))
    elif (latency := attribution.judge_latency(gates.rtt_tail(summary), handling)) is not None:
        source, limited_by, why = "latency", latency.who, latency.text
    else:
        source, limited_by = "none", "none"
        why = "the generator was healthy and no verdict named the target"
    if limited_by == attribution.GENERATOR and share is not None and not error \
            and source != "latency":
        why += (f"; the target's own handling p99 was {words.share(share)} of the round "
                "trip's, the rest was the generator's queueing")
    return {
        "limited_by": limited_by,
        "source": source,  # what the verdict comes from: error, gate, health, latency or none
        "why": why,
        "remedy": attribution.REMEDY if limited_by in (attribution.GENERATOR,
                                                       attribution.UNDETERMINED) else None,
        "message_rtt_p99_ms": summary["latency"]["message_rtt"].get("p99_ms"),
        "target_handling_p99_ms": handling,
        "target_share_of_rtt_p99": share,
    }


# -- the final lines ----------------------------------------------------------------------------


def final_line(summary: Mapping[str, Any], verdict: Verdict | None = None) -> str:
    """The one line every run ends with: what ran, what failed, and who limited it."""
    verdict = verdict or decide(summary)
    rtt = summary["latency"]["message_rtt"]
    p99 = f", rtt p99 {words.ms(rtt['p99_ms'])}" if rtt.get("count") else ""
    ratio = summary["delivered_ratio"]
    sent, missed = summary["messages_sent"], summary.get("messages_missed") or 0
    achieved = summary.get("achieved_ratio")
    due = (f" of {sent + missed} due ({words.ratio(achieved)})"
           if achieved is not None and achieved < attribution.ACHIEVED_WARN else "")
    text = (f"esmeperf: ended by {summary['end_reason']}: "
            f"{summary['created_participants_count']} participants, "
            f"{summary['chats_count']} chats, {sent} sent{due}, "
            f"{summary['messages_delivered']} delivered"
            + (f" ({words.ratio(ratio)})" if ratio is not None else "") + p99)
    error = summary["first_error"]
    if error:
        text += f"; error: {error['thread']}: {error['message']}"
    for gate in verdict.failed:
        text += (f"; gate {gate['gate']} failed: {words.measured(gate['measured'])} vs "
                 f"{words.measured(gate['limit'])}")
    who = summary.get("attribution") or {}
    limited = who.get("limited_by")
    if limited in (attribution.GENERATOR, attribution.UNDETERMINED) \
            and who.get("source") == "latency":
        # A healthy generator whose latency figures are still not the target's (issue 37).
        text += ("; rtt limited by the generator, not the target"
                 if limited == attribution.GENERATOR else
                 "; rtt mostly outside the target's own handling: not the target's alone")
    elif limited in (attribution.GENERATOR, attribution.UNDETERMINED) \
            and not (error and error.get("attribution")):
        # A judged error says it in its own words; anything else gets the verdict here.
        text += ("; generator SUSPECT: " + ("the generator limited this run, not the target"
                                            if limited == attribution.GENERATOR else
                                            "these figures may describe it, not the target")
                 + f": {attribution.REMEDY}")
    if verdict.held:
        text += f"; {verdict.held} came while the results were written: exit {verdict.status}"
    return text


def search_words(capacity: Mapping[str, Any]) -> str:
    """What a capacity search found and who limited it: the words of its table's first line,
    its page's headline and its final line."""
    limited_by = capacity.get("limited_by")
    best = capacity.get("highest_passing_chats")
    passing = (f"{best} chats, {words.rate(capacity.get('highest_passing_rate'))} "
               "messages/s" if best else "")
    if limited_by == attribution.TARGET and capacity.get("knee_chats"):
        return (f"knee {capacity['knee_chats']} chats, "
                f"{words.rate(capacity.get('knee_rate'))} messages/s; limited by the target")
    if limited_by == attribution.TARGET:
        return "no knee named; limited by the target: it failed the first step"
    if limited_by == attribution.GENERATOR:
        return ("no knee named; limited by the generator, not the target"
                + (f"; the highest step that passed held {passing}" if best else ""))
    return ((f"at least {passing} (a lower bound, not a knee)" if best
             else "nothing measured")
            + "; limited by none: no step failed before the search ended")


def search_line(capacity: Mapping[str, Any], verdict: Verdict) -> str:
    """The line a capacity search ends with, as a run ends with final_line()."""
    steps = capacity.get("steps") or []
    text = f"esmeperf: capacity search ended after {len(steps)} step(s): {search_words(capacity)}"
    if capacity.get("limited_by") in (attribution.GENERATOR, attribution.UNDETERMINED):
        text += f": {attribution.REMEDY}"
    if verdict.status != ExitStatus.OK:
        text += f"; exit {verdict.status}: {verdict.words}"
    return text
