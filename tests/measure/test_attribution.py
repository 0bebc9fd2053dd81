"""Who a verdict names (issue 27): never the target for the generator's own limits.

Real sockets and a real target: an answer left unread in a socket is the generator's stall; a
generator frozen by a thread that holds the GIL ends suspect, its intended-time latency far above
its round trip, and any stall it trips names the generator, not the target.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import load_results, write_config
from hypothesis import given
from hypothesis import strategies as st

from esmeperf.cli.main import main
from esmeperf.config import Settings
from esmeperf.measure import attribution
from esmeperf.measure.lag import RecentLoad
from esmeperf.measure.stall import StallWatch
from esmeperf.measure.stats import settled_second
from esmeperf.scenario.participant import echo_times
from esmeperf.transport import protocol
from esmeperf.transport.connection import Connection

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="FIONREAD and libc's usleep through ctypes: Linux")


class Waiter:
    """A worker waiting for the answer to one message sent on a real connection."""

    name = "participant-1"

    def __init__(self, conn: Connection, sent_ns: int) -> None:
        self.conn, self.sent_ns = conn, sent_ns

    def oldest_unanswered(self) -> tuple[int, str] | None:
        return self.sent_ns, "message number 1"

    def connection(self) -> Connection | None:
        return self.conn


def wait_until(condition, timeout: float = 5.0) -> None:
    """Until condition() holds (a bounded wait on a condition, not a sleep)."""
    deadline, pause = time.monotonic() + timeout, threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        pause.wait(0.01)


@linux_only
@pytest.mark.exclusive  # who limited a run depends on the machine's load
def test_an_answer_left_unread_in_the_socket_is_the_generators_stall(esme):
    chat = esme.chat()
    conn = Connection.open(esme.config["messenger_ws_url"], chat["p_token"], 5.0, newline=False)
    try:
        sent_ns = time.time_ns()
        conn.send(protocol.send_message(chat["chat_id"], "message number 1"))
        wait_until(lambda: (conn.unread_bytes() or 0) > 0)  # the echo, in the kernel's queue
        watch = StallWatch()
        watch.add(Waiter(conn, sent_ns))
        oldest = watch.oldest(now_ns=sent_ns + 12_000_000_000)  # as if 12 s later
        assert oldest is not None and oldest.age_s == pytest.approx(12.0)
        quiet = RecentLoad().window(0, 10)
        verdict = attribution.judge_stall(oldest, 10.0, quiet, cores=1)
        assert verdict.who == "generator", verdict
        assert "the generator, not the target" in verdict.text
        assert f"({oldest.unread} bytes)" in verdict.text and attribution.REMEDY in verdict.text
        # Read: nothing waits any more, and a healthy generator then blames the target...
        assert conn.recv(5.0) is not None
        oldest = watch.oldest(now_ns=sent_ns + 12_000_000_000)
        assert oldest is not None and oldest.unread == 0
        verdict = attribution.judge_stall(oldest, 10.0, quiet, cores=1)
        assert verdict.who == "target" and verdict.text.endswith("the target stopped answering")
        # ... but one whose threads ran 0.3 s late in every second cannot tell.
        busy = RecentLoad()
        for second in range(100, 110):
            busy.lag(second, 300.0)
        verdict = attribution.judge_stall(oldest, 10.0, busy.window(100, 109), cores=1)
        assert verdict.who == "undetermined" and "cannot tell" in verdict.text
    finally:
        conn.abort()


@given(sent=st.integers(0, 2**62), late=st.integers(0, 10**10), rtt=st.integers(0, 10**10))
def test_the_time_from_intended_is_the_round_trip_plus_the_lateness(sent, late, rtt):
    round_trip, from_intended = echo_times(sent, late, sent + rtt)
    assert round_trip == rtt / 1e9
    assert from_intended == pytest.approx(round_trip + late / 1e9, abs=1e-9)
    assert from_intended >= round_trip


def test_a_live_view_counts_only_settled_seconds():
    now = 1000.3
    # Batched reads (smi up to 1000 ms) take an echo in up to an interval late.
    assert settled_second(Settings(smi=100), now) == 998
    assert settled_second(Settings(smi=1000), now) == 998
    assert settled_second(Settings(smi=5000), now) == 999  # each frame wakes its reader
    assert settled_second(Settings(smi=100, reply=True), now) == 999
    assert settled_second(Settings(smi=100, processes=2), now) == 997  # shards' deltas


def hold_the_gil(seconds: float) -> None:
    """Freeze every thread of this process: libc's usleep through ctypes.PyDLL, which keeps
    the GIL for the whole call (as a long C call or a garbage collection would)."""
    ctypes.PyDLL(None).usleep(int(seconds * 1_000_000))


@linux_only
@pytest.mark.slow
def test_a_frozen_generator_is_named_not_the_target(tmp_path, target, capsys):
    """The GIL held 1.6 s three times while the target answers on: the generator is suspect
    (its lag), what participants lived through (from intended) is far above the round trip (the
    kernel timed the echoes), and a stall, if the stall check trips, names the generator."""
    config = write_config(tmp_path, target.config)
    done = threading.Event()

    def freeze() -> None:
        wait_until(lambda: target.stats()["participant_messages_stored"] >= 50, timeout=20)
        for _ in range(3):
            hold_the_gil(1.6)
            if done.wait(0.8):
                return

    freezer = threading.Thread(target=freeze, name="freezer", daemon=True)
    freezer.start()
    status = main(["-q", "--no-plot", "--out", str(tmp_path / "out"), "--config", str(config),
                   "-sci", "10", "-cpi", "50", "-smi", "100", "--max-participants", "10",
                   "--duration", "9s", "--stall-timeout", "1", "--echo-timeout", "1",
                   "--fail-on-suspect"])
    done.set()
    freezer.join(10)
    summary, _ = load_results(tmp_path / "out")
    err = capsys.readouterr().err
    health = summary["generator_health"]
    assert health["suspect"] and any("generator lag p99" in r for r in health["reasons"])
    assert summary["attribution"]["limited_by"] in ("generator", "undetermined"), summary[
        "attribution"]
    stalled = summary["end_reason"] == "stall"
    if stalled:
        error = summary["first_error"]
        assert error["attribution"] in ("generator", "undetermined"), error
        assert "the target stopped answering" not in error["message"]
    # A suspect run fails --fail-on-suspect's gate (exit 3) unless an error ended it first.
    assert status == (1 if stalled else 3), (status, summary["end_reason"])
    latency = summary["latency"]
    assert latency["message_rtt_from_intended"]["max_ms"] >= 1000
    assert latency["message_rtt_from_intended"]["p99_ms"] > 3 * latency["message_rtt"]["p99_ms"]
    assert latency["generator_lag"]["max_ms"] >= 1000
    assert any("SUSPECT" in w for w in summary["warnings"])
    assert "SUSPECT" in err.strip().splitlines()[-1] or stalled


@pytest.mark.exclusive  # who limited a run depends on the machine's load
def test_the_intended_time_latency_adds_up_in_a_real_run(tmp_path):
    """It holds every echo (its round trip plus its lateness), every skipped slot and every
    unconfirmed message: its total is the round trips' plus the lateness's, and more by the
    skipped and unconfirmed, to the microsecond each value is recorded in. The embedded
    target's own handling time is in the series beside the round trip, its share in the
    summary."""
    assert main(["-q", "--no-plot", "--out", str(tmp_path / "out"), "-sci", "10", "-cpi", "50",
                 "-smi", "200", "--max-participants", "4", "--duration", "3s"]) == 0
    summary, _ = load_results(tmp_path / "out")
    latency = summary["latency"]
    rtt, late = latency["message_rtt"], latency["send_lateness"]
    intended = latency["message_rtt_from_intended"]
    missed, unconfirmed = summary["messages_missed"], summary["messages_unconfirmed"]
    assert intended["count"] == rtt["count"] + missed + unconfirmed
    assert late["count"] == rtt["count"] + unconfirmed == summary["messages_sent"]

    def total(entry: dict) -> float:
        return entry["mean_ms"] * entry["count"]

    tolerance = 0.003 * intended["count"]  # 1 us each value, and the means' rounding
    assert total(intended) >= total(rtt) + total(late) - tolerance
    if not missed and not unconfirmed:  # the usual case: echoes alone, exactly
        assert total(intended) == pytest.approx(total(rtt) + total(late), abs=tolerance)
    rows = Path(next((tmp_path / "out").glob("*_series.csv"))).read_text().splitlines()
    header = rows[0].split(",")
    assert {"rtt_from_intended_p99_ms", "generator_lag_p99_ms",
            "target_handling_p99_ms"} <= set(header)
    handling = [r.split(",")[header.index("target_handling_p99_ms")] for r in rows[1:]]
    assert any(h for h in handling)  # the embedded target's own time, beside the round trip
    assert summary["attribution"]["limited_by"] == "none"
    assert summary["attribution"]["target_share_of_rtt_p99"] is not None
    json.dumps(summary)  # plain JSON all through
