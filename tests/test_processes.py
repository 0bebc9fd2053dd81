"""--processes: participants in shard processes, merged exactly, first error from any shard."""

from __future__ import annotations

from test_run import load_results, run_main, stored_participant_messages, write_config


def test_two_processes_merge_exactly(tmp_path, target):
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "40", "-smi", "100",
                      "--processes", "2", "--max-participants", "20", "--duration", "3s")
    summary, rates = load_results(tmp_path / "out")
    assert status == 0, summary["first_error"]
    assert summary["created_participants_count"] == summary["chats_count"] == 20
    stored = target.stats()["participant_messages_stored"]
    assert stored == summary["messages_sent"] == summary["messages_delivered"] > 0
    assert summary["latency"]["message_rtt"]["count"] == summary["messages_delivered"]
    texts = stored_participant_messages(target.config)
    assert len(texts) == stored
    # Both shards took part, and the totals are exactly the sums of theirs.
    assert summary["counts"]["participants_started"] == 20
    shards = summary["shards"]
    assert [s["shard"] for s in shards] == [0, 1] and all(s["sent"] > 0 for s in shards)
    assert sum(s["sent"] for s in shards) == summary["messages_sent"]


def test_error_in_a_shard_stops_every_shard(tmp_path, target_factory):
    target = target_factory("--fail-signup-after", "6")
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "50", "-smi", "100",
                      "--processes", "2")
    assert status == 1
    summary, _ = load_results(tmp_path / "out")
    error = summary["first_error"]
    assert error["thread"] in ("shard-0/participant-7", "shard-1/participant-8",
                               "shard-0/participant-9", "shard-1/participant-10")
    assert "responded with status code: 500 instead of: 201" in error["message"]
    assert "Traceback" in error["traceback"]
    assert summary["created_participants_count"] == 6
