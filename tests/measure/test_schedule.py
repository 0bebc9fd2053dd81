"""--stages: ramping arrival rates (k6's ramping-arrival-rate), arithmetic and a real run."""

from __future__ import annotations

import pytest
from helpers import load_results, run_main, write_config

from esmeperf.cli.main import main
from esmeperf.measure.schedule import Schedule, parse_stages, take, total


def test_the_issues_example_is_150_arrivals():
    stages = parse_stages("5s:10,10s:10,5s:0")
    assert stages == ((5.0, 10.0), (10.0, 10.0), (5.0, 0.0))
    assert total(stages) == 150
    offsets = list(Schedule(stages=stages).offsets())
    assert len(offsets) == 150 and offsets == sorted(offsets)
    assert offsets[0] == pytest.approx(1.0)  # the ramp 0 -> 10/s reaches 1 arrival at 1 s
    assert offsets[-1] == pytest.approx(20.0)


@pytest.mark.parametrize(("text", "count", "first"), [
    ("1s:0,2s:3", 3, 1 + (2 / 1.5) ** 0.5),  # a 0-rate stage waits; then a ramp 0 -> 3/s
    ("3s:2", 3, 3 ** 0.5),  # one stage: ramp 0 -> 2/s, 3 arrivals, the first at sqrt(3)
    ("10s:0.25", 1, 80 ** 0.5),  # rounding down: 1.25 arrivals is 1
    ("1s:4,2s:4", 10, 0.5 ** 0.5),  # a flat stage after a ramp: 2 + 8
])
def test_stage_arithmetic_at_the_edges(text, count, first):
    schedule = Schedule(stages=parse_stages(text))
    offsets = list(schedule.offsets())
    assert len(offsets) == count == total(parse_stages(text))
    assert offsets[0] == pytest.approx(first)
    assert all(schedule.arrivals_by(t) == k for k, t in enumerate(offsets, 1))


def test_shards_split_the_schedule_exactly():
    offsets = list(Schedule(stages=parse_stages("2s:10,2s:10")).offsets())
    shards = [list(take(iter(offsets), first, 3)) for first in (1, 2, 3)]
    numbers = sorted(n for shard in shards for n, _ in shard)
    assert numbers == list(range(1, len(offsets) + 1))
    assert all(offset == offsets[n - 1] for shard in shards for n, offset in shard)


@pytest.mark.parametrize(("text", "words"), [
    ("5s", "expected DURATION:RATE"),
    ("5s:-1", "a rate must be 0 or more"),
    ("0s:5", "every stage lasts 0 s"),
    ("-1s:5", "positive time span"),
    ("5s:0,2s:0", "every stage has rate 0"),
])
def test_bad_stages_are_one_line(tmp_path, capsys, text, words):
    assert main(["--stages", text, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_cpi_and_stages_together_are_refused(tmp_path, capsys):
    assert main(["-cpi", "20", "--stages", "5s:10", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "esmeperf: error: give -cpi or --stages, not both (--stages replaces -cpi's grid)")


@pytest.mark.slow
def test_a_staged_run_creates_its_schedule_and_ends_after_it(tmp_path, target):
    config = write_config(tmp_path, target.config)
    # 10 + 20 + 10 = 40 arrivals in 6 s; the run lasts the stages (no --duration).
    status = run_main(tmp_path, config, "-sci", "10", "-smi", "500", "--no-plot",
                      "--stages", "2s:10,2s:10,2s:0")
    summary, _ = load_results(tmp_path / "out")
    assert status == 0, summary["first_error"]
    assert summary["end_reason"] == "duration"
    assert summary["participants_planned"] == 40
    assert 38 <= summary["created_participants_count"] <= 40  # +-5 %
    assert summary["settings"]["stages"] == [[2.0, 10.0], [2.0, 10.0], [2.0, 0.0]]
    # Arrivals are judged against the stages' fastest rate (10/s: 5 x 100 ms < the 1 s floor).
    assert summary["generator_health"]["thresholds"]["arrival_late_ms"] == 1000


def test_a_0s_stage_is_a_sudden_step():
    """`0s:10,10s:10`: 10 arrivals a second from the first instant, not a ramp from 0; and a
    step in the middle changes the rate at once (issue 39)."""
    step = Schedule(stages=parse_stages("0s:10,10s:10"))
    offsets = list(step.offsets())
    assert len(offsets) == 100 == total(parse_stages("0s:10,10s:10"))
    assert offsets[:3] == pytest.approx([0.1, 0.2, 0.3])
    ramp = list(Schedule(stages=parse_stages("10s:10")).offsets())
    assert len(ramp) == 50 and ramp[0] == pytest.approx(2 ** 0.5)  # a ramp starts slowly
    middle = Schedule(stages=parse_stages("0s:1,5s:1,0s:20,1s:20"))
    assert middle.arrivals_by(5.0) == 5 and middle.arrivals_by(6.0) == 25
    assert Schedule(stages=parse_stages("0s:1,5s:1,0s:20,1s:20")).length == 6.0
