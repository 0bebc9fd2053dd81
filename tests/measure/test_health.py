"""Honest results: generator_health's rules at their edges, and real light and overloaded runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from esmeperf.cli.main import main
from esmeperf.measure import health

SECONDS = list(range(100, 110))  # ten whole seconds of load


def figures(**changes: object) -> health.Figures:
    base: dict[str, object] = dict(
        load_seconds=SECONDS, generator_cpu_ms={s: 100 for s in SECONDS}, cores=1,
        target_cpu_ms=None, send_lateness_p99_ms=1.0, smi_ms=100.0,
        arrival_lateness_p99_ms=1.0, cpi_ms=20.0, threads_alive_max=10)
    base.update(changes)
    return health.Figures(**base)  # type: ignore[arg-type]


def test_a_quiet_run_is_not_suspect():
    verdict = health.assess(figures())
    assert verdict["suspect"] is False and verdict["reasons"] == []


@pytest.mark.parametrize(("busy_seconds", "fires"), [(1, False), (2, True)])
def test_cpu_rule_fires_at_a_fifth_of_the_seconds(busy_seconds, fires):
    cpu = {s: (900 if i < busy_seconds else 899 if i == busy_seconds else 100)
           for i, s in enumerate(SECONDS)}
    verdict = health.assess(figures(generator_cpu_ms=cpu))
    assert verdict["suspect"] is fires
    if fires:
        assert verdict["reasons"] == ["generator CPU >= 90% of 1 core(s) in 20% of seconds"]


def test_cpu_rule_counts_the_cores_the_generator_can_use():
    cpu = {s: 1700 for s in SECONDS}  # 1.7 cores: saturated for one process, not for two
    assert health.assess(figures(generator_cpu_ms=cpu, cores=1))["suspect"]
    assert not health.assess(figures(generator_cpu_ms=cpu, cores=2))["suspect"]


@pytest.mark.parametrize(("p99", "fires"), [(49.9, False), (50.0, True)])
def test_send_lateness_rule_at_half_the_interval(p99, fires):
    verdict = health.assess(figures(send_lateness_p99_ms=p99))
    assert verdict["suspect"] is fires
    assert ("send lateness p99 = 50% of the interval" in verdict["reasons"]) is fires


@pytest.mark.parametrize(("cpi", "p99", "fires"), [
    (20.0, 999.0, False), (20.0, 1000.0, True),  # 1 s floor
    (500.0, 2499.0, False), (500.0, 2500.0, True),  # five intervals above the floor
])
def test_arrival_rule(cpi, p99, fires):
    verdict = health.assess(figures(cpi_ms=cpi, arrival_lateness_p99_ms=p99))
    assert verdict["suspect"] is fires
    if fires:
        assert verdict["reasons"] == [f"arrivals {p99 / 1000:.1f} s behind the grid (p99)"]


def test_a_busy_target_is_a_finding_not_a_suspicion():
    target = {s: 950 for s in SECONDS}
    verdict = health.assess(figures(target_cpu_ms=target))
    assert verdict["suspect"] is False
    assert verdict["reasons"] == ["target-bound: the embedded target used >= 90% of its one "
                                  "core in 100% of seconds"]
    assert verdict["target_cpu_busy_share"] == 1.0


def run(tmp_path: Path, *args: str) -> tuple[int, dict, list[dict[str, str]]]:
    out = tmp_path / "out"
    status = main(["-q", "--no-plot", "--out", str(out), *args])
    summary = json.loads(next(out.glob("*_summary.json")).read_text())
    with next(out.glob("*_series.csv")).open() as f:
        rows = list(csv.DictReader(f))
    return status, summary, rows


@pytest.mark.exclusive  # the generator's health is this machine's
@pytest.mark.slow
def test_a_light_run_is_not_suspect(tmp_path):
    status, summary, rows = run(tmp_path, "-sci", "10", "-cpi", "100", "-smi", "1000",
                                "--duration", "6s")
    assert status == 0
    verdict = summary["generator_health"]
    assert verdict["suspect"] is False, verdict
    assert summary["participants_planned"] >= summary["created_participants_count"] >= 50
    late = summary["latency"]["arrival_lateness"]
    # Every arrival that sent its sign-up is timed, also one still signing up at the stop.
    started = summary["counts"]["participants_started"]
    assert summary["created_participants_count"] <= late["count"] <= started
    assert late["p99_ms"] < 1000
    assert {"arrival_lateness_p99_ms", "generator_cpu", "target_cpu"} <= set(rows[0])
    assert any(r["generator_cpu"] not in ("", "0.0") for r in rows)


@pytest.mark.slow
def test_an_overloaded_generator_is_suspect_with_reasons(tmp_path):
    status, summary, _ = run(tmp_path, "-sci", "1", "-cpi", "2", "-smi", "50",
                             "--processes", "1", "--duration", "8s")
    assert status == 0
    verdict = summary["generator_health"]
    assert verdict["suspect"] is True and verdict["reasons"], verdict
    assert summary["participants_planned"] > summary["created_participants_count"]
