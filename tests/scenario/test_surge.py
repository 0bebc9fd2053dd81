"""A surge of help requests: the window, the cohorts and phases, and their figures in a run."""

from __future__ import annotations

import csv

import pytest
from helpers import load_results, outputs, run_main, write_config

from esmeperf.scenario.surge import COHORTS, PHASES, parse_window, window_from_stages


@pytest.mark.parametrize(("stages", "window"), [
    # The example: the ramp from 5 to 100 a second is the surge.
    (((60, 5), (20, 100), (60, 5)), (60, 80)),
    # A spike held over two stages: from the ramp's start to the end of the last at the peak.
    (((10, 5), (2, 50), (10, 50), (2, 5), (10, 5)), (10, 22)),
    # The first stage at the peak: the plan starts with it, nothing was open before.
    (((5, 10), (10, 10), (5, 0)), None),
    (((30, 5),), None),
])
def test_the_surge_window_from_stages(stages, window):
    found = window_from_stages(stages)
    assert (None if found is None else (found.start, found.end)) == window


def test_cohorts_and_phases_split_at_the_window_edges():
    found = window_from_stages(((60, 5), (20, 100), (60, 5)))
    assert found is not None
    assert [found.part(t) for t in (0.0, 59.999, 60.0, 79.999, 80.0, 500.0)] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(("text", "expected"), [("60s-80s", (60.0, 80.0)), ("0-1m", (0.0, 60.0)),
                                                ("500ms-2s", (0.5, 2.0))])
def test_surge_flag_values(text, expected):
    assert parse_window(text) == expected


@pytest.mark.parametrize(("text", "words"), [("60s", "FROM-TO"), ("80s-60s", "must end after"),
                                             ("x-60s", "time span")])
def test_bad_surge_flags_are_one_line(tmp_path, capsys, text, words):
    assert run_main(tmp_path, None, "--surge", text, "--duration", "1s") == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _cells(summary):
    return [summary["surge"]["cohorts"][c]["phases"][p] for c in COHORTS for p in PHASES]


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_a_surge_run_gives_the_complete_cohort_table(tmp_path, target, capsys, processes):
    config = write_config(tmp_path, target.config)
    # 2 s at up to 4/s, a surge to 30/s for 2 s, back to 4/s: 4 + 34 + 34 + 17 + 8 arrivals.
    status = run_main(tmp_path, config, "-sci", "5", "-smi", "100", "--processes",
                      str(processes), "--stages", "2s:4,1s:30,1s:30,1s:4,2s:4")
    summary, _ = load_results(tmp_path / "out")
    assert status == 0, summary["first_error"]
    surge = summary["surge"]
    assert surge["window_s"] == [2.0, 4.0] and surge["source"] == "--stages"
    cohorts = surge["cohorts"]
    # Every cohort arrived, and the table's parts add up to the run's totals exactly.
    assert all(cohorts[c]["participants"] > 0 for c in COHORTS)
    assert sum(cohorts[c]["participants"] for c in COHORTS) == summary["counts"][
        "participants_started"]
    assert sum(cell["sent"] for cell in _cells(summary)) == summary["messages_sent"]
    assert sum(cell["delivered"] for cell in _cells(summary)) == summary["messages_delivered"]
    assert sum(cell["rtt"]["count"] for cell in _cells(summary)) == summary["messages_delivered"]
    # The chats open before the surge sent in every phase; those who came later, not before.
    assert all(cohorts["before"]["phases"][p]["sent"] > 0 for p in PHASES)
    assert cohorts["during"]["phases"]["before"]["sent"] == 0
    assert cohorts["after"]["phases"]["during"]["sent"] == 0
    assert all(cohorts[c]["time_to_chat"]["count"] > 0 for c in COHORTS)
    assert surge["open_chats_endured"] is True
    # The table on stdout answers the question in its first line.
    assert "open chats endured: yes" in capsys.readouterr().out
    # Intended and actual arrivals per second in the series, and the plot drawn with them.
    with outputs(tmp_path / "out")["series"].open() as f:
        rows = list(csv.DictReader(f))
    assert sum(int(r["arrivals_intended"]) for r in rows) == summary["participants_planned"]
    assert sum(int(r["arrivals"]) for r in rows) == summary["counts"]["participants_started"]
    assert "plot" in outputs(tmp_path / "out")


def test_a_run_without_a_surge_has_no_surge_object(tmp_path, target):
    config = write_config(tmp_path, target.config)
    assert run_main(tmp_path, config, "-sci", "10", "-cpi", "200", "-smi", "100",
                    "--duration", "1s", "--no-plot") == 0
    summary, _ = load_results(tmp_path / "out")
    assert "surge" not in summary
