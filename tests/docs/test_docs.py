"""Every command the README and docs/ show, run as written (only --duration, or a benchmark's
own length, shortened where it starts load).

Their shell blocks are the user's first contact with esmeperf: each command in them must have a
test here, or be run verbatim by .ci/run (the README's two quick-start commands). A command added
to a page without either fails `test_every_command_shown_is_covered`.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import command, doc_commands, readme_commands, scripts_env, shorten

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RESULT_SUFFIXES = ("_summary.json", "_message_rates.json", "_series.csv", "_rates.png")
# Generous bounds for the whole command: a slow shared machine, never a reason to hang CI.
COMMAND_TIMEOUT = 240.0


def pause(seconds: float) -> None:
    """A short pause between checks of a condition only another process can change."""
    select.select([], [], [], seconds)


def sh(cmd: str, cwd: Path, env: dict[str, str] | None = None,
       timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run one README command line in a shell, with this interpreter's scripts on PATH."""
    done = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=scripts_env(env), capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{cmd}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def result_files(folder: Path) -> set[str]:
    return {suffix for suffix in RESULT_SUFFIXES
            for _ in folder.glob(f"*_performance_test{suffix}")}


# Which test runs each README command; the quick start is .ci/run's (verbatim, see below).
COVERED = {
    "python3 -m pip install . && python3 -m esmeperf": ".ci/run",
    "python3 -m pip install -e '.[test]' && python3 -m pytest": ".ci/run",
    "python3 -m esmeperf -sci 10 -cpi 20 -smi 100 --config": "test_real_deployment_command",
    "dask scheduler": "test_multi_machine.py::test_readme_recipe",
    "dask worker": "test_multi_machine.py::test_readme_recipe",
    "python3 -m esmeperf -sci 10 -cpi 5": "test_multi_machine.py::test_readme_recipe",
    "python3 -m esmeperf -sci 10 -cpi 20 -smi 100,1000,10000 --duration": "test_plots_command",
    "python3 -m esmeperf -sci 10 -cpi 20 -smi 100,1000,10000 --repeat": "test_sweep_and_plots",
    "esmeperf-plot": "test_sweep_and_plots",
    "python3 -m pip wheel": "test_man_page_command",
    "bin/esmeperf-target": "test_target_from_a_checkout",
    "python3 -m pip install -e '.[lint]'": "test_lint_command",
    "python3 -m esmeperf -sci 10 -cpi 20 -smi 1000 --duration 20s --out base":
        "test_compare_commands",
    "python3 -m esmeperf -sci 10 -cpi 20 -smi 1000 --duration 20s --out slower":
        "test_compare_commands",
    "esmeperf-compare": "test_compare_commands",
    "python3 -m esmeperf -sci 10 -cpi 20 -smi 1000 --duration 30m --metrics-port":
        "test_live_metrics_command",
    "python3 -m esmeperf -sci 5 -smi 1000 --stages": "test_surge_command",
    "python3 -m esmeperf --find-capacity": "test_capacity_command",
    "python3 -m esmeperf -sci 10 -cpi 20 -smi 100 --duration 10m --max-p99":
        "test_abort_on_fail_command",
    "python3 -m esmeperf -sci 10 -cpi 20 -smi 100 --duration 30s --portable":
        "test_portable_command",
    "python3 -m esmeperf -sci 10 -cpi 20 -smi 100 --duration 30s": "test_overloaded_command",
    "python3 bench/target_throughput.py": "test_target_throughput_commands",
}


def test_every_command_shown_is_covered():
    commands = doc_commands()
    assert len(commands) >= 10, commands
    for cmd in commands:
        owners = [name for prefix, name in COVERED.items() if cmd.startswith(prefix)]
        assert owners, f"README command with no test: {cmd}"
        if owners == [".ci/run"]:
            assert cmd in (ROOT / ".ci" / "run").read_text(), f".ci/run does not run: {cmd}"


def test_quick_start_is_the_first_two_blocks():
    first, second = readme_commands()[:2]
    assert first.startswith("python3 -m pip install . && python3 -m esmeperf ")
    assert second == "python3 -m pip install -e '.[test]' && python3 -m pytest"


@pytest.mark.slow
def test_real_deployment_command(tmp_path, target):
    (tmp_path / "config.json").write_text(json.dumps(target.config))
    sh(shorten(command("python3 -m esmeperf -sci 10 -cpi 20 -smi 100 --config")), tmp_path)
    assert result_files(tmp_path) == set(RESULT_SUFFIXES)


@pytest.mark.slow
def test_plots_command(tmp_path):
    sh(shorten(command("python3 -m esmeperf -sci 10 -cpi 20 -smi 100,1000,10000 --duration"),
               "1s"), tmp_path)
    plots = tmp_path / "plots"
    runs = sorted(p for p in plots.iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["01_sci10_cpi20_smi100_r1", "02_sci10_cpi20_smi1000_r1",
                                      "03_sci10_cpi20_smi10000_r1"]
    for run in runs:
        assert result_files(run) == set(RESULT_SUFFIXES) and (run / "rates.png").is_file()
    assert (plots / "report.md").is_file() and (plots / "scatter.png").is_file()
    # The README's figure links name files this command writes.
    for link in re.findall(r"\]\((plots/[^)]+\.png)\)", README.read_text(encoding="utf-8")):
        assert (tmp_path / link).is_file(), link


@pytest.mark.slow
def test_sweep_and_plots(tmp_path):
    sh(shorten(command("python3 -m esmeperf -sci 10 -cpi 20 -smi 100,1000,10000 --repeat"),
               "1s"), tmp_path)
    runs = tmp_path / "runs"
    names = sorted(p.name for p in runs.iterdir())
    dirs = [n for n in names if (runs / n).is_dir()]
    assert len(dirs) == 9 and all(re.fullmatch(r"\d\d_sci10_cpi20_smi\d+_r[123]", n) for n in dirs)
    beside = sorted(set(names) - set(dirs))
    assert beside == ["overlay_sci10_cpi20_smi100.png", "overlay_sci10_cpi20_smi1000.png",
                      "overlay_sci10_cpi20_smi10000.png", "report.html", "report.md",
                      "scatter.png"]
    plot_commands = [c for c in doc_commands() if c.startswith("esmeperf-plot")]
    assert len(plot_commands) == 3, plot_commands
    for cmd in plot_commands:
        printed = sh(cmd, tmp_path).stdout.split()
        assert printed and all((tmp_path / p).is_file() for p in printed), (cmd, printed)


@pytest.mark.exclusive
@pytest.mark.slow
def test_compare_commands(tmp_path):
    """A base run, one against a target holding every message 50 ms, and their comparison:
    exit 3, the p99 named in the verdict, the PNG drawn."""
    for side in ("base", "slower"):
        sh(shorten(command("python3 -m esmeperf -sci 10 -cpi 20 -smi 1000 --duration 20s "
                           f"--out {side}"), "3s"), tmp_path)
        assert (result_files(tmp_path / side) | {"_rates.png"}) == set(RESULT_SUFFIXES)
    cmd = command("esmeperf-compare")
    done = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=scripts_env(),
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    assert done.returncode == 3, f"{cmd}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
    verdict = next(line for line in done.stdout.splitlines() if line.startswith("verdict:"))
    assert "round trip p99 +" in verdict, done.stdout
    assert (tmp_path / "compare.png").is_file()


def _copy_checkout(dest: Path) -> Path:
    """The source tree as a fresh clone has it (no build leftovers), to build and run from."""
    leftovers = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*_cache", ".hypothesis")

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = {".git", "build", "man", "dist", "runs"} if Path(folder) == ROOT else set()
        return set(leftovers(folder, names)) | (top & set(names))

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.mark.slow
def test_man_page_command(tmp_path):
    tree = _copy_checkout(tmp_path / "tree")
    cmd = command("python3 -m pip wheel")
    page = sh(cmd, tree, env={"MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80"}).stdout
    for section in ("NAME", "SYNOPSIS", "EXIT STATUS", "FILES", "EXAMPLES", "SEE ALSO"):
        assert re.search(rf"^{section}$", page, re.M), section
    assert "esmeperf - load generator for ESME's Messenger API" in page
    for name in ("esmeperf", "esmeperf-plot", "esmeperf-compare", "esmeperf-target"):
        path = tree / "man" / f"{name}.1"
        if shutil.which("lexgrog"):  # man-db's own check that whatis/apropos can index it
            parsed = subprocess.run(["lexgrog", str(path)], capture_output=True, text=True,
                                    timeout=30, check=False)
            assert parsed.returncode == 0 and f'"{name} - ' in parsed.stdout, parsed.stdout


@pytest.mark.slow
def test_target_from_a_checkout(tmp_path):
    tree = _copy_checkout(tmp_path / "tree")
    cmd = command("bin/esmeperf-target")
    # Without site-packages the launcher must still find the package of its own checkout.
    version = subprocess.run([sys.executable, "-S", str(tree / "bin" / "esmeperf-plot"),
                              "--version"], capture_output=True, text=True, timeout=60,
                             check=False)
    assert version.returncode == 0 and version.stdout.startswith("esmeperf-plot "), version
    log = tmp_path / "target.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=tree, env=scripts_env(),
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready = tree / "config.json"
        deadline = time.monotonic() + 30
        while not ready.exists() or not ready.read_text().endswith("}\n"):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no config.json within 30 s"
            pause(0.05)
        config = json.loads(ready.read_text())
        host, port = re.match(r"http://(.+):(\d+)", config["organizer_api_url"]).groups()
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log.read_text()


@pytest.fixture
def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.mark.slow
def test_live_metrics_command(tmp_path, free_port):
    """The README's --metrics-port command, on a free port: its endpoint counts sends live."""
    from urllib.error import URLError
    from urllib.request import urlopen

    cmd = shorten(command("python3 -m esmeperf -sci 10 -cpi 20 -smi 1000 --duration 30m "
                          "--metrics-port"), "3s").replace("9464", free_port)
    log = tmp_path / "esmeperf.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=tmp_path, env=scripts_env(),
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, sent = time.monotonic() + 60, None
        while sent is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no message counted on /metrics within 60 s"
            try:
                with urlopen(f"http://127.0.0.1:{free_port}/metrics", timeout=5) as response:
                    text = response.read().decode()
            except URLError:
                text = ""  # not listening yet
            found = re.search(r"^esmeperf_messages_sent_total\{.*\} (\S+)$", text, re.M)
            sent = float(found.group(1)) or None if found else None
            if sent is None:
                pause(0.1)
        assert proc.wait(timeout=COMMAND_TIMEOUT) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert result_files(tmp_path) == set(RESULT_SUFFIXES)


@pytest.mark.slow
def test_lint_command():
    sh(command("python3 -m pip install -e '.[lint]'"), ROOT)


def _summary(folder: Path) -> dict:
    (path,) = folder.glob("*_performance_test_summary.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_surge_command(tmp_path):
    """The surge examples do what their text says (issue 39): most arrivals fall in the surge
    window. The 140 s example's schedule is counted; its 10 s version is run, as written."""
    from esmeperf.measure.schedule import Schedule, parse_stages
    from esmeperf.scenario.surge import COHORTS, window_from_stages

    full, short = [c for c in doc_commands()
                   if c.startswith("python3 -m esmeperf -sci 5 -smi 1000 --stages")]
    for cmd, during in ((full, 2000), (short, 160)):
        stages = parse_stages(cmd.split("--stages ")[1].split()[0])
        window = window_from_stages(stages)
        assert window is not None
        cohorts = dict.fromkeys(COHORTS, 0)
        for offset in Schedule(stages=stages).offsets():
            cohorts[COHORTS[window.part(offset)]] += 1
        assert cohorts["during"] == during > 3 * (cohorts["before"] + cohorts["after"])
    assert "--duration" not in short  # the stages end it
    sh(short, tmp_path)
    summary = _summary(tmp_path)
    surge = summary["surge"]
    assert surge["window_s"] == [3.0, 7.0]
    arrived = {cohort: figures["participants"] for cohort, figures in surge["cohorts"].items()}
    # Arrival 184 is due the instant the stages end, and may race the stop.
    assert arrived["before"] == 11 and arrived["during"] == 160 and arrived["after"] in (12, 13)
    assert summary["created_participants_count"] in (183, 184)
    assert summary["settings"]["duration_source"] == "--stages"
    assert summary["settings"]["cpi_ms"] is None  # --stages replaced -cpi's grid
    assert summary["exit_status"] == 0, summary["first_error"]


@pytest.mark.exclusive
@pytest.mark.slow
def test_capacity_command(tmp_path):
    """The capacity search with 25 s: time for the 16-chat step only, so it must end honestly
    at its bound (tests/test_capacity.py covers the search's knee and generator verdicts)."""
    from PIL import Image

    done = sh(shorten(command("python3 -m esmeperf --find-capacity"), "25s"), tmp_path)
    capacity = _summary(tmp_path)["capacity"]
    # One log line as the step starts and one as it ends, the search's table on stdout; not
    # the step's own run logs, report table and final line.
    steps = [line for line in done.stderr.splitlines() if "capacity step 1: 16 chats" in line]
    assert len(steps) == 2 and steps[1].endswith(": pass"), done.stderr
    assert "esmeperf: ended by" not in done.stderr and "starting" not in done.stderr
    assert done.stdout.startswith("capacity: at least 16 chats"), done.stdout
    assert "limited by none" in done.stdout.splitlines()[0]
    assert "latency (ms)" not in done.stdout
    assert [s["chats"] for s in capacity["steps"]] == [16]
    step = capacity["steps"][0]
    assert step["passed"], step["failed"]
    assert 0.98 <= step["achieved_rate"] / step["intended_rate"] <= 1.02
    # No step failed: no knee, the step a lower bound.
    assert capacity["limited_by"] == "none" and capacity["knee_chats"] is None
    assert capacity["highest_passing_chats"] == 16
    assert "--duration" in capacity["note"]
    (png,) = tmp_path.glob("*_performance_test_capacity.png")
    with Image.open(png) as image:
        assert image.size[0] > 500
    assert (tmp_path / "capacity" / step["folder"] / "summary.json").is_file()


@pytest.mark.exclusive
@pytest.mark.slow
def test_abort_on_fail_command(tmp_path):
    """A healthy run with --abort-on-fail runs to its end (tests/test_gatewatch.py stops one)."""
    sh(shorten(command("python3 -m esmeperf -sci 10 -cpi 20 -smi 100 --duration 10m --max-p99")),
       tmp_path)
    summary = _summary(tmp_path)
    assert summary["end_reason"] == "duration" and summary["settings"]["abort_on_fail"] is True


@pytest.mark.slow
def test_overloaded_command(tmp_path):
    """The README's overloaded example, shortened: whatever this machine makes of it, the table
    ends with the generator's verdict and who limited the run, and the final line agrees."""
    done = sh(shorten(command("python3 -m esmeperf -sci 10 -cpi 20 -smi 100 --duration 30s"),
                      "6s"), tmp_path)
    summary = _summary(tmp_path)
    assert "\ngenerator health" in done.stdout
    suspect = summary["generator_health"]["suspect"]
    assert ("generator SUSPECT" in done.stdout.splitlines()[0]) is suspect
    assert ("generator SUSPECT" in done.stderr.splitlines()[-1]) is (
        suspect and not summary["first_error"])
    who = summary["attribution"]
    if suspect:
        assert who["limited_by"] in ("generator", "undetermined"), who
    else:  # a healthy generator: the round trip's own verdict, if any (source "latency")
        assert who["limited_by"] in ("none", "target") or who["source"] == "latency", who


@pytest.mark.slow
def test_portable_command(tmp_path):
    """The run on the portable path says so in its summary (tests/test_portable.py tests each
    fallback)."""
    sh(shorten(command("python3 -m esmeperf -sci 10 -cpi 20 -smi 100 --duration 30s --portable")),
       tmp_path)
    summary = _summary(tmp_path)
    assert summary["exit_status"] == 0 and summary["messages_delivered"] > 0
    assert summary["platform"]["portable"] is True
    assert summary["platform"]["receive_time"] == "clock"


@pytest.mark.slow
def test_target_throughput_commands(tmp_path):
    """docs/target.md's benchmark commands, each shortened to one run of 2 s."""
    for cmd in [c for c in doc_commands() if c.startswith("python3 bench/target_throughput.py")]:
        short = re.sub(r"--seconds \d+", "--seconds 2", cmd)
        short = short if "--runs" in short else short.replace(".py", ".py --runs 1 --seconds 2",
                                                               1)
        short = re.sub(r"--runs \d+", "--runs 1", short).replace("/tmp/target.log",
                                                                  str(tmp_path / "target.log"))
        done = sh(short, ROOT)
        assert "median" in done.stdout.lower() or "messages" in done.stdout.lower(), done.stdout
