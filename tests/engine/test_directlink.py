"""A Dask shard's own link to the client (engine/directlink.py), on real loopback sockets, and
what the client's side makes of a slow shard: slow is not lost (issue 39)."""

from __future__ import annotations

import socket
import threading
import time

from esmeperf.engine.directlink import BEAT, ClientEnd, ShardEnd, client_address
from esmeperf.engine.life import Life
from esmeperf.engine.shards import Alive, Command, Delta, ReportSink
from esmeperf.measure import health
from esmeperf.measure.stats import Metrics

BOUND_S = 5.0  # generous: a busy 2-core machine


def _until(condition, what: str) -> None:
    """Wait, bounded, for a condition another thread makes true."""
    done = threading.Event()
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {BOUND_S} s: {what}"
        done.wait(0.01)


def test_messages_and_commands_go_both_ways():
    metrics = Metrics()
    sink = ReportSink(Life(), metrics, count=1)
    client = ClientEnd("127.0.0.1", sink, lambda index: f"@worker-{index}", silent_s=BOUND_S)
    beats, commands = [], []
    shard = ShardEnd(client.address, client.key, 0, on_beat=lambda: beats.append(1),
                     on_command=commands.append)
    try:
        _until(shard.tried.is_set, "the shard connected")  # in a thread of its own
        assert shard.up
        _until(lambda: client.linked(0), "the shard greeted")
        shard_metrics = Metrics()
        shard_metrics.sent.add(1000, 7)
        assert shard.send(Delta(0, shard_metrics.drain()))
        _until(lambda: metrics.sent.total() == 7, "its delta merged")
        client.send(BEAT)
        client.command(Command.STOP)
        _until(lambda: beats and commands, "the beat and the command")
        assert commands == [Command.STOP]
        assert client.greeted(0)
    finally:
        shard.close()
        client.close()


def test_a_connection_without_the_runs_key_is_refused():
    sink = ReportSink(Life(), Metrics(), count=1)
    client = ClientEnd("127.0.0.1", sink, str, silent_s=BOUND_S)
    try:
        stranger = ShardEnd(client.address, b"not the key" * 3, 0, on_beat=lambda: None,
                            on_command=lambda _: None)
        # The greeting is read and refused: the stranger's link is closed, nothing merged.
        with socket.create_connection(client.address, timeout=BOUND_S) as probe:
            probe.recv(16)
            probe.sendall(b"x" * 36)
            probe.settimeout(BOUND_S)
            assert probe.recv(1) == b""  # closed on us
        assert not client.linked(0) and not client.greeted(0)
        stranger.close()
    finally:
        client.close()


def test_no_link_is_not_fatal():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        address = free.getsockname()  # nothing listens there
    shard = ShardEnd(address, b"k" * 32, 0, on_beat=lambda: None, on_command=lambda _: None)
    _until(shard.tried.is_set, "the connect refused")
    assert not shard.up and shard.send(Alive(0)) is False  # the caller uses the scheduler


def test_the_client_listens_where_it_reaches_the_scheduler():
    assert client_address("tcp://127.0.0.1:8786") == "127.0.0.1"


def test_a_beating_shard_with_late_deltas_is_slow_not_silent_and_health_says_so():
    metrics, life = Metrics(), Life()
    sink = ReportSink(life, metrics, count=1)
    delta = Metrics()
    delta.sent.add(1000, 1)
    sink.accept(Delta(0, delta.drain()))
    sink._last_delta[0] -= 6.0  # noqa: SLF001 - its previous delta, 6 s ago
    sink.accept(Alive(0))
    assert sink.silent_for(0, time.monotonic()) < 1.0  # its beat came: alive
    delta.sent.add(1006, 1)
    sink.accept(Delta(0, delta.drain()))
    sink.give_up(0, "host")  # (a report of some kind, so seal() has it)
    (report,) = sink.seal()
    assert report.delta_gap_max_s is not None and report.delta_gap_max_s >= 6.0
    assert report.sent == 2 == metrics.sent.total()  # adds up, delta after delta
    verdict = health.assess(health.Figures(
        load_seconds=list(range(1000, 1010)), generator_cpu_ms={}, cores=2,
        target_cpu_ms=None, send_lateness_p99_ms=None, smi_ms=500,
        arrival_lateness_p99_ms=None, cpi_ms=20, threads_alive_max=0,
        shard_delta_gap_s=report.delta_gap_max_s))
    assert verdict["suspect"] and "a shard's deltas came" in " ".join(verdict["reasons"])
