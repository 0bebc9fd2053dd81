"""Against ESME's real organizer and participant APIs (contrib/esme-real, issue 32): the
embedded target answers the conformance table as they do, and esmeperf --rest-only's chat
requests all reach ESME's queue.

ESME's services are built from ../shared/esme-services (a minute, ~800 npm packages): these
tests use the build cached by `contrib/esme-real/esme_real.py build` and skip, saying so,
where it is missing, or where the machine lacks what the services need (root for their
network namespaces, PostgreSQL, RabbitMQ, Node.js, Go)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib" / "esme-real"
SERVICES = ROOT.parent / "shared" / "esme-services"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                       reason="ESME's services run in network namespaces of their own: root"),
    pytest.mark.skipif(not SERVICES.is_dir(), reason=f"ESME's services not at {SERVICES}"),
]


def run(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A contrib command with the cached builds only; skip where the machine can't run it."""
    done = subprocess.run(
        [sys.executable, str(CONTRIB / script), *args], cwd=tmp_path, text=True,
        capture_output=True, timeout=300, check=False,
        env={**os.environ, "ESME_SERVICES_DIR": str(SERVICES), "ESME_REAL_CACHED_ONLY": "1"})
    for cannot in ("is not built", "not found (try:", "must run as root"):
        if cannot in done.stderr:
            line = next(x for x in done.stderr.splitlines() if cannot in x)
            pytest.skip(f"ESME's services can't run here: {line.strip()}")
    return done


def test_the_embedded_target_answers_as_esmes_rest_apis_do(tmp_path):
    done = run(tmp_path, "conformance.py", "--start-real", "--start-embedded",
               "--json", str(tmp_path / "cases.json"))
    cases = json.loads((tmp_path / "cases.json").read_text())
    different = [c["case"] for c in cases if not c["same"]]
    assert len(cases) == 41 and done.returncode == 0 and not different, (
        done.stdout[-3000:], different)
    assert done.stdout.rstrip().endswith("0 DIFFERENT")


def test_rest_only_chat_requests_all_reach_esmes_queue(tmp_path):
    done = run(tmp_path, "esme_real.py", "rest-run", "--out", str(tmp_path / "out"), "--",
               "-q", "-cpi", "250", "--duration", "3s", "--no-plot", "--no-report")
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = (tmp_path / "out").glob("*_performance_test_summary.json")
    summary = json.loads(path.read_text())
    filed, signed_up = summary["created_participants_count"], summary["latency"]["sign_up"]["count"]
    # 3 s at 4 arrivals/s: how many finish depends on bcrypt (cost 12: a quarter of a second
    # of CPU each) and on what else this machine runs; some must.
    assert 1 <= filed <= signed_up <= 13
    # Every request counted is in the queue; one cut short by the end may be there too.
    found = re.search(r"esmeperf filed (\d+), chats_agency_1 gained (\d+)", done.stderr)
    assert found and int(found[1]) == filed, done.stderr[-2000:]
    assert filed <= int(found[2]) <= signed_up
