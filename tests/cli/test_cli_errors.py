"""Configuration mistakes are one line and exit 2 before any load; help and -q read at a glance."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esmeperf.cli.main import main


def esmeperf(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "esmeperf", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def nothing_written(folder: Path) -> bool:
    return not list(folder.rglob("*_performance_test_*"))


def test_more_organizers_than_the_config_holds(tmp_path, target, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(target.config))
    status = main(["--config", str(config), "--organizers", "3", "--out", str(tmp_path),
                   "--duration", "5s"])
    assert status == 2
    assert one_line(capsys.readouterr().err) == (
        f"esmeperf: error: --organizers 3: {config} holds 1 organizer account(s) "
        "(organizer_email and organizers[])")
    assert nothing_written(tmp_path)


def test_an_account_listed_twice_with_two_passwords(tmp_path, target, capsys):
    config = tmp_path / "config.json"
    email = target.config["organizer_email"]
    config.write_text(json.dumps({**target.config, "organizers": [
        {"email": email, "password": "another-password-of-16+"}]}))
    assert main(["--config", str(config), "--out", str(tmp_path), "--duration", "5s"]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"esmeperf: error: {config}: organizers[0] repeats the account {email!r} "
        "with another password")
    assert nothing_written(tmp_path)


def test_an_unreachable_scheduler_is_refused_at_once(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        started = time.monotonic()
        done = esmeperf("--scheduler", f"tcp://127.0.0.1:{port}", "--duration", "5s",
                        "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"esmeperf: error: cannot reach the Dask scheduler tcp://127.0.0.1:{port}: "
        "connection refused")
    assert time.monotonic() - started < 15
    assert nothing_written(tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    (["--duration", "-1s"], "argument --duration: expected a positive time span such as 30s, "
     "5m or 1h, got '-1s'"),
    (["--http-timeout", "-2"], "argument --http-timeout: must be positive, got '-2'"),
    (["--scheduler", "nowhere"], "--scheduler nowhere: expected tcp://HOST:PORT"),
])
def test_values_that_start_with_a_dash_are_checked_as_values(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"esmeperf: error: {message}"), err


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_target_args_in_both_forms(tmp_path, form):
    flag = ["--target-args", "--stats-delay 0.1"] if form == "separate" else [
        "--target-args=--stats-delay 0.1"]
    done = esmeperf("-q", "--no-plot", "-cpi", "100", "--max-participants", "2", "--duration",
                    "1s", "--out", str(tmp_path), *flag, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # -q: the final line alone on stderr.
    assert one_line(done.stderr).startswith("esmeperf: ended by duration: 2 participants")


def test_help_names_every_sweep_list_and_ends_with_examples(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("-sci MS", "-cpi MS", "-smi MS"):
        block = text.split(f"\n  {flag}, ", 1)[1].split("\n  -", 1)[0]
        assert "a comma list sweeps" in " ".join(block.split()), flag
    assert text.rstrip().splitlines()[-7] == "examples:"
    assert max(len(line) for line in text.split("options:")[0].splitlines()) <= 80


def test_an_implicit_config_json_is_named_first(tmp_path, target):
    (tmp_path / "config.json").write_text(json.dumps(target.config))
    done = esmeperf("-q", "--no-plot", "-cpi", "100", "--max-participants", "1", "--duration",
                    "1s", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    host = target.config["messenger_ws_url"].split("//")[1]
    first = done.stderr.splitlines()[0]
    assert first.endswith(f"using ./config.json found in the current directory: target {host}")


def test_a_config_with_several_mistakes_names_them_all(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"event_id": "7", "messenger_ws_url": "ws://127.0.0.1:1",
                                  "organizer_api_url": "http://127.0.0.1:1",
                                  "organizer_email": "org@example.com",
                                  "participant_api_url": "127.0.0.1:1"}))
    assert main(["--config", str(config), "--out", str(tmp_path), "--duration", "5s"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"esmeperf: error: {config}: 3 problems:",
        "  missing key 'organizer_password'",
        "  key 'event_id' must be an integer, got \"7\"",
        "  key 'participant_api_url' must be a http:// or https:// URL, got '127.0.0.1:1'"]
    assert nothing_written(tmp_path)


def test_a_mistyped_flag_is_named_with_the_one_meant(tmp_path):
    done = esmeperf("-sci", "10", "--duraton", "5s", "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done.stderr) == ("esmeperf: error: unrecognized arguments: --duraton 5s; "
                                     "did you mean --duration? (see --help)")
    assert nothing_written(tmp_path)


@pytest.mark.parametrize(("module", "args", "said"), [
    ("esmeperf.cli.main", ["--duraton=5s", "--quite"],
     "esmeperf: error: unrecognized arguments: --duraton=5s --quite; did you mean --duration "
     "for --duraton, --quiet for --quite? (see --help)"),
    ("esmeperf.cli.main", ["--smi", "100"],  # the Go test's single dash, doubled
     "esmeperf: error: unrecognized arguments: --smi 100; did you mean -smi? (see --help)"),
    ("esmeperf.cli.main", ["--frobnicate"],  # nothing alike: no guess
     "esmeperf: error: unrecognized arguments: --frobnicate (see --help)"),
    ("esmeperf.compare.command", ["a", "b", "--latncy-pct", "3"],
     "esmeperf-compare: error: unrecognized arguments: --latncy-pct 3; did you mean "
     "--latency-pct? (see --help)"),
    ("esmeperf.plot.command", ["run", "--overlayy"],
     "esmeperf-plot: error: unrecognized arguments: --overlayy; did you mean --overlay? "
     "(see --help)"),
    ("esmeperf.target.cli", ["--messenger-prot", "0"],
     "esmeperf-target: error: unrecognized arguments: --messenger-prot 0; did you mean "
     "--messenger-port? (see --help)"),
])
def test_every_command_guesses_a_mistyped_flag(capsys, module, args, said):
    import importlib

    with pytest.raises(SystemExit) as info:
        importlib.import_module(module).get_parser().parse_args(args)
    assert info.value.code == 2
    assert one_line(capsys.readouterr().err) == said
