"""Dask distributed: shards as long-running tasks on a LocalCluster of 2 workers."""

from __future__ import annotations

import pytest
from test_run import load_results, run_main, write_config

pytest.importorskip("distributed")


def test_local_cluster_totals_are_the_sum_of_the_shards(tmp_path, target):
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "50", "-smi", "100",
                      "--cluster", "local:2", "--max-participants", "16", "--duration", "4s")
    summary, _ = load_results(tmp_path / "out")
    assert status == 0, summary["first_error"]
    shards = summary["shards"]
    assert len(shards) == 2 and len({s["worker"] for s in shards}) == 2
    assert sum(s["sent"] for s in shards) == summary["messages_sent"] > 0
    assert target.stats()["participant_messages_stored"] == summary["messages_sent"]
    assert summary["messages_delivered"] == summary["messages_sent"]
    assert summary["chats_count"] == 16
    for shard in shards:
        assert abs(shard["clock_skew_s"]) <= 0.5 and shard["uncertainty_s"] >= 0


def test_fault_in_one_shard_stops_all(tmp_path, target_factory):
    target = target_factory("--fail-signup-after", "5")
    config = write_config(tmp_path, target.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "50", "-smi", "100",
                      "--cluster", "local:2")
    assert status == 1
    summary, _ = load_results(tmp_path / "out")
    error = summary["first_error"]
    assert error["thread"].startswith("shard-") and "@tcp://127.0.0.1:" in error["thread"]
    assert "responded with status code: 500 instead of: 201" in error["message"]
    assert "Traceback" in error["traceback"]
    assert len(summary["shards"]) == 2


def test_cluster_flags_are_checked(tmp_path, capsys):
    from esmeperf.cli import main

    assert main(["--out", str(tmp_path), "--cluster", "remote:2"]) == 2
    assert "expected local:N" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--cluster", "local:2", "--processes", "2"]) == 2
    assert "does not go with" in capsys.readouterr().err
