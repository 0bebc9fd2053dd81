"""The end-of-run summary on stdout, --summary-export, and the result files' mode."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import child_targets, load_results, outputs, write_config

from esmeperf.cli.main import main
from esmeperf.results.report import LATENCY_LABELS, WHOSE, render


def latency(count: int, base: float) -> dict[str, float | int]:
    if not count:
        return {"count": 0}
    return {"count": count, "p50_ms": base, "p90_ms": base * 2, "p99_ms": base * 3,
            "p99.9_ms": base * 4, "max_ms": base * 5, "mean_ms": base}


def table_rows(text: str, section: str) -> dict[str, list[str]]:
    """The rows of one section of the table: label -> its cells (columns are 2+ spaces apart).
    The latency section's numbers only: each row's last column (whose time it is) is checked
    here, and the send interval error's line, a sentence, is left out."""
    block = next(b for b in text.split("\n\n") if b.startswith(section))
    rows = {}
    for line in block.splitlines()[1:]:
        label, *cells = re.split(r"\s{2,}", line.strip())
        if section == "latency (ms)":
            if label == "send interval error":
                continue
            key = next(k for k, v in LATENCY_LABELS.items() if v == label) \
                if label in LATENCY_LABELS.values() else label.replace(" ", "_")
            assert cells[-1] == WHOSE.get(key, cells[-1]), (label, cells)
            cells = cells[:5]
        rows[label] = cells
    return rows


SUMMARY = {
    "created_participants_count": 1109, "participants_planned": 1500, "chats_count": 1100,
    "messages_sent": 98765, "messages_delivered": 98760, "delivered_ratio": 0.999949,
    "steady_rate": 3290.125, "end_reason": "duration", "exit_status": 3, "first_error": None,
    "messages_missed": 1235, "achieved_ratio": 0.987645, "intended_rate": 3400.04,
    "settings": {"sci_ms": 10.0, "cpi_ms": 20.0, "smi_ms": 100.0},
    "latency": {
        "message_rtt": latency(98760, 1.25), "send_lateness": latency(98765, 0.5),
        "organizer_reply": latency(0, 0), "sign_up": latency(1109, 3.5),
        "chat_request": latency(1109, 1.5), "ws_handshake": latency(1109, 1.125),
        "arrival_to_chat": latency(1100, 7.0), "arrival_lateness": latency(1109, 12400.0),
        "queue_wait": latency(12, 0.25),  # a latency a later version may add
    },
    "gates": [{"gate": "max_p99_ms", "limit": 10.0, "measured": 3.75, "passed": True},
              {"gate": "min_rate", "limit": 5000.0, "measured": 3290.125, "passed": False}],
    "generator_health": {"suspect": True, "reasons": [
        "generator CPU >= 90% of 2 cores in 41% of seconds",
        "arrivals 12.4 s behind the grid"], "cpu_busy_p90": 0.97},
    "attribution": {"limited_by": "undetermined", "why": "gate min_rate failed",
                    "remedy": "spread the load", "message_rtt_p99_ms": 3.75,
                    "target_handling_p99_ms": None, "target_share_of_rtt_p99": None},
}


def test_render_shows_every_latency_totals_gates_health_and_files():
    text = render(SUMMARY, {"summary": Path("out/1_performance_test_summary.json"),
                            "summary_export": Path("last.json")})
    assert text.splitlines()[0] == ("esmeperf: sci 10 cpi 20 smi 100 ms: ended by duration, "
                                    "exit status 3 (the run ended but a gate failed), "
                                    "generator SUSPECT")
    rows = table_rows(text, "latency (ms)")
    # The well-known ones first, in a fixed order; a new key after them, under its own name;
    # the organizer reply is left out: it measured nothing (no --reply).
    assert list(rows) == ["round trip", "send lateness", "arrival lateness", "sign-up",
                          "chat request", "handshake", "arrival to chat", "queue wait"]
    assert rows["arrival lateness"] == ["1109", "12400.0", "24800.0", "37200.0", "62000.0"]
    assert rows["round trip"] == ["98760", "1.25", "2.5", "3.75", "6.25"]
    totals = table_rows(text, "totals")
    assert totals["participants"] == ["1109 created of 1500 planned"]
    assert totals["delivered"] == ["98760 (ratio 0.9999)"]  # as the final line: 4 decimals
    # The sends the schedule asked for and those skipped, and the intended rate beside the
    # achieved one, whenever a send was missed.
    assert totals["messages sent"] == ["98765 of 100000 due (achieved 0.9876; 1235 slots "
                                       "skipped, each late by a whole interval)"]
    assert totals["steady rate"] == ["3290.1 messages/s (intended 3400.0)"]
    assert table_rows(text, "gates") == {
        "max_p99_ms": ["pass", "measured 3.75, limit 10.0"],
        "min_rate": ["FAIL", "measured 3290.125, limit 5000.0"]}
    health = next(b for b in text.split("\n\n") if b.startswith("generator health"))
    assert health.splitlines() == [
        "generator health        SUSPECT: the generator may have limited this run",
        "  - generator CPU >= 90% of 2 cores in 41% of seconds",
        "  - arrivals 12.4 s behind the grid",
        "  limited by            undetermined: gate min_rate failed",
        "  remedy                spread the load"]
    assert table_rows(text, "files") == {"summary": ["out/1_performance_test_summary.json"],
                                         "summary export": ["last.json"]}


def test_render_without_the_optional_keys():
    summary = {k: v for k, v in SUMMARY.items()
               if k not in ("generator_health", "participants_planned", "gates",
                            "messages_missed", "attribution")}
    summary["latency"] = {"message_rtt": {"count": 0}, "send_lateness": {"count": 0}}
    summary["delivered_ratio"] = None
    summary["first_error"] = {"thread": "participant-4", "message": "boom", "traceback": "..."}
    text = render(summary, {})
    assert "generator health" not in text and "gates" not in text and "files" not in text
    assert text.splitlines()[1] == "  first error           participant-4: boom"
    # The round trip is the headline: shown even when nothing came back.
    assert table_rows(text, "latency (ms)") == {"round trip": ["0", "-", "-", "-", "-"]}
    assert table_rows(text, "totals")["delivered"] == ["98760"]
    healthy = render({**summary, "generator_health": {"suspect": False, "reasons": []}}, {})
    assert "\n\ngenerator health        ok\n" in healthy


def test_table_numbers_equal_the_summary_json(tmp_path, target, capsys):
    out, export = tmp_path / "out", tmp_path / "last-summary.json"
    status = main(["-q", "--out", str(out), "--config", str(write_config(tmp_path, target.config)),
                   "-sci", "10", "-cpi", "100", "-smi", "100", "--max-participants", "3",
                   "--duration", "2s", "--max-p99", "1000", "--summary-export", str(export)])
    assert status == 0
    summary, _ = load_results(out)
    captured = capsys.readouterr()
    text = captured.out
    assert text == render(summary, {**outputs(out), "summary_export": export})
    rows = table_rows(text, "latency (ms)")
    shown = {k: v for k, v in summary["latency"].items() if v["count"]}
    assert len(rows) == len(shown) >= 6
    keys = {LATENCY_LABELS.get(k, k.replace("_", " ")): k for k in shown}
    for label, cells in rows.items():
        assert [float(c) for c in cells] == [shown[keys[label]][c] for c in (
            "count", "p50_ms", "p90_ms", "p99_ms", "max_ms")], label
    ruler = summary["send_interval_error"]  # the embedded target's clock, None for another
    assert ruler is None or (
        f"  send interval error    |interval - smi| p50 {ruler['p50_ms']}, p99 "
        f"{ruler['p99_ms']}, max {ruler['max_ms']} ms over {ruler['count']} intervals "
        "(the target's clock)") in text.splitlines()
    assert (ruler is None) == ("send interval error" not in text)
    totals = table_rows(text, "totals")
    assert totals["participants"] == [f"{summary['created_participants_count']} created of "
                                      f"{summary['participants_planned']} planned"]
    assert totals["chats"] == [str(summary["chats_count"])]
    assert totals["messages sent"] == [str(summary["messages_sent"])]
    # The ratio as the final line gives it (verdict/words.py): four decimals.
    assert totals["delivered"] == [f"{summary['messages_delivered']} "
                                   f"(ratio {summary['delivered_ratio']:.4f})"]
    assert totals["steady rate"] == [f"{summary['steady_rate']:.1f} messages/s"]
    gate = summary["gates"][0]
    assert table_rows(text, "gates") == {
        "max_p99_ms": ["pass", f"measured {gate['measured']}, limit {gate['limit']} "
                       f"({gate['words']})"]}
    # -q: the final line alone on stderr; the export is the summary, byte for byte.
    assert captured.err.startswith("esmeperf: ended by duration: 3 participants")
    assert len(captured.err.splitlines()) == 1
    assert export.read_bytes() == outputs(out)["summary"].read_bytes()


def test_quiet_run_table_on_stdout_final_line_on_stderr_files_0644(tmp_path):
    export = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "esmeperf", "-q", "-cpi", "100", "--max-participants", "2",
         "--duration", "1s", "--out", "out", "--summary-export", str(export)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False, umask=0o022)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("esmeperf: ended by duration: 2 participants")
    assert len(done.stderr.splitlines()) == 1
    assert done.stdout.startswith("esmeperf: sci 1000 cpi 100 smi 1000 ms: ended by duration")
    files = {**outputs(tmp_path / "out"), "summary_export": export}
    assert sorted(files) == ["latency_log", "plot", "rates", "report", "series", "summary",
                            "summary_export"]
    for kind, path in files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, kind
        assert f"  {kind.replace('_', ' '):<20}  {path.relative_to(tmp_path)}\n" in done.stdout \
            or f"  {kind.replace('_', ' '):<20}  {path}\n" in done.stdout, kind
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind


def test_result_files_follow_the_umask(tmp_path):
    code = ("from pathlib import Path; from esmeperf.results.summary import write_summary; "
            f"write_summary({{'a': 1}}, Path({str(tmp_path / 's.json')!r}))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, umask=0o027)
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o640
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 1}


def test_a_closed_stdout_costs_a_warning_not_the_run(tmp_path):
    # `| true` is gone before the run ends: the table meets a closed pipe.
    done = subprocess.run(
        ["bash", "-c", "set -o pipefail; " + " ".join([
            sys.executable, "-m", "esmeperf", "-q", "--no-plot", "-cpi", "100",
            "--max-participants", "2", "--duration", "1s", "--out", "out"]) + " | true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and lines[0].endswith("warning: stdout was closed; the summary is "
                                                  "in the files"), lines
    assert lines[1].startswith("esmeperf: ended by duration")
    assert load_results(tmp_path / "out")[0]["exit_status"] == 0


@pytest.mark.parametrize(("where", "problem"), [
    ("missing/summary.json", "cannot write in {tmp}/missing (No such file or directory)"),
    ("a-file/summary.json", "cannot write in {tmp}/a-file (Not a directory)"),
    ("", "is a directory, give a file name"),
])
def test_an_unwritable_summary_export_is_exit_2_before_any_load(tmp_path, capsys, where,
                                                                 problem):
    (tmp_path / "a-file").write_text("")
    path = tmp_path / where
    assert main(["--out", str(tmp_path / "out"), "--duration", "1s",
                 "--summary-export", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"esmeperf: error: --summary-export {path}: " \
        f"{problem.format(tmp=tmp_path)}\n"
    assert not list(tmp_path.rglob("*_performance_test_*")) and not child_targets()


def test_a_sweep_refuses_summary_export(tmp_path, capsys):
    path = tmp_path / "summary.json"
    assert main(["--out", str(tmp_path / "out"), "-smi", "100,250", "--duration", "1s",
                 "--summary-export", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"esmeperf: error: --summary-export {path}: not with a sweep or --repeat (each run's "
        "summary is in its own directory under --out)\n")
    assert not path.exists() and not child_targets()


def test_a_sweep_prints_each_runs_table(tmp_path, capsys):
    status = main(["-q", "--out", str(tmp_path / "sweep"), "-cpi", "100", "-smi", "100,250",
                   "--max-participants", "2", "--duration", "1s", "--no-plot"])
    assert status == 0
    tables = re.findall(r"^esmeperf: sci 1000 cpi 100 smi (\d+) ms: ended by duration",
                        capsys.readouterr().out, re.M)
    assert tables == ["100", "250"]
    for run in ("01_sci1000_cpi100_smi100_r1", "02_sci1000_cpi100_smi250_r1"):
        assert os.path.isdir(tmp_path / "sweep" / run)
