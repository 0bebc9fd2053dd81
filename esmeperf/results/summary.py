"""The result files: the Go test's two JSON files (same names and shapes) plus our series CSV
(esmeperf/results/series.py)."""

from __future__ import annotations

import itertools
import json
import os
import platform
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..measure import attribution, health
from ..measure.names import Count
from ..measure.schedule import planned, shortest_interval_ms
from ..system import platform_support
from ..verdict import decide, gates
from . import gofmt
from .series import SERIES_COLUMNS, csv_text, read_series, series_rows  # noqa: F401 re-export

if TYPE_CHECKING:
    from ..engine.run import Outcome

SUMMARY_SUFFIX = "_performance_test_summary.json"
RATES_SUFFIX = "_performance_test_message_rates.json"
SERIES_SUFFIX = "_performance_test_series.csv"
PLOT_SUFFIX = "_performance_test_rates.png"
HLOG_SUFFIX = "_performance_test_latency.hlog"
REPORT_SUFFIX = "_performance_test_report.html"


def report_beside(summary_path: Path) -> Path:
    """The HTML report's path beside a run's summary file."""
    return summary_path.with_name(summary_path.name.replace(SUMMARY_SUFFIX, REPORT_SUFFIX))


def steady_rate(rates: dict[int, int]) -> float:
    """Mean messages/s over the second half of the run's whole seconds (the ramp excluded)."""
    if len(rates) < 3:
        return 0.0
    seconds = list(range(min(rates) + 1, max(rates)))  # first and last second are partial
    half = seconds[len(seconds) // 2:]
    return sum(rates.get(s, 0) for s in half) / len(half) if half else 0.0


def rtt_tail(result: Outcome, rtt_p99_ms: float | None) -> dict[str, Any] | None:
    """The summary's `rtt_tail`: the round-trip samples at or above the run's p99, and how many
    came in seconds in which the generator's lag p99 reached attribution.lag_threshold_ms."""
    if not rtt_p99_ms:
        return None
    m = result.ctx.metrics
    above = m.message_rtt.counts_at_or_above(max(1, int(rtt_p99_ms * 1000)))
    threshold = attribution.lag_threshold_ms(rtt_p99_ms)
    lagged = {second for second in above
              if (m.generator_lag.second_percentile_ms(second, 99) or 0.0) >= threshold}
    return {"rtt_p99_ms": rtt_p99_ms, "samples": sum(above.values()),
            "in_lagged_seconds": sum(above[second] for second in lagged),
            "lag_threshold_ms": threshold, "seconds": len(above), "lagged_seconds": len(lagged)}


def send_interval_error(result: Outcome) -> dict[str, Any] | None:
    """The summary's `send_interval_error`: |interval - smi| between successive messages of
    each participant, as the embedded target's clock saw them arrive (its /stats), in ms."""
    stats = result.target_stats or {}
    error = stats.get("send_interval_error_us")
    if not isinstance(error, dict) or not error.get("count"):
        return None
    return {"ruler": "target", "smi_ms": stats.get("send_interval_ms"),
            "count": error["count"],
            **{f"{key}_ms": error[key] / 1000 for key in ("p50", "p99", "max")}}


def honesty_warnings(summary: dict[str, Any]) -> list[str]:
    """What the headline must not leave out: a suspect generator, sends it could not make."""
    out = []
    health_ = summary["generator_health"]
    if health_["suspect"]:
        reasons = health.own_reasons(health_)
        out.append(f"the generator was SUSPECT ({'; '.join(reasons)}): its latencies describe "
                   f"it as much as the target; {attribution.REMEDY}")
    ratio = summary.get("achieved_ratio")
    if ratio is not None and ratio < attribution.ACHIEVED_WARN:
        out.append(f"participants skipped {summary['messages_missed']} of "
                   f"{summary['messages_missed'] + summary['messages_sent']} send slots "
                   f"(achieved {ratio:.0%} of the intended rate): each was late by a whole -smi "
                   "interval")
    return out


def build_summary(result: Outcome, held: str | None = None) -> dict[str, Any]:
    """The summary: the Go test's keys first, in its order and formats, then ours, and the
    verdict (`held`: a signal that came while the run's files were being written)."""
    s, m = result.settings, result.ctx.metrics
    counts = m.counts()
    rates = result.sent
    sent = sum(rates.values())
    delivered = m.delivered.total()
    summary: dict[str, Any] = {
        "constants": {
            "start_chat_interval": gofmt.ms_duration(s.sci),
            "create_participant_interval": gofmt.ms_duration(s.cpi),
            "send_message_interval": gofmt.ms_duration(s.smi),
            "log_ws": s.log_ws,
        },
        "description": "performance test summary",
        "organizer_time_started": gofmt.rfc3339nano(result.organizer_started_ns),
        "organizer_duration": gofmt.duration(result.stopped_ns - result.organizer_started_ns),
        "participants_time_started": gofmt.rfc3339nano(result.participants_started_ns),
        "participants_duration": gofmt.duration(
            result.stopped_ns - result.participants_started_ns),
        "messages_sent": sent,
        "chats_count": counts.get(Count.CHATS, 0),
        "created_participants_count": counts.get(Count.CREATED_PARTICIPANTS, 0),
        # Ours from here on.
        "participants_planned": participants_planned(result),
        "run_id": result.run_id,
        "end_reason": result.end_reason,
        "exit_status": None,  # the verdict's, below
        "first_error": result.first_error.as_dict() if result.first_error else None,
        "errors_after_stop": result.late_errors,
        "threads_alive_after_join": result.threads_alive,
        "messages_delivered": delivered,
        "messages_confirmed": delivered,  # messages_sent the target echoed back
        "messages_unconfirmed": max(0, sent - delivered),
        "delivered_ratio": round(delivered / sent, 6) if sent else None,
        "organizer_received": m.organizer_received.total(),
        "messages_missed": m.missed.total(),
        "steady_rate": round(steady_rate(rates), 3),
        "generator_cpu_s": round(result.cpu_s, 3),
        "cpu_us_per_message": round(result.cpu_s / sent * 1e6, 1) if sent else None,
        "latency": m.latencies(),
        "counts": counts,
        "shards": result.shards,
        "warnings": health.clock_warnings(result.shards),
        "target": result.target.public(),
        "target_stats": result.target_stats,
        "cross_check": _cross_check(sent, result.target_stats),
        "settings": s.public(),
        "versions": {"esmeperf": __version__, "python": platform.python_version()},
        # The mechanisms this run measured with (docs/platforms.md): they change what a
        # latency means (kernel receive time, or the clock after recv) and what CPU covers.
        "platform": platform_support.active().summary(),
    }
    summary["send_interval_error"] = send_interval_error(result)
    summary["rtt_tail"] = rtt_tail(result, summary["latency"]["message_rtt"].get("p99_ms"))
    summary.update(_pacing(rates, m.missed.snapshot()))
    summary["generator_health"] = generator_health(result, summary["latency"])
    if result.ctx.surge is not None:
        summary["surge"] = result.ctx.surge.summary(s.gates.get("max_p99_ms"))
    # The gates over the whole run, then --abort-on-fail's breach over its window.
    summary["gates"] = gates.judge_run(s.gates, summary) + result.gates
    summary["attribution"] = decide.attribute(summary)
    summary["warnings"] += honesty_warnings(summary)
    summary["warnings"] += [shard["missing"] for shard in result.shards if shard.get("lost")]
    return with_verdict(summary, held)


def with_verdict(summary: dict[str, Any], held: str | None = None) -> dict[str, Any]:
    """The summary with its verdict (verdict/decide.py): its exit status and the words."""
    verdict = decide.decide(summary, held)
    summary["exit_status"] = verdict.status
    summary["verdict"] = verdict.as_dict()
    return summary


def participants_planned(result: Outcome) -> int:
    """The arrivals the schedule (-cpi's grid or --stages) asked for by the stop."""
    return planned(result.settings,
                   (result.stopped_ns - result.participants_started_ns) / 1e9)


def load_seconds(result: Outcome) -> list[int]:
    """The Unix seconds wholly inside the load (the participants' start to the stop)."""
    first = -(-result.participants_started_ns // 1_000_000_000)  # the first whole second
    last = result.stopped_ns // 1_000_000_000  # the one the stop fell in is partial
    return list(range(first, last))


def generator_health(result: Outcome, latency: dict[str, Any]) -> dict[str, Any]:
    """Whether the generator itself limited the run (esmeperf/measure/health.py has the rules)."""
    m, s = result.ctx.metrics, result.settings
    return health.assess(health.Figures(
        load_seconds=load_seconds(result),
        generator_cpu_ms=m.generator_cpu_ms.snapshot(),
        cores=health.generator_cores(s.processes),
        target_cpu_ms=m.target_cpu_ms.snapshot() if result.target.embedded else None,
        send_lateness_p99_ms=latency["send_lateness"].get("p99_ms"),
        generator_lag_p99_ms=latency["generator_lag"].get("p99_ms"),
        smi_ms=s.smi,
        arrival_lateness_p99_ms=latency["arrival_lateness"].get("p99_ms"),
        cpi_ms=shortest_interval_ms(s),
        threads_alive_max=max((x.threads for x in result.samples.values()), default=0),
        shard_delta_gap_s=max((shard["delta_gap_max_s"] for shard in result.shards
                               if shard.get("delta_gap_max_s") is not None), default=None)))


def _pacing(rates: dict[int, int], missed: dict[int, int]) -> dict[str, Any]:
    """Intended (scheduled) against achieved sends: a send slot is either sent or missed."""
    sent, skipped = sum(rates.values()), sum(missed.values())
    scheduled = {s: rates.get(s, 0) + missed.get(s, 0) for s in set(rates) | set(missed)}
    return {
        "intended_rate": round(steady_rate(scheduled), 3),
        "achieved_rate": round(steady_rate(rates), 3),
        "achieved_ratio": round(sent / (sent + skipped), 6) if sent + skipped else None,
    }


def _cross_check(sent: int, stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """Compare what we counted as sent with what the embedded target stored."""
    if not stats or "participant_messages_stored" not in stats:
        return None
    stored = stats["participant_messages_stored"]
    return {"messages_sent": sent, "target_stored": stored, "difference": stored - sent}


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file.

    The file gets the mode open() gives the PNG (0666 less the umask, 0644 usually), not
    mkstemp's 0600: results are for sharing.
    """
    for attempt in itertools.count(1):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            if attempt == 10:
                raise
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def summary_json(summary: dict[str, Any]) -> str:
    """The summary file's text. Go's json.MarshalIndent: two spaces, no trailing newline; a Go
    struct, so keys in field order (ours after the Go test's)."""
    return json.dumps(summary, indent=2, ensure_ascii=False)


def write_summary(summary: dict[str, Any], path: Path) -> Path:
    """Write the summary alone, e.g. to --summary-export's fixed path (replaced if it exists)."""
    _write_atomic(path, summary_json(summary))
    return path


def write_results(result: Outcome, summary: dict[str, Any], out_dir: Path,
                  stamp: int) -> dict[str, Path]:
    """Write the summary, the message rates, the series and the latency log; return their
    paths by kind."""
    from .hlog import hlog_text  # hdrhistogram: not for --help and the man pages

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out_dir / f"{stamp}{SUMMARY_SUFFIX}",
        "rates": out_dir / f"{stamp}{RATES_SUFFIX}",
        "series": out_dir / f"{stamp}{SERIES_SUFFIX}",
        "latency_log": out_dir / f"{stamp}{HLOG_SUFFIX}",
    }
    write_summary(summary, paths["summary"])
    # The rates are a Go map, whose keys Go writes sorted.
    rates = {str(k): v for k, v in result.sent.items()}
    _write_atomic(paths["rates"], json.dumps(dict(sorted(rates.items())), indent=2))
    lines = csv_text(series_rows(result))
    _write_atomic(paths["series"], lines)
    _write_atomic(paths["latency_log"], hlog_text(result.ctx.metrics.recorders()))
    return paths


def read_rates(path: str | os.PathLike[str]) -> dict[int, int]:
    """Read a message-rates file (ours or the Go test's)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {int(k): int(v) for k, v in data.items()}
