"""--find-capacity: the search's steps and verdicts, and one real search on the embedded target."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from esmeperf.cli.main import main
from esmeperf.config import Output, Settings
from esmeperf.jobs.capacity import (
    START_CHATS,
    Search,
    Step,
    find_capacity,
    judge,
    step_settings,
)


def target_with_knee(knee: int, generator_limit: int | None = None):
    """A step runner standing in for a target that keeps up with `knee` chats and no more
    (and a generator that runs out at `generator_limit`): the search's logic on its own."""

    def run_step(settings: Settings, output: Output, step: Step) -> int:
        step.generator_limited = generator_limit is not None and step.chats >= generator_limit
        keeps_up = step.chats <= knee and not step.generator_limited
        step.achieved_rate = step.intended_rate * (1.0 if keeps_up else 0.9)
        step.due = round(step.intended_rate * 10)  # a 10 s window: every slot made, or 90 %
        step.made = step.due if keeps_up else round(step.due * 0.9)
        step.delivered_ratio = 1.0
        step.p99_ms = 5.0 if step.chats <= knee else 2000.0
        return 0

    return run_step


def search(tmp_path: Path, run_step, budget: float = 10_000.0, max_chats: int | None = None):
    found = Search(Settings(smi=100), Output(out_dir=tmp_path), run_step, budget, max_chats)
    found.run()
    return found, found.result()


def test_doubling_then_bisecting_finds_the_knee_within_ten_percent(tmp_path):
    found, result = search(tmp_path, target_with_knee(100))
    chats = [s.chats for s in found.steps]
    assert chats[:4] == [16, 32, 64, 128]  # doubling until the first failure
    assert result["limited_by"] == "target"
    assert 91 <= result["knee_chats"] <= 100  # within RESOLUTION of the true knee
    assert result["knee_rate"] == result["knee_chats"] * 10  # smi 100: 10 msg/s a chat
    failed = [s for s in result["steps"] if not s["passed"]]
    assert failed and all("rtt p99" in " ".join(s["failed"]) for s in failed)


def test_a_generator_limited_failure_names_no_knee(tmp_path):
    found, result = search(tmp_path, target_with_knee(1000, generator_limit=64))
    assert [s.chats for s in found.steps] == [16, 32, 64]  # it stops at that step
    assert result["limited_by"] == "generator" and result["knee_chats"] is None
    assert result["highest_passing_chats"] == 32 and result["highest_passing_rate"] == 320
    assert "not the target's knee" in result["note"]


def test_a_search_that_hits_its_bound_gives_a_lower_bound(tmp_path):
    found, result = search(tmp_path, target_with_knee(10_000), max_chats=100)
    assert [s.chats for s in found.steps] == [16, 32, 64, 100]
    # No step failed: no knee, the highest passing step as a lower bound.
    assert result["limited_by"] == "none" and result["knee_chats"] is None
    assert result["knee_rate"] is None and result["highest_passing_chats"] == 100
    assert "open files" in result["note"] and "lower bound" in result["note"]


def test_a_target_that_fails_the_first_step_is_searched_downwards(tmp_path):
    found, result = search(tmp_path, target_with_knee(5))
    assert found.steps[0].chats == START_CHATS and not found.steps[0].passed
    assert result["limited_by"] == "target" and result["knee_chats"] in (4, 5)


def test_step_settings_hold_the_chats_and_measure_ten_seconds(tmp_path):
    settings = step_settings(Settings(smi=100), 256)
    assert settings.max_participants == 256 and settings.sci < settings.cpi
    assert settings.duration == pytest.approx(256 * settings.cpi / 1000 + 3 + 10)


def test_find_capacity_refuses_arrival_flags(tmp_path, capsys):
    assert main(["--find-capacity", "--stages", "5s:10", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--find-capacity chooses the arrivals itself" in err and len(err.splitlines()) == 1


def test_a_step_cut_short_is_interrupted_not_the_targets_failure(tmp_path):
    """A signal in the second step: no knee, nothing blamed on the target, a lower bound."""

    def run_step(settings: Settings, output: Output, step: Step) -> int:
        if step.chats > START_CHATS:
            step.interrupted = "a signal"
            return 130
        return target_with_knee(1000)(settings, output, step)

    found, result = search(tmp_path, run_step)
    assert [s.verdict for s in found.steps] == ["pass", "interrupted"]
    assert result["limited_by"] == "none" and result["knee_chats"] is None
    assert result["highest_passing_chats"] == START_CHATS and result["interrupted"]
    assert "cut short by a signal" in result["note"] and "lower bound" in result["note"]
    assert result["steps"][1]["attribution"] is None and not result["steps"][1]["failed"]


def test_a_step_is_judged_by_its_schedule_not_by_a_rounded_rate(tmp_path):
    """Eight chats at one message every 2 s: a handful of sends in the window, every one made
    and echoed, passes, whatever rate its window's edges make of it."""
    step = Step(chats=8, intended_rate=4.0, achieved_rate=3.6, delivered_ratio=1.0, p99_ms=2.0,
                due=40, made=40)
    assert judge(step, 1000.0).passed
    slow = Step(chats=8, intended_rate=4.0, achieved_rate=3.6, delivered_ratio=1.0, p99_ms=2.0,
                due=40, made=36)
    assert judge(slow, 1000.0).failed == ("sends made 36 < 0.99 x 40 due",)


def test_start_chats_begins_the_search_there(tmp_path):
    found = Search(Settings(smi=100), Output(out_dir=tmp_path), target_with_knee(1000),
                   10_000.0, None, start_chats=128)
    found.run()
    assert [s.chats for s in found.steps][:3] == [128, 256, 512]
    assert found.result()["start_chats"] == 128


@pytest.mark.slow
def test_sigterm_during_a_real_step_names_no_knee(tmp_path):
    """A real search, SIGTERM while its second step runs: exit 130 and no knee blamed on the
    target (the step the signal cut short is interrupted, not failed)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "esmeperf", "--find-capacity", "-smi", "100", "--duration",
         "5m", "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:  # bounded: the pytest timeout ends a hung search
            if "capacity step 2:" in line:
                break
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130
    capacity = json.loads(next(tmp_path.glob("*_summary.json")).read_text())["capacity"]
    assert capacity["knee_chats"] is None and capacity["limited_by"] == "none"
    assert [s["verdict"] for s in capacity["steps"]] == ["pass", "interrupted"]
    assert "limited by none" in out.splitlines()[0] and "target" not in out.splitlines()[0]


def test_the_search_ends_with_a_final_line_in_the_verdicts_words(tmp_path, capsys):
    """A capacity search ends as a run does: one line on stderr, the words its table's first
    line and its page give (verdict/decide.py), and its own exit status in its summary."""
    status = find_capacity(Settings(smi=100),
                           Output(out_dir=tmp_path, plot=False, html_report=False),
                           target_with_knee(40))
    captured = capsys.readouterr()
    assert status == 0
    final = captured.err.strip().splitlines()[-1]
    head = captured.out.splitlines()[0]
    assert head.startswith("capacity: knee ")
    assert final.startswith("esmeperf: capacity search ended after ")
    assert final.endswith(head.removeprefix("capacity: "))
    (path,) = tmp_path.glob("*_performance_test_summary.json")
    summary = json.loads(path.read_text())
    assert summary["exit_status"] == 0 and summary["verdict"]["ended"] == \
        "the capacity search ended"
    assert summary["verdict"]["limited_by"] == "target"
