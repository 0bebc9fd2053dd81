"""esmeperf-compare on real runs against the embedded target, the .hlog every run writes, and
the target's --message-delay that makes a latency regression on purpose."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import load_results, run_main

from esmeperf.compare.command import main as compare

# A light, fixed load: 20 participants, 20 messages/s each, for 3 s.
LOAD = ("-sci", "10", "-cpi", "10", "-smi", "50", "--max-participants", "20",
        "--duration", "3s", "--no-plot")


def _run(tmp_path: Path, *extra: str) -> Path:
    assert run_main(tmp_path, None, *LOAD, *extra) == 0
    return tmp_path / "out"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("base"))


@pytest.mark.exclusive
def test_two_runs_of_the_same_load_compare_as_no_regression(base_run, tmp_path, capsys):
    new = _run(tmp_path)
    capsys.readouterr()
    assert compare([str(base_run), str(new)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("verdict: no regression")
    assert "round trip p99 (ms)" in out and "REGRESSION" not in out


@pytest.mark.exclusive
def test_a_message_delay_regresses_and_the_verdict_names_the_percentile(base_run, tmp_path,
                                                                         capsys):
    new = _run(tmp_path, "--target-args=--message-delay=50ms")
    summary, _ = load_results(new)
    assert summary["latency"]["message_rtt"]["p50_ms"] >= 50  # every message was held
    capsys.readouterr()
    png = tmp_path / "compare.png"
    assert compare([str(base_run), str(new), "--png", str(png)]) == 3
    out = capsys.readouterr().out
    verdict = out.strip().splitlines()[-2]
    assert verdict.startswith("verdict: REGRESSION: ") and "round trip p99 +" in verdict
    p99_row = next(line for line in out.splitlines() if line.startswith("round trip p99"))
    assert p99_row.endswith("REGRESSION")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.exclusive
@pytest.mark.slow
def test_a_slow_target_is_a_regression_beyond_the_runs_noise(tmp_path, capsys):
    """One run a side, long enough for each run's own seconds to show its noise: a target that
    holds every message 50 ms is a regression, its interval excluding 0.

    Not asserted: that two CPU hogs beside a run are never called a regression. They slow the
    embedded target, on the same cores, far more than the generator's own lag shows (p99 +17.9
    ms against a lag +2.3 ms once), so compare saw a slower target; telling that from a slower
    build needs the machine's other load recorded in each run (closing note, issue 27)."""
    load = ("-sci", "10", "-cpi", "50", "-smi", "200", "--max-participants", "60",
            "--duration", "8s", "--no-plot", "--no-report")

    def run(name: str, *extra: str) -> Path:
        assert run_main(tmp_path / name, None, *load, *extra) == 0
        return tmp_path / name / "out"

    base = run("base")
    slow = run("slow", "--target-args=--message-delay=50ms")
    capsys.readouterr()
    assert compare([str(base), str(slow)]) == 3
    out = capsys.readouterr().out
    assert "noise: one run a side" in out
    p99_row = next(line for line in out.splitlines() if line.startswith("round trip p99"))
    assert p99_row.endswith("REGRESSION") and "[+" in p99_row  # its interval excludes 0


# -- synthetic saved runs: the noise model and the Go test's files ---------------------------
def _saved_run(folder: Path, p99: float | None, rate: int, participants: int = 100,
               go: bool = False) -> None:
    """A run's summary and message rates as esmeperf (or, with go, the Go test) writes them."""
    folder.mkdir(parents=True)
    stamp = 1_700_000_000
    summary = {"constants": {"start_chat_interval": "10ms", "create_participant_interval": "20ms",
                             "send_message_interval": "100ms", "log_ws": False},
               "description": "performance test summary", "messages_sent": rate * 10,
               "chats_count": participants, "created_participants_count": participants}
    if not go:
        summary.update({"run_id": "x", "delivered_ratio": 1.0, "achieved_rate": float(rate),
                        "latency": {"message_rtt": {"count": 1000, "p50_ms": p99 / 4,
                                                    "p90_ms": p99 / 2, "p99_ms": p99,
                                                    "max_ms": p99 * 1.5}}})
    (folder / f"{stamp}_performance_test_summary.json").write_text(json.dumps(summary))
    rates = {str(stamp - 10 + i): rate for i in range(10)}
    (folder / f"{stamp}_performance_test_message_rates.json").write_text(json.dumps(rates))


def _sweep(folder: Path, p99s: list[float]) -> Path:
    for k, p99 in enumerate(p99s, 1):
        _saved_run(folder / f"{k:02d}_sci10_cpi20_smi100_r{k}", p99, 1000)
    return folder


def test_repeats_are_judged_by_a_seeded_bootstrap(tmp_path, capsys):
    base = _sweep(tmp_path / "base", [10, 11, 12])
    assert compare([str(base), str(_sweep(tmp_path / "slow", [30, 31, 29]))]) == 3
    first = capsys.readouterr().out
    assert "bootstrap interval" in first and "95 % interval" in first
    row = next(line for line in first.splitlines() if line.startswith("round trip p99"))
    assert "[+" in row and row.endswith("REGRESSION")
    assert compare([str(base), str(tmp_path / "slow")]) == 3
    assert capsys.readouterr().out == first  # seeded: the same runs, the same interval
    # A bigger mean but runs all over the place: the interval holds 0, so not a regression,
    # and not "no regression" either: inconclusive, exit 4.
    noisy = _sweep(tmp_path / "noisy", [30, 12, 45])
    assert compare([str(_sweep(tmp_path / "wide", [10, 40, 10])), str(noisy)]) == 4
    out = capsys.readouterr().out
    assert "inconclusive (within the runs' noise)" in out
    assert out.splitlines()[-1].startswith("verdict: inconclusive: round trip p99 +")


def test_go_test_output_is_compared_on_its_rates(tmp_path, capsys):
    _saved_run(tmp_path / "go", None, 1000, go=True)
    _saved_run(tmp_path / "ours", 5.0, 900)
    assert compare([str(tmp_path / "go"), str(tmp_path / "ours")]) == 3
    out = capsys.readouterr().out
    p99_row = next(line for line in out.splitlines() if line.startswith("round trip p99"))
    assert "n/a" in p99_row and "REGRESSION" not in p99_row
    assert "achieved rate -100.0 msg/s" in out.splitlines()[-1]
    assert compare([str(tmp_path / "go"), str(tmp_path / "ours"), "--rate-pct", "15"]) == 0


@pytest.mark.parametrize("case", ["missing", "empty", "foreign", "corrupt", "png-dir", "flag"])
def test_bad_input_is_exit_2_with_one_line(tmp_path, capsys, case):
    good = tmp_path / "good"
    _saved_run(good, 5.0, 1000)
    other = tmp_path / case
    extra: list[str] = []
    if case == "empty":
        other.mkdir()
    elif case == "foreign":
        other.mkdir()
        (other / "notes.txt").write_text("hello")
    elif case == "corrupt":
        _saved_run(other, 5.0, 1000)
        next(other.glob("*_summary.json")).write_text("{not json")
    elif case == "png-dir":
        other, extra = good, ["--png", str(tmp_path / "nowhere" / "c.png")]
    elif case == "flag":
        other, extra = good, ["--latency-pct", "-1"]
    assert compare([str(good), str(other), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("esmeperf-compare: error: "), lines
    if case in ("missing", "empty", "foreign", "corrupt"):
        assert str(other) in lines[0]


# -- the target's --message-delay ------------------------------------------------------------
def test_target_message_delay_holds_messages_in_order_without_blocking(target_factory,
                                                                        client_factory):
    proc = target_factory("--message-delay", "300ms")
    esme = client_factory(proc)
    c = esme.chat()
    started = time.monotonic()
    for text in ("one", "two", "three"):
        esme.send(c["part"], "send_message", {"chatId": c["chat_id"], "message": text})
    # Held messages block nobody: the organizer's request is answered meanwhile.
    assert esme.request(c["org"], "get_chats")["type"] == "chats"
    assert time.monotonic() - started < 0.3
    assert [esme.recv(c["part"])["payload"]["content"] for _ in range(3)] == [
        "one", "two", "three"]
    assert time.monotonic() - started >= 0.3
    assert proc.stats()["participant_messages_stored"] == 3


@pytest.mark.parametrize("value", ["5x", "-1ms", "nan", ""])
def test_target_message_delay_rejects_bad_durations(capsys, value):
    from esmeperf.target.cli import get_parser

    with pytest.raises(SystemExit) as info:
        get_parser().parse_args([f"--message-delay={value}"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_an_improvement_beyond_the_noise_is_better_however_small(tmp_path, capsys):
    """A p99 0.4 ms lower in every repeat: under the 5 ms threshold a regression needs, but
    beyond the noise, so `better`, not `same` (issue 39)."""
    base = _sweep(tmp_path / "base", [1.0, 1.02, 0.98])
    faster = _sweep(tmp_path / "faster", [0.6, 0.61, 0.59])
    assert compare([str(base), str(faster)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("round trip p99"))
    assert row.endswith("better (beyond the runs' noise)"), row
    # The same runs the other way round: worse, but within the 5 ms threshold: same.
    assert compare([str(faster), str(base)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("round trip p99"))
    assert row.endswith("same"), row
