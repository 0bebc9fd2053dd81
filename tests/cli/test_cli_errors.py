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
