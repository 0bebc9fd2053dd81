"""What the original could not measure: delivery, replies, the organizer pool, gates, series."""

from __future__ import annotations

import pytest
from helpers import load_results, run_main, write_config


@pytest.mark.portable_twin
def test_organizer_pool_shares_the_chats_and_replies_are_measured(tmp_path, target_factory):
    target = target_factory("--organizers", "2")
    assert len(target.config["organizers"]) == 1  # the second; the first is organizer_email
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


