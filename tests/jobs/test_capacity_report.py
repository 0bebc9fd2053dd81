"""A capacity search's HTML report: who limited it, every step linked to its own report, the knee
chart with a hover title on each step; written by the search and again by esmeperf-plot --html.

The search's logic runs for real with a stand-in for the target's knee (as test_capacity.py
does); each step's files are a real run's, copied."""

from __future__ import annotations

import pytest
from page_reader import Parsed
from saved_runs import SavedRun, capacity_search, surge_run

from esmeperf.config import Output, Settings
from esmeperf.jobs.capacity import Step, find_capacity
from esmeperf.plot.command import main as plot_main


@pytest.fixture(scope="module")
def surge(tmp_path_factory: pytest.TempPathFactory) -> SavedRun:
    return surge_run(tmp_path_factory)


def test_the_search_writes_its_report_and_plot_html_writes_every_steps(tmp_path, surge, capsys):
    capacity_search(tmp_path, surge)
    out = capsys.readouterr().out
    (report,) = tmp_path.glob("*_performance_test_report.html")
    assert f"  report              {report}" in out.splitlines()
    page = Parsed(report.read_text())
    assert page.order == ["answer", "steps", "knee", "files"]
    answer = page.text("answer")
    steps = page.tables["steps"][1:]
    knee = max(int(row[1]) for row in steps if row[7] == "pass")
    assert answer.startswith(f"Knee {knee} chats, {knee * 10:g} messages/s; limited by the "
                             "target.")
    assert [row[0] for row in steps] == sorted(p.name for p in (tmp_path / "capacity").iterdir())
    assert {row[7] for row in steps} == {"pass", "FAIL"}
    failed = next(row for row in steps if row[7] == "FAIL")
    assert "rtt p99 1800.0 ms > 1000 ms" in failed[8]
    titles = page.hover_titles["capacity"]
    assert len(titles) == len(steps) and titles[0].startswith("01_chats16: 16 chats")

    # esmeperf-plot --html on the search: every step's report, then the search's, each step
    # linked to its own.
    assert plot_main(["--html", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(report) and len(printed) == len(steps) + 1
    page = Parsed(report.read_text())
    step_links = [ref for ref in page.refs if ref.startswith("capacity/")]
    assert len(step_links) == len(steps)
    assert all(ref.endswith("_performance_test_report.html") and (tmp_path / ref).is_file()
               for ref in step_links)


def test_no_report_for_a_search_with_report_off(tmp_path, surge, capsys):
    def run_step(settings: Settings, output: Output, step: Step) -> int:
        step.achieved_rate, step.due, step.made = step.intended_rate, 10, 10
        step.delivered_ratio, step.p99_ms = 1.0, 2.0
        return 0

    assert find_capacity(Settings(smi=100, duration=40, max_participants=32),
                         Output(out_dir=tmp_path, html_report=False), run_step,
                         start_chats=16) == 0
    assert not list(tmp_path.glob("*.html"))
    assert "  report  " not in capsys.readouterr().out
