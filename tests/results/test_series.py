"""The series CSV: every column of a row describes the same second (issue 15, item 10)."""

from __future__ import annotations

import csv
import json
import os
import re

from helpers import children, load_results, outputs, run_main, write_config

from esmeperf.cli.main import main
from esmeperf.results.summary import read_series

# The generator's verdict is the machine's business (tests/measure/test_health.py's), not this
# test's: a loaded machine may append "; generator SUSPECT: ..." or the round trip's verdict.
FINAL_LINE = re.compile(r"esmeperf: ended by duration: \d+ participants, \d+ chats, \d+ sent, "
                        r"\d+ delivered \(1\.0000\), rtt p99 [\d.]+ ms"
                        r"(; generator SUSPECT: .*|; rtt (limited by|mostly outside) .*)?\n")


def test_each_row_describes_one_second(tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["-q", "--out", str(out), "-sci", "10", "-cpi", "20", "-smi", "100",
                   "--duration", "2.5s"])
    assert status == 0
    stdout, stderr = capsys.readouterr()
    assert FINAL_LINE.fullmatch(stderr), stderr  # -q: the final line alone on stderr
    assert stdout.startswith("esmeperf: sci 10 cpi 20 smi 100 ms: ended by duration")  # the table
    assert children() == []  # the embedded target is gone
    names = sorted(os.listdir(out))
    assert [n.split("_", 1)[1] for n in names] == [
        "performance_test_latency.hlog", "performance_test_message_rates.json",
        "performance_test_rates.png", "performance_test_report.html",
        "performance_test_series.csv",
        "performance_test_summary.json"]
    summary = json.loads(next(out.glob("*_summary.json")).read_text())
    rows = read_series(next(out.glob("*_series.csv")))

    assert [r["second"] for r in rows] == list(range(rows[0]["second"], rows[-1]["second"] + 1))
    assert sum(int(r["sent"]) for r in rows) == summary["messages_sent"]
    fractions = [float(r["load_fraction"]) for r in rows]
    # The rows start at the run's start (the organizer's); the participants', which starts the
    # load, comes tens of ms later and may fall in the next second: then one row of none.
    lead = next(i for i, f in enumerate(fractions) if f > 0)
    assert lead <= 1 and fractions[:lead] == [0.0] * lead
    assert fractions[lead] < 1 and fractions[-1] < 1 and abs(sum(fractions) - 2.5) < 0.05
    whole = [i for i, f in enumerate(fractions) if f == 1]
    assert whole == list(range(whole[0], whole[-1] + 1))  # one stretch between the ends
    people = [int(r["participants"]) for r in rows]
    chats = [int(r["chats"]) for r in rows]
    assert people == sorted(people) and chats == sorted(chats)  # counts by each second's end
    assert people[-1] == summary["created_participants_count"]
    assert chats[-1] == summary["chats_count"]
    for row in rows:
        if int(row["sent"]):  # a second that saw a message saw its sender and its chat
            assert int(row["participants"]) > 0 and int(row["chats"]) > 0, row
    # The first second holds only the start of the load: its participants are those that
    # could arrive in it (one every 20 ms from the start), not the next second's.
    first = rows[lead]
    assert int(first["participants"]) <= fractions[lead] * 50 + 2, first
    if fractions[lead] > 0.2:  # ten arrivals due: the first sign-ups are done by its end
        assert int(first["participants"]) > 0, first
    assert all(int(r["participants"]) == 0 for r in rows[:lead])
    # Connections are known at the end of every second before the stop, not after it.
    stop = max(i for i, f in enumerate(fractions) if f > 0)
    assert all(r["connections"] != "" for r in rows[:stop])
    assert all(r["connections"] == "" for r in rows[stop:])


def test_series_is_zero_filled_second_by_second(tmp_path, target):
    # One participant sending every 1.5 s leaves whole seconds without a send.
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "10", "-smi", "1500",
                      "--max-participants", "1", "--duration", "5s")
    assert status == 0
    summary, rates = load_results(tmp_path / "out")
    with open(outputs(tmp_path / "out")["series"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    seconds = [int(r["second"]) for r in rows]
    assert seconds == list(range(seconds[0], seconds[-1] + 1))
    assert len(rows) >= 5
    assert any(r["sent"] == "0" for r in rows)
    assert all(r["sent"] == str(rates.get(r["second"], 0)) for r in rows)
    assert [r for r in rows if r["sent"] == "0"][0]["rtt_p99_ms"] == ""
    assert summary["achieved_ratio"] == 1.0 and summary["messages_missed"] == 0
