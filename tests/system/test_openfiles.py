"""The open-files limit: raised at start, checked before any load, named when it runs out.

The end-to-end tests run the real command in a child whose limits are set by the shell's
`ulimit` before exec, as a user's shell would have them.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from esmeperf.system import openfiles

HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def esmeperf(ulimit: str, *args: str, cwd: Path, timeout: float = 120
             ) -> subprocess.CompletedProcess[str]:
    """`ulimit ...; exec python -m esmeperf ARGS` in a shell, so the limits hold from exec."""
    command = " ".join([sys.executable, "-m", "esmeperf", "-q", "--no-plot", *args])
    return subprocess.run(["bash", "-c", f"ulimit {ulimit} && exec {command}"], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def summary_in(folder: Path) -> dict:
    (path,) = folder.glob("*_performance_test_summary.json")
    return json.loads(path.read_text())


# -- the plan and its check --------------------------------------------------------------------
def test_plan_counts_arrivals_the_duration_leaves_time_for():
    assert openfiles.plan(None, 30.0, 20, 1, True).participants == 1501
    run = openfiles.plan(500, 30.0, 20, 1, True)
    assert run.participants == 500 and run.bounded_by_maximum
    run = openfiles.plan(5000, 30.0, 20, 2, False)
    assert run.participants == 1501 and not run.bounded_by_maximum
    assert run.per_process() == 751
    assert openfiles.plan(None, None, 20, 1, True).participants is None


def test_check_edges():
    fits = openfiles.descriptors_needed(900)
    assert openfiles.check(openfiles.plan(900, None, 20, 1, False), fits) is None
    text, certain = openfiles.check(openfiles.plan(900, None, 20, 1, False), fits - 1)
    assert certain and f"limit is {fits - 1}" in text and "--processes" in text
    # Only the duration may reach it: a warning, not a refusal.
    text, certain = openfiles.check(openfiles.plan(None, 60.0, 20, 1, False), 1024)
    assert not certain and "3001 participants" in text
    # Shards split the generator's share; an embedded target still holds every socket.
    assert openfiles.check(openfiles.plan(1800, None, 20, 2, False), 1024) is None
    text, _ = openfiles.check(openfiles.plan(1800, None, 20, 2, True), 1024)
    assert "in the embedded target" in text and "--processes" not in text
    text, certain = openfiles.check(openfiles.plan(None, None, 20, 1, False), 1024)
    assert not certain and f"about {openfiles.participants_within(1024)} participants" in text
    assert openfiles.check(openfiles.plan(10**6, None, 1, 1, True), None) is None


def test_out_of_files_is_found_deep_in_a_chain(tmp_path):
    # A real EMFILE: open files under a limit of 16 in a child, and get its exception back.
    code = ("import resource, errno; resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))\n"
            "try:\n    files = [open(__file__) for _ in range(32)]\n"
            "except OSError as exc:\n    print(exc.errno)\n")
    script = tmp_path / "emfile.py"
    script.write_text(code)
    got = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=30, check=True).stdout.strip()
    emfile = OSError(int(got), "Too many open files")
    try:
        try:
            raise emfile
        except OSError as inner:
            raise RuntimeError("Max retries exceeded (Caused by NewConnectionError)") from inner
    except RuntimeError as outer:
        assert openfiles.is_out_of_files(outer)
    assert not openfiles.is_out_of_files(RuntimeError("connection refused"))
    assert openfiles.is_out_of_files(RuntimeError("... [Errno 24] Too many open files"))


# -- the real command under lowered limits -----------------------------------------------------
def test_max_participants_over_the_hard_limit_is_refused_before_any_load(tmp_path):
    done = esmeperf("-n 300", "-sci", "10", "-cpi", "20", "-smi", "100",
                    "--max-participants", "500", "--duration", "30s", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(r"esmeperf: error: 500 participants need about \d+ open files in the "
                        r"generator, but the limit is 300; raise the hard limit .*", lines[0])
    assert list(tmp_path.iterdir()) == []  # no target was started, no files written


@pytest.mark.slow
@pytest.mark.skipif(HARD < 20000, reason="needs a hard open-files limit of 20,000")
def test_soft_limit_of_1024_is_raised_past_a_thousand_participants(tmp_path):
    done = esmeperf("-Sn 1024 && ulimit -Hn 20000", "-sci", "10", "-cpi", "10", "-smi", "10000",
                    "--max-participants", "1100", "--duration", "14s", cwd=tmp_path,
                    timeout=180)
    summary = summary_in(tmp_path)
    assert done.returncode == 0, (done.stderr[-2000:], summary["first_error"])
    assert summary["created_participants_count"] > 1000


@pytest.mark.slow
def test_running_out_is_named_with_the_limit_and_the_participant(tmp_path, target):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(target.config))
    out = tmp_path / "out"
    done = esmeperf("-n 150", "-sci", "10", "-cpi", "5", "-smi", "1000", "--duration", "15s",
                    "--config", str(config), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "warning: 3001 participants need about" in done.stderr  # said before the load
    message = summary_in(out)["first_error"]["message"]
    assert re.fullmatch(r"out of open files \(limit 150\) at participant \d+: "
                        r"raise ulimit -n or use --processes", message), message
