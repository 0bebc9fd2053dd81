"""One verdict, one exit status (issue 39): the gates as data, decide() over a run's summary,
and every output (the summary, the table, the final line, the HTML) saying the same thing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from helpers import load_results, outputs, run_main, write_config
from page_reader import Parsed

from esmeperf.config import Gates, Settings
from esmeperf.engine.gatewatch import WINDOW_S, breach
from esmeperf.measure.stats import Metrics
from esmeperf.results.report import render
from esmeperf.status import MEANINGS, ExitStatus
from esmeperf.verdict import decide, gates, words


def _summary(**changes: Any) -> dict[str, Any]:
    """The least a run's summary holds for a verdict: a healthy run that ran its --duration."""
    summary: dict[str, Any] = {
        "end_reason": "duration", "first_error": None, "gates": [],
        "generator_health": {"suspect": False, "reasons": []},
        "attribution": {"limited_by": "none", "source": "none"},
        "settings": {"duration_s": 30.0, "duration_source": "--duration", "stages": None},
        "latency": {"message_rtt": {"count": 10, "p99_ms": 1.5}},
        "created_participants_count": 3, "chats_count": 3, "messages_sent": 10,
        "messages_delivered": 10, "delivered_ratio": 1.0,
    }
    summary.update(changes)
    return summary


FAILED_GATE = {"gate": "max_p99_ms", "limit": 1.0, "measured": 1.5, "passed": False}
ERROR = {"thread": "participant-4", "message": "boom", "type": "RuntimeError",
         "traceback": "Traceback"}


@pytest.mark.parametrize(("changes", "held", "status"), [
    ({}, None, ExitStatus.OK),
    ({"gates": [FAILED_GATE]}, None, ExitStatus.THRESHOLD),
    ({"end_reason": "gate", "gates": [dict(FAILED_GATE, window="10 s")]}, None,
     ExitStatus.THRESHOLD),
    ({"end_reason": "error", "first_error": ERROR, "gates": [FAILED_GATE]}, None,
     ExitStatus.ERROR),
    ({"end_reason": "stall", "first_error": ERROR}, None, ExitStatus.ERROR),
    ({"end_reason": "signal SIGINT"}, None, ExitStatus.INTERRUPTED),
    ({}, "SIGTERM", ExitStatus.INTERRUPTED),  # held while the files were written
    ({"gates": [FAILED_GATE]}, "SIGINT", ExitStatus.INTERRUPTED),
])
def test_one_function_decides_the_status_and_its_words(changes, held, status):
    verdict = decide.decide(_summary(**changes), held)
    assert verdict.status == status
    meaning = dict(MEANINGS["esmeperf"])[status].replace("`", "")
    assert verdict.words and meaning.startswith(verdict.words)  # its --help text's own words
    assert [g["gate"] for g in verdict.failed] == [g["gate"] for g in changes.get("gates", [])]
    assert verdict.held == held
    # The summary records it, and a verdict read back from the summary is the same one.
    recorded = _summary(**changes)
    recorded["verdict"] = verdict.as_dict()
    assert decide.decide(recorded) == verdict


def test_what_ended_a_run_is_said_of_stages_and_of_a_duration():
    stages = {"duration_s": 25.0, "duration_source": "--stages", "stages": [[25.0, 4.0]]}
    assert decide.decide(_summary(settings=stages)).ended == \
        "it ran its --stages to their end (25 s)"
    assert decide.decide(_summary()).ended == "it ran for its --duration (30 s)"
    assert decide.decide(_summary(end_reason="signal SIGINT")).ended == \
        "a signal stopped it (SIGINT)"


def test_one_format_for_a_ratio():
    assert [words.ratio(v) for v in (1.0, 1, 0.987645, 0.999962, None)] == \
        ["1.0000", "1.0000", "0.9876", "0.999962", "-"]
    line = decide.final_line(_summary(delivered_ratio=1.0))
    assert "(1.0000)" in line
    table = render(_summary(delivered_ratio=1.0, messages_missed=0), {})
    assert "(ratio 1.0000)" in table


def test_a_sweeps_status_is_its_worst_runs():
    assert decide.worst([0, 3, 0]) == 3
    assert decide.worst([3, 1, 130]) == 130
    assert decide.worst([]) == 0


# A gate the test defines itself: the round trip's p50. One entry, and it works end to end.
MAX_P50 = gates.Gate(
    "max_p50_ms", "--max-p50", "message round-trip p50 must be at most MS",
    "round-trip p50, ms",
    over_run=lambda s: s["latency"]["message_rtt"].get("p50_ms"),
    over_window=lambda w: w.metrics.message_rtt.window_summary(w.first, w.last).get("p50_ms"),
    passes=lambda measured, limit: measured is not None and measured <= limit,
    metavar="MS", parse=float)


def test_a_gate_defined_here_judges_a_window():
    metrics = Metrics()
    for second in range(1000, 1000 + WINDOW_S):
        metrics.sent.add(second, 10)
        metrics.delivered.add(second, 10)
        for _ in range(10):
            metrics.message_rtt.record(second, 0.020)  # 20 ms
    with gates.added(MAX_P50):
        settings = Settings(smi=100, cpi=20, gates=Gates(max_p50_ms=5.0))
        failed = breach(metrics, settings, 1000 + WINDOW_S - 1)
        assert failed is not None and failed["gate"] == "max_p50_ms"
        assert failed["measured"] > 5.0 and failed["words"] == "round-trip p50, ms"
        assert failed["attribution"] == "target"  # a healthy generator over the window
        assert breach(metrics, Settings(smi=100, cpi=20, gates=Gates(max_p50_ms=50.0)),
                      1000 + WINDOW_S - 1) is None
    assert MAX_P50 not in gates.GATES


def test_a_gate_defined_here_works_end_to_end(tmp_path, target, capsys):
    config = write_config(tmp_path, target.config)
    with gates.added(MAX_P50):
        status = run_main(tmp_path, config, "-sci", "10", "-cpi", "50", "-smi", "100",
                          "--duration", "1s", "--max-p50", "0.000001", "--no-report")
    captured = capsys.readouterr()
    summary, _ = load_results(tmp_path / "out")
    assert status == ExitStatus.THRESHOLD == summary["exit_status"], summary["first_error"]
    (gate,) = summary["gates"]
    assert gate["gate"] == "max_p50_ms" and gate["passed"] is False
    assert gate["limit"] == 0.000001 and gate["words"] == "round-trip p50, ms"
    assert summary["settings"]["gates"] == {"max_p50_ms": 0.000001}
    # Every output says the same: the summary's verdict, the table, the final line.
    assert summary["verdict"]["failed_gates"] == ["max_p50_ms"]
    assert summary["verdict"]["words"] == "the run ended but a gate failed"
    head = captured.out.splitlines()[0]
    assert head.endswith("exit status 3 (the run ended but a gate failed)")
    assert f"max_p50_ms            FAIL  measured {gate['measured']}, limit 1e-06 " \
           "(round-trip p50, ms)" in captured.out
    final = captured.err.strip().splitlines()[-1]
    assert f"; gate max_p50_ms failed: {gate['measured']} vs 1e-06" in final


def test_the_page_says_what_the_table_says(tmp_path, target, capsys):
    """The HTML report, drawn apart by a child process, gives the verdict's words too."""
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "50", "-smi", "100",
                      "--duration", "1s", "--max-p99", "0.000001", "--no-plot")
    capsys.readouterr()
    summary, _ = load_results(tmp_path / "out")
    assert status == summary["exit_status"] == ExitStatus.THRESHOLD
    answer = Parsed(outputs(tmp_path / "out")["report"].read_text()).text("answer")
    verdict = summary["verdict"]
    assert answer.startswith(f"Exit status 3: {verdict['words']}.")
    assert f"Ended by duration: {verdict['ended']}." in answer
    # A summary edited by hand (a gate made to pass) is judged again, not taken on trust.
    edited = copy.deepcopy(summary)
    edited["gates"][0]["passed"] = True
    edited.pop("verdict")
    assert decide.decide(edited).status == ExitStatus.OK


def test_a_failed_round_trip_gate_is_judged_as_the_round_trip_is():
    """A --max-p99 failure whose tail came mostly in seconds the generator lagged names the
    generator, as the run's own latency verdict does, not the target (review of issue 39)."""
    tail = {"rtt_p99_ms": 40.0, "samples": 100, "in_lagged_seconds": 90, "lag_threshold_ms": 8.0}
    summary = _summary(latency={"message_rtt": {"count": 10_000, "p99_ms": 40.0}},
                       rtt_tail=tail, target_stats={"handling_us": {"p99": 3_000}})
    (gate,) = gates.judge_run(Gates(max_p99_ms=10.0), summary)
    assert not gate["passed"] and gate["attribution"] == "generator"
    # The same failure with the tail in seconds the generator kept up: the target's.
    summary["rtt_tail"] = dict(tail, in_lagged_seconds=0)
    (gate,) = gates.judge_run(Gates(max_p99_ms=10.0), summary)
    assert gate["attribution"] == "target"
