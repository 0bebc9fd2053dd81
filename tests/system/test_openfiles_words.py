"""What the open-files limit's log line and remedies say (the limit's mechanics:
test_openfiles.py). Limits are set by the shell's `ulimit` before exec, as a user's are."""

from __future__ import annotations

import os
import resource
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from esmeperf.system import openfiles

HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
ROOT = Path(__file__).resolve().parents[2]
needs_room = pytest.mark.skipif(HARD == resource.RLIM_INFINITY or HARD <= 1024,
                                reason="needs a finite hard open-files limit above 1,024")


def under(ulimit: str, *command: str, **kwargs: object) -> subprocess.Popen[str]:
    line = " ".join([sys.executable, *command])
    return subprocess.Popen(["bash", "-c", f"ulimit {ulimit} && exec {line}"], cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **kwargs)  # type: ignore[call-overload]


@needs_room
def test_a_run_logs_the_limit_it_raised_and_from_what(tmp_path):
    run = under("-Sn 1024", "-m", "esmeperf", "--no-plot", "-cpi", "100",
                "--max-participants", "1", "--duration", "1s", "--out", str(tmp_path))
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    lines = [line.split(" ", 2)[2] for line in err.splitlines() if "open files limit" in line]
    assert lines == [f"open files limit: raised from 1,024 to {HARD:,} (hard {HARD:,})"]


def test_a_limit_not_raised_is_named_as_it_is():
    code = ("from esmeperf.system import openfiles; openfiles.raise_soft_limit(); "
            "print(openfiles.describe())")
    done = under("-n 1000", "-c", f'"{code}"')
    out, err = done.communicate(timeout=60)
    assert out == "1,000 (hard 1,000)\n", err


@needs_room
def test_the_target_logs_it_too():
    read_end, write_end = os.pipe()
    target = under("-Sn 1024", "-m", "esmeperf.target", "--organizer-port", "0",
                   "--participant-port", "0", "--messenger-port", "0", "--log-level", "info",
                   "--ready-fd", str(write_end), pass_fds=(write_end,))
    os.close(write_end)
    try:
        assert select.select([read_end], [], [], 20)[0], "the target never became ready"
        target.send_signal(signal.SIGTERM)
        _, err = target.communicate(timeout=20)
    finally:
        os.close(read_end)
        target.kill()
        target.wait()
    assert (f"esmeperf.target: open files limit: raised from 1,024 to {HARD:,} "
            f"(hard {HARD:,})") in err


def test_the_embedded_targets_remedy_is_the_hard_limit_not_more_processes():
    # The target is esmeperf's child: it has esmeperf's limit, and holds every socket.
    text, certain = openfiles.check(openfiles.plan(5000, None, 20, 4, True), 1024)
    assert certain and "the embedded target" in text
    assert "ulimit -Hn as root" in text and "--processes" not in text
    assert "start esmeperf-target yourself under a higher limit" in text
    message = openfiles.out_of_files_message("participant-17", embedded_target=True)
    assert message.startswith(f"{openfiles.OUT_OF_FILES_TEXT} (limit ")
    assert " at participant 17: raise the hard limit" in message and "--processes" not in message
    assert "--processes" not in openfiles.target_out_of_files(300)
    assert openfiles.target_out_of_files(300).startswith(
        "the embedded target ran out of open files, limit 300: raise the hard limit")
    # The target's running out, added to the first error, with the remedy said once.
    assert openfiles.with_target_out_of_files(message) == (
        f"{message} (the embedded target ran out of them too)")
    assert openfiles.with_target_out_of_files("connection reset", 300) == (
        f"connection reset ({openfiles.target_out_of_files(300)})")
    # Against a target elsewhere, more processes do spread the generator's sockets.
    text, _ = openfiles.check(openfiles.plan(5000, None, 20, 1, False), 1024)
    assert "--processes N" in text
    assert openfiles.out_of_files_message("participant-3").endswith(
        "raise ulimit -n or use --processes")
