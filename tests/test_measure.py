"""What the original could not measure: delivery, replies, the organizer pool, gates, series."""

from __future__ import annotations

import csv

from helpers import load_results, outputs, run_main, write_config


def test_organizer_pool_shares_the_chats_and_replies_are_measured(tmp_path, target_factory):
    target = target_factory("--organizers", "2")
    assert len(target.config["organizers"]) == 2
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "20", "-cpi", "50", "-smi", "100",
                      "--organizers", "2", "--reply", "--max-participants", "20",
                      "--duration", "3s")
    summary, _ = load_results(tmp_path / "out")
    assert status == 0, summary["first_error"]
    counts = summary["counts"]
    assert counts["chats_started_by_organizer-1"] > 0
    assert counts["chats_started_by_organizer-2"] > 0
    assert (counts["chats_started_by_organizer-1"] + counts["chats_started_by_organizer-2"]
            == summary["chats_count"] == 20)
    assert summary["organizer_received"] == summary["messages_sent"] > 0
    assert counts["replies_sent"] == summary["organizer_received"]
    assert counts["replies_received"] >= summary["messages_delivered"] * 0.9
    assert summary["latency"]["organizer_reply"]["count"] > 0
    reply, rtt = summary["latency"]["organizer_reply"], summary["latency"]["message_rtt"]
    assert reply["p50_ms"] >= rtt["p50_ms"]  # the reply comes back after the echo
    assert summary["messages_unconfirmed"] == 0 and summary["delivered_ratio"] == 1.0


def test_gates_fail_with_exit_3_and_say_by_how_much(tmp_path, target):
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "100", "-smi", "100",
                      "--max-participants", "5", "--duration", "2s",
                      "--max-p99", "0.001", "--min-delivered-ratio", "0.5",
                      "--min-rate", "100000")
    assert status == 3
    summary, _ = load_results(tmp_path / "out")
    gates = {g["gate"]: g for g in summary["gates"]}
    assert gates["max_p99_ms"]["passed"] is False
    assert gates["max_p99_ms"]["measured"] > 0.001
    assert gates["min_delivered_ratio"]["passed"] is True
    assert gates["min_rate"]["passed"] is False and gates["min_rate"]["limit"] == 100000
    assert summary["exit_status"] == 3


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
