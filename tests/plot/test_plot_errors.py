"""esmeperf-plot's bad input: exit 2, one line naming what is wrong, nothing drawn or left running.

And the outputs it does draw: `-o DIR` draws into the directory, `-o NAME.png` names one PNG.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import children

from esmeperf.plot.command import main

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = "_performance_test_summary.json"
RATES = "_performance_test_message_rates.json"
SERIES = "_performance_test_series.csv"


def go_run(folder: Path, stamp: int = 1700000100) -> Path:
    """A run as ESME's Go test leaves it: summary and message rates, original keys only."""
    folder.mkdir(parents=True, exist_ok=True)
    rates = {str(1700000000 + s): 40 * min(s, 5) + 3 for s in range(12)}
    summary = {"constants": {"start_chat_interval": "10ms", "create_participant_interval": "20ms",
                             "send_message_interval": "100ms", "log_ws": False},
               "description": "performance test summary",
               "participants_time_started": "2023-11-14T22:13:20.5+00:00",
               "participants_duration": "11.500000001s", "messages_sent": sum(rates.values()),
               "chats_count": 12, "created_participants_count": 12}
    (folder / f"{stamp}{SUMMARY}").write_text(json.dumps(summary, indent=2))
    (folder / f"{stamp}{RATES}").write_text(json.dumps(rates, indent=2))
    return folder


def files(root: Path) -> dict[str, int]:
    """Every file under root with its modification time: a write shows as a difference."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file()}


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The current directory, holding one Go run in ./run and a stray text file."""
    monkeypatch.chdir(tmp_path)
    go_run(tmp_path / "run")
    (tmp_path / "notes.txt").write_text("hello\n")
    return tmp_path


def refused(argv: list[str], root: Path, capsys) -> str:
    """Run esmeperf-plot expecting exit 2; return its one stderr line (asserting the rest)."""
    before = files(root)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
    assert files(root) == before  # nothing drawn
    assert children() == []
    return err.rstrip("\n")


@pytest.mark.parametrize("argv,message", [
    (["-o", "gone/x.png", "--overlay", "run"], "-o gone/x.png: no such directory: gone"),
    (["-o", "out.txt", "--overlay", "run"],
     "-o out.txt: not a .png file name (give NAME.png or a directory)"),
    (["--overlay", "--scatter", "-o", "both.png", "run"],
     "-o both.png: --overlay and --scatter draw 2 PNGs: give -o a directory"),
    (["-o", "x.png", "run", "run2"], "-o x.png: 2 runs make 2 PNGs: give -o a directory"),
    (["-o", "newdir/", "--scatter", "run"], "-o newdir/: no such directory"),
    (["--bogus", "run"], "esmeperf-plot: error: unrecognized arguments: --bogus (see --help)"),
    ([], "esmeperf-plot: error: the following arguments are required: PATH (see --help)"),
])
def test_bad_output_is_one_line_exit_2(work, capsys, argv, message):
    go_run(work / "run2", 1700000200)
    line = refused(argv, work, capsys)
    assert line == (message if message.startswith("esmeperf-plot:")
                    else f"esmeperf-plot: error: {message}")


def test_missing_path_and_stray_file_say_different_things(work, capsys):
    assert refused(["missing.json"], work, capsys) == (
        "esmeperf-plot: error: missing.json: no such file or directory")
    assert refused(["run", "nowhere"], work, capsys) == (
        "esmeperf-plot: error: nowhere: no such file or directory")
    assert refused(["notes.txt"], work, capsys) == (
        "esmeperf-plot: error: notes.txt: not an esmeperf or ESME performance-test file (give "
        "a run directory or its *_performance_test_summary.json, "
        "*_performance_test_message_rates.json or *_performance_test_series.csv)")
    assert refused([str(work)], work, capsys) == (
        f"esmeperf-plot: error: {work}: no *_performance_test_summary.json or "
        "*_performance_test_message_rates.json in this directory")


@pytest.mark.parametrize("name,content,message", [
    (SUMMARY, "{not json", "not valid JSON (Expecting property name enclosed in double quotes "
     "at line 1 column 2)"),
    (SUMMARY, "[1, 2]", "not a performance-test summary (a JSON object expected)"),
    (SUMMARY, json.dumps({"constants": {"start_chat_interval": "10 ms",
                                        "create_participant_interval": "20ms",
                                        "send_message_interval": "1s"}}),
     "constants.start_chat_interval: not a Go duration: '10 ms'"),
    (RATES, '{"1700000000": "many"}', "not a message-rates object: '1700000000': 'many'"),
    (RATES, b"\xff\xfe", "not a text file (not UTF-8)"),
    (RATES, "", "not valid JSON (Expecting value at line 1 column 1)"),
    (SERIES, "second,sent\n1700000000,3\n1700000001,x\n", "line 3: sent 'x' is not a whole number"),
    (SERIES, "when,what\n1,2\n", "not a series CSV (no second or sent column)"),
])
def test_corrupt_file_is_named(work, capsys, name, content, message):
    bad = work / "bad"
    go_run(bad, 1700000300)
    target = bad / f"1700000300{name}"
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    assert refused(["bad"], work, capsys) == (
        f"esmeperf-plot: error: bad/1700000300{name}: {message}")


def test_unwritable_run_directory_is_refused(work, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only directories")
    (work / "run").chmod(0o555)
    try:
        assert refused(["run"], work, capsys) == (
            "esmeperf-plot: error: cannot write run/1700000100_performance_test_rates.png: "
            "directory run is not writable")
    finally:
        (work / "run").chmod(0o755)


def test_out_directory_takes_every_png(work, capsys):
    (work / "pngs").mkdir()
    assert main(["--overlay", "--scatter", "-o", "pngs", "run"]) == 0
    assert capsys.readouterr() == ("pngs/overlay.png\npngs/scatter.png\n", "")
    go_run(work / "run2", 1700000200)
    assert main(["-o", "pngs", "run", "run2", "run"]) == 0  # a run named twice: drawn once
    assert capsys.readouterr() == ("pngs/1700000100_performance_test_rates.png\n"
                                   "pngs/1700000200_performance_test_rates.png\n", "")
    assert main(["-o", "one.PNG", "--scatter", "run"]) == 0
    assert capsys.readouterr() == ("one.PNG\n", "")
    assert sorted(files(work)) == sorted([
        "notes.txt", "one.PNG", "pngs/overlay.png", "pngs/scatter.png",
        "pngs/1700000100_performance_test_rates.png",
        "pngs/1700000200_performance_test_rates.png",
        f"run/1700000100{SUMMARY}", f"run/1700000100{RATES}",
        f"run2/1700000200{SUMMARY}", f"run2/1700000200{RATES}"])
    assert (work / "one.PNG").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert children() == []


def test_the_installed_command_prints_no_traceback(work):
    """The launcher a user runs: the same one line and exit 2, from a fresh interpreter."""
    done = subprocess.run([sys.executable, str(ROOT / "bin" / "esmeperf-plot"), "-o",
                           "/missing/dir/x.png", "--overlay", "run"], cwd=work,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr == ("esmeperf-plot: error: -o /missing/dir/x.png: no such directory: "
                           "/missing/dir\n")
    assert done.stdout == ""
    assert sorted(files(work)) == ["notes.txt", f"run/1700000100{RATES}",
                                   f"run/1700000100{SUMMARY}"]
    assert children() == []
