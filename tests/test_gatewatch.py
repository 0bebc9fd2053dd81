"""--abort-on-fail: the gates over a sliding window stop a run that has plainly failed."""

from __future__ import annotations

import pytest
from helpers import load_results, run_main, write_config

from esmeperf.config import Gates
from esmeperf.gatewatch import WINDOW_S, breach
from esmeperf.rundata import go_duration_ms
from esmeperf.stats import Metrics


def test_the_window_judges_only_its_own_seconds():
    metrics = Metrics()
    for second in range(1000, 1000 + WINDOW_S):  # a healthy window: 100/s, all echoed, 2 ms
        metrics.sent.add(second, 100)
        metrics.delivered.add(second, 100)
        for _ in range(100):
            metrics.rtt.record(second, 0.002)
    for _ in range(100):  # a slow second after it
        metrics.rtt.record(1000 + WINDOW_S, 3.0)
    gates = Gates(max_p99_ms=10, min_delivered_ratio=0.99, min_rate=95)
    assert breach(metrics, gates, 1000 + WINDOW_S - 1) is None
    failed = breach(metrics, gates, 1000 + WINDOW_S)
    assert failed is not None and failed["gate"] == "min_rate"  # 9 seconds of sends in it
    failed = breach(metrics, Gates(max_p99_ms=10), 1000 + WINDOW_S)
    assert failed is not None and failed["gate"] == "max_p99_ms" and failed["measured"] > 10
    metrics.sent.add(2000, 100)  # sent, never echoed: a frozen target
    failed = breach(metrics, Gates(min_delivered_ratio=0.99), 2000)
    assert failed is not None and failed["measured"] == 0.0


def test_abort_on_fail_needs_a_gate(tmp_path, capsys):
    assert run_main(tmp_path, None, "--abort-on-fail", "--duration", "1s") == 2
    err = capsys.readouterr().err
    assert "--abort-on-fail needs a gate" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_slow_target_stops_the_run_at_the_window(tmp_path, target_factory):
    slow = target_factory("--message-delay", "50ms")
    config = write_config(tmp_path, slow.config)
    status = run_main(tmp_path, config, "-sci", "10", "-cpi", "100", "-smi", "100",
                      "--max-p99", "20", "--abort-on-fail", "--duration", "60s", "--no-plot")
    summary, _ = load_results(tmp_path / "out")
    assert status == 3
    assert summary["end_reason"] == "gate" and summary["exit_status"] == 3
    assert summary["first_error"] is None
    window = [g for g in summary["gates"] if g.get("window")]
    assert window and window[0]["gate"] == "max_p99_ms" and window[0]["measured"] >= 50
    # Stopped once the window filled, long before the 60 s.
    duration_s = summary["settings"]["duration_s"]
    assert duration_s == 60 and summary["steady_rate"] > 0
    assert go_duration_ms(summary["participants_duration"]) <= (WINDOW_S + 8) * 1000
