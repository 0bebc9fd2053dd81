"""A shard whose final report never comes (issue 28): nothing it measured is lost with it.

A real --processes 2 run against a real target; one shard process is frozen (SIGSTOP) while the
load runs, so its final report can never come. Its deltas, merged as they came, are in the
summary, the series and the histograms; the summary names it lost, with what is missing and
from which second; the run still ends within its bounds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import pytest
from helpers import load_results, own_children, write_config

from esmeperf.cli import main

pytestmark = [pytest.mark.exclusive,  # a bound on how fast a shard's loss ends the run
              pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="SIGSTOP and /proc: Linux")]


def shard_processes() -> list[int]:
    """This test process's --processes shards (multiprocessing's spawned children)."""
    return own_children(b"multiprocessing.spawn")


def test_a_shard_without_its_final_report_keeps_what_it_measured(tmp_path, target):
    config = write_config(tmp_path, target.config)
    frozen: list[int] = []
    ready = threading.Event()

    def freeze_one() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stored = target.stats()["participant_messages_stored"]
            shards = shard_processes()
            if stored >= 40 and len(shards) == 2:
                frozen.append(shards[-1])
                os.kill(shards[-1], signal.SIGSTOP)
                break
            ready.wait(0.1)
        ready.set()

    watcher = threading.Thread(target=freeze_one, name="freezer", daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        status = main(["-q", "--no-plot", "--out", str(tmp_path / "out"), "--config",
                       str(config), "-sci", "10", "-cpi", "50", "-smi", "200",
                       "--max-participants", "10", "--processes", "2", "--duration", "5s",
                       "--stall-timeout", "0", "--echo-timeout", "1", "--join-timeout", "1"])
    finally:
        ready.wait(30)
        for pid in frozen:  # whatever happened, leave no stopped process behind
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    elapsed = time.monotonic() - started
    assert frozen, "no shard to freeze"
    summary, rates = load_results(tmp_path / "out")
    # The run ended by its duration: a shard lost after the stop is a warning, not its error.
    assert status == 0 and summary["end_reason"] == "duration", summary["first_error"]
    assert elapsed < 5 + 25, elapsed  # the frozen shard held the end up by its bound only
    shards = {s["shard"]: s for s in summary["shards"]}
    lost = [s for s in shards.values() if s["lost"]]
    assert len(lost) == 1, summary["shards"]
    (gone,) = lost
    assert gone["sent"] > 0, gone  # what its deltas brought is kept
    assert gone["cpu_s"] is None and gone["alive"] is None  # unknown, not zero
    assert f"shard {gone['shard']}'s final report never came" in gone["missing"]
    assert gone["last_second"] and str(gone["last_second"]) in gone["missing"]
    assert any(f"shard {gone['shard']}" in w and "never came" in w
               for w in summary["warnings"]), summary["warnings"]
    # Its messages are in the totals, the rates and the histograms: all add up.
    assert sum(s["sent"] for s in shards.values()) == summary["messages_sent"]
    assert sum(rates.values()) == summary["messages_sent"]
    assert summary["latency"]["message_rtt"]["count"] == summary["messages_delivered"]
    json.dumps(summary)
