"""--abort-on-fail: the gates over a sliding window stop a run that has plainly failed."""

from __future__ import annotations

import pytest
from helpers import load_results, run_main, write_config

from esmeperf.config import Gates, Settings
from esmeperf.engine.gatewatch import WINDOW_S, breach, describe
from esmeperf.measure.stats import Metrics
from esmeperf.results.rundata import go_duration_ms


def healthy_window(start: int = 1000) -> Metrics:
    """A healthy window: 100 messages/s, all echoed in 2 ms, the generator idle and on time."""
    metrics = Metrics()
    for second in range(start, start + WINDOW_S):
        metrics.sent.add(second, 100)
        metrics.delivered.add(second, 100)
        metrics.generator_cpu_ms.add(second, 100)
        for _ in range(100):
            metrics.message_rtt.record(second, 0.002)
            metrics.send_lateness.record(second, 0.001)
            metrics.generator_lag.record(second, 0.0002)
    return metrics


def judged(**gates: object) -> Settings:
    return Settings(smi=100, cpi=20, gates=Gates(**gates))  # type: ignore[arg-type]


def test_the_window_judges_only_its_own_seconds():
    metrics = healthy_window()
    for _ in range(100):  # a slow second after it
        metrics.message_rtt.record(1000 + WINDOW_S, 3.0)
    settings = judged(max_p99_ms=10, min_delivered_ratio=0.99, min_rate=95)
    assert breach(metrics, settings, 1000 + WINDOW_S - 1) is None
    # The first gate it breaks, in the gates' order (verdict/gates.py): the slow second's p99.
    failed = breach(metrics, settings, 1000 + WINDOW_S)
    assert failed is not None and failed["gate"] == "max_p99_ms"
    failed = breach(metrics, judged(min_rate=95), 1000 + WINDOW_S)
    assert failed is not None and failed["gate"] == "min_rate"  # 9 seconds of sends in it
    failed = breach(metrics, judged(max_p99_ms=10), 1000 + WINDOW_S)
    assert failed is not None and failed["gate"] == "max_p99_ms" and failed["measured"] > 10
    metrics.sent.add(2000, 100)  # sent, never echoed: a frozen target
    failed = breach(metrics, judged(min_delivered_ratio=0.99), 2000)
    assert failed is not None and failed["measured"] == 0.0


def test_a_breach_names_the_target_only_when_the_generator_was_healthy_in_its_window():
    metrics = healthy_window()
    for second in range(1000, 1000 + WINDOW_S):
        for _ in range(10):
            metrics.message_rtt.record(second, 0.5)  # a slow target, p99 500 ms
    failed = breach(metrics, judged(max_p99_ms=100), 1000 + WINDOW_S - 1)
    assert failed is not None and failed["attribution"] == "target"
    assert "generator" not in describe(failed)
    # The same breach while this process's threads ran 150 ms late and its CPU was saturated.
    for second in range(1000, 1000 + WINDOW_S):
        metrics.generator_cpu_ms.add(second, 900)
        for _ in range(10):
            metrics.generator_lag.record(second, 0.15)
    failed = breach(metrics, judged(max_p99_ms=100), 1000 + WINDOW_S - 1)
    assert failed is not None and failed["attribution"] == "undetermined"
    assert "generator lag p99" in " ".join(failed["generator_reasons"])
    assert "may be its limit, not the target's" in describe(failed)
    # --fail-on-suspect over the window: the generator's own gate, naming the generator.
    failed = breach(metrics, judged(fail_on_suspect=True), 1000 + WINDOW_S - 1)
    assert failed is not None and failed["gate"] == "generator_healthy"
    assert failed["attribution"] == "generator"


def test_abort_on_fail_needs_a_gate(tmp_path, capsys):
    assert run_main(tmp_path, None, "--abort-on-fail", "--duration", "1s") == 2
    err = capsys.readouterr().err
    assert "--abort-on-fail needs a gate" in err and len(err.strip().splitlines()) == 1


@pytest.mark.exclusive
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
