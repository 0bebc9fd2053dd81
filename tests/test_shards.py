"""Shards, in local processes (--processes 2) or on a Dask LocalCluster (--cluster local:2):
totals are exactly the sums of the shards', and the first error in any shard stops them all."""

from __future__ import annotations

import importlib.util

import pytest
from helpers import load_results, run_main, stored_participant_messages, write_config

from esmeperf.cli import main

TRANSPORTS = [
    pytest.param(("--processes", "2"), id="processes"),
    pytest.param(("--cluster", "local:2"), id="dask",
                 marks=pytest.mark.skipif(
                     importlib.util.find_spec("distributed") is None,
                     reason="esmeperf[distributed] not installed")),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_totals_are_the_sums_of_the_shards(tmp_path, target, transport):
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "40", "-smi", "100", *transport,
                      "--max-participants", "16", "--duration", "3s")
    summary, _ = load_results(tmp_path / "out")
    assert status == 0, summary["first_error"]
    assert summary["created_participants_count"] == summary["chats_count"] == 16
    stored = target.stats()["participant_messages_stored"]
    assert stored == summary["messages_sent"] == summary["messages_delivered"] > 0
    assert summary["latency"]["message_rtt"]["count"] == summary["messages_delivered"]
    assert len(stored_participant_messages(target.config)) == stored
    shards = summary["shards"]
    assert [s["shard"] for s in shards] == [0, 1] and all(s["sent"] > 0 for s in shards)
    assert sum(s["sent"] for s in shards) == summary["messages_sent"]
    if transport[0] == "--cluster":
        assert len({s["worker"] for s in shards}) == 2
        assert all(abs(s["clock_skew_s"]) <= 0.5 and s["uncertainty_s"] >= 0 for s in shards)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_error_in_a_shard_stops_every_shard(tmp_path, target_factory, transport):
    target = target_factory("--fail-signup-after", "6")
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "50", "-smi", "100", *transport)
    assert status == 1
    summary, _ = load_results(tmp_path / "out")
    error = summary["first_error"]
    assert error["thread"].startswith("shard-") and "/participant-" in error["thread"]
    if transport[0] == "--cluster":
        assert "@tcp://127.0.0.1:" in error["thread"]
    assert "responded with status code: 500 instead of: 201" in error["message"]
    assert "Traceback" in error["traceback"]
    assert summary["created_participants_count"] == 6
    assert len(summary["shards"]) == 2


def test_shard_flags_are_checked(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--cluster", "remote:2"]) == 2
    assert "expected local:N" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--cluster", "local:2", "--processes", "2"]) == 2
    assert "does not go with" in capsys.readouterr().err
