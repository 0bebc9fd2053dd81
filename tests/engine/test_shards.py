"""Shards, in local processes (--processes 2) or on a Dask LocalCluster (--cluster local:2):
totals are exactly the sums of the shards', and the first error in any shard stops them all."""

from __future__ import annotations

import importlib.util

import pytest
from helpers import load_results, run_main, stored_participant_messages, write_config

from esmeperf.cli.main import main
from esmeperf.measure.health import clock_warnings

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
        # Each shard's messages came by its own link to the client, not the scheduler's queue.
        assert [s["link"] for s in shards] == ["direct", "direct"]
    assert all(s["delta_gap_max_s"] < 5 for s in shards)  # every half second, near enough


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
    # Six sign-ups succeeded; a participant counts as created once its chat request is filed,
    # and one still signing up when the 7th failed files none (no request after the stop).
    # What the run counts is what the target has: exactly.
    stats = target.stats()
    assert stats["participants"] == 6
    assert summary["created_participants_count"] == stats["chat_requests_total"] <= 6
    assert len(summary["shards"]) == 2


def test_shard_flags_are_checked(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--cluster", "remote:2"]) == 2
    assert "expected local:N" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--cluster", "local:2", "--processes", "2"]) == 2
    assert "does not go with" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["soon", "0.5", "0", "-3", "nan", "7200"])
def test_a_bad_lease_is_a_usage_error(tmp_path, capsys, monkeypatch, value):
    pytest.importorskip("distributed")
    monkeypatch.setenv("ESMEPERF_DASK_LEASE", value)
    # Checked before any connection: the scheduler's address need not listen.
    assert main(["--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err == f"esmeperf: error: ESMEPERF_DASK_LEASE={value!r}: expected seconds from 1 " \
                  "to 3600\n"


def test_clock_skew_past_a_second_is_a_warning():
    shards = [{"worker": "tcp://10.0.0.2:4000", "clock_skew_s": 0.999, "uncertainty_s": 0.002},
              {"worker": "tcp://10.0.0.3:4000", "clock_skew_s": -1.25, "uncertainty_s": 0.002},
              {"worker": "", "shard": 2}]  # a --processes shard: no clock of its own
    assert clock_warnings(shards) == [
        "the clock of Dask worker tcp://10.0.0.3:4000 is -1.250 s off this client's "
        "(+/- 0.002 s): its per-second counts fall in other seconds than the client's"]


def test_a_local_cluster_keeps_off_dasks_default_port():
    """Dask's scheduler serves HTTP on 8787 unless told otherwise. A LocalCluster made here serves
    it on an ephemeral loopback port, so two runs (or a user's own cluster) never collide: CI saw
    one run's cluster refuse to start because another test's held 8787."""
    pytest.importorskip("distributed")
    import socket

    from esmeperf.engine.dask import DaskCluster

    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))  # a cluster that wanted 8787 would have to move
    except OSError:
        pass  # already taken elsewhere: the cluster must not want it either way
    with holder, DaskCluster(local_workers=1) as cluster:
        port = cluster.client.scheduler_info()["services"]["dashboard"]
        assert port != 8787
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # it listens on loopback
