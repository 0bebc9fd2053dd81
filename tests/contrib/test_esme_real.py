"""contrib/esme-real against ESME's real organizer and participant APIs (issue 32): the embedded
target answers the conformance table as they do, and esmeperf --rest-only's chat requests all
reach ESME's queue.

ESME's APIs are built outside this repository (ESME's public repository's README says how):
$ESMEPERF_ESME_REAL holds esme_real.py's arguments that name them, e.g. `--organizer-api DIR
--participant-api PATH --participant-schema PATH` (root: they run in network namespaces of their
own), or a running ESME's `--config PATH`. Unset, those tests skip, saying so. The rest runs
everywhere: esme_real.py's own checks, and its running-ESME path with the embedded target
standing in for ESME."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from esmeperf.target.launcher import TargetProcess

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "esme-real"
ENV = "ESMEPERF_ESME_REAL"
ESME = shlex.split(os.environ.get(ENV, ""))

needs_esme = pytest.mark.skipif(not ESME, reason=f"{ENV} is unset: esme_real.py's arguments "
                                "naming ESME's APIs, built outside this repository")


def run(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CONTRIB / script), *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300, check=False)


@pytest.mark.parametrize("needs", [[], ["--config", "c.json", "--organizer-api", "."]])
def test_without_esme_it_says_what_it_needs(tmp_path, needs):
    done = run(tmp_path, "esme_real.py", "check", *needs)
    assert done.returncode == 2 and not done.stdout
    (line,) = [x for x in done.stderr.splitlines() if "error:" in x]
    assert ("built outside this repository" if not needs else "not both") in line


def test_check_and_rest_run_use_a_running_esmes_config(tmp_path, target: TargetProcess):
    """The embedded target stands in for a running ESME: nothing is started, the queue is
    not counted (no --amqp-url), and esmeperf runs against its config.json."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps(target.config))
    done = run(tmp_path, "esme_real.py", "check", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "self-test passed: organizer role 2" in done.stderr
    assert "not counted: give --amqp-url and --queue" in done.stderr
    done = run(tmp_path, "esme_real.py", "rest-run", "--config", str(config),
               "--out", str(tmp_path / "out"), "--",
               "-q", "-cpi", "250", "--duration", "2s", "--no-plot", "--no-report")
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = (tmp_path / "out").glob("*_performance_test_summary.json")
    filed = json.loads(path.read_text())["created_participants_count"]
    assert filed >= 1 and f"esmeperf filed {filed}; the queue is not counted" in done.stderr


@pytest.mark.slow
@needs_esme
def test_the_embedded_target_answers_as_esmes_rest_apis_do(tmp_path):
    config = ESME[ESME.index("--config") + 1] if "--config" in ESME else None
    real = ["--real", config] if config else [f"--start-real={shlex.join(ESME)}"]
    done = run(tmp_path, "conformance.py", *real, "--start-embedded",
               "--json", str(tmp_path / "cases.json"))
    cases = json.loads((tmp_path / "cases.json").read_text())
    different = [c["case"] for c in cases if not c["same"]]
    assert len(cases) == 41 and done.returncode == 0 and not different, (
        done.stdout[-3000:], different)
    assert done.stdout.rstrip().endswith("0 DIFFERENT")


@pytest.mark.slow
@needs_esme
def test_rest_only_chat_requests_all_reach_esmes_queue(tmp_path):
    done = run(tmp_path, "esme_real.py", "rest-run", *ESME, "--out", str(tmp_path / "out"),
               "--", "-q", "-cpi", "250", "--duration", "3s", "--no-plot", "--no-report")
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = (tmp_path / "out").glob("*_performance_test_summary.json")
    summary = json.loads(path.read_text())
    filed, signed_up = summary["created_participants_count"], summary["latency"]["sign_up"]["count"]
    # 3 s at 4 arrivals/s: how many finish depends on bcrypt (cost 12: a quarter of a second
    # of CPU each) and on what else this machine runs; some must.
    assert 1 <= filed <= signed_up <= 13
    # Every request counted is in the queue; one cut short by the end may be there too. A
    # running ESME's queue is counted where ESMEPERF_ESME_REAL names it (--amqp-url, --queue).
    found = re.search(r"esmeperf filed (\d+), chats_agency_\d+ gained (\d+)", done.stderr)
    if found is None and "--config" in ESME and "--queue" not in ESME:
        return
    assert found and int(found[1]) == filed, done.stderr[-2000:]
    assert filed <= int(found[2]) <= signed_up
