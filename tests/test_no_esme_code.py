"""ESME's code stays out of the repository (issue 36): no tracked file is ESME's source or a
vendored copy, none builds ESME's programs or installs a toolchain for them, and what needs
ESME's Go performance test takes it, built outside this repository, from the caller."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GO_TEST_ENV = "ESMEPERF_GO_TEST"
# Made from pieces, so that this file does not match what it looks for.
ESME_PATH = re.compile(r"(^|/)(esme-services|esme-go-test|node_modules|vendor)(/|$)|\.go$",
                       re.IGNORECASE)
BUILD = re.compile("|".join(("go" + " build", "npm" + " (ci|install|run build)",
                             "apt-get" + r" install[^|\n]*golang")).encode())


def tracked() -> list[str]:
    done = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


def test_no_tracked_file_is_esmes_code():
    assert [path for path in tracked() if ESME_PATH.search(path)] == []


def test_no_tracked_file_builds_esmes_programs():
    builds = []
    for path in tracked():
        file = ROOT / path
        if file.is_file():  # a file deleted in the working tree is not there to build anything
            builds += [f"{path}: {m.group().decode()}" for m in BUILD.finditer(file.read_bytes())]
    assert builds == []


def versus_go(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "versus_go.py"), *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)


def test_versus_go_without_the_go_test_says_what_it_needs():
    env = {k: v for k, v in os.environ.items() if k != GO_TEST_ENV}
    done = versus_go("--runs", "1", env=env)
    assert done.returncode == 2 and not done.stdout
    assert done.stderr.splitlines() == [
        "versus_go: needs ESME's Go performance test, built outside this repository: "
        f"give --go-binary PATH or set {GO_TEST_ENV}"]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get(GO_TEST_ENV),
                    reason=f"{GO_TEST_ENV} is unset: ESME's Go performance test, built outside "
                    "this repository")
def test_versus_go_runs_the_go_test_it_is_given():
    done = versus_go("--runs", "1", "--shapes", "1", "--duration", "1=3s", env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Go test: {os.environ[GO_TEST_ENV]}" in done.stdout
