"""What each of thousands of participants keeps: one OS thread (issue 38), whose interpreter
frame pages the arrival's deep calls touched are given back before it chats.

The memory this saves is measured side by side with ESME's Go test in bench/versus_go.py
(shape 2's RSS per participant); the tests hold the mechanisms to what they promise.
"""

from __future__ import annotations

import sys
import threading

import pytest
import requests

from esmeperf.cli.main import main
from esmeperf.system import threadstack

linux_cpython_311 = pytest.mark.skipif(
    not sys.platform.startswith("linux") or sys.version_info[:2] != (3, 11),
    reason="the interpreter frame chunk's layout is CPython 3.11's; mincore: Linux")


def in_a_thread(body):
    """body() in a fresh thread of a small stack, as a participant runs; its result."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(body()), name="footprint")
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and len(out) == 1
    return out[0]


def deep(n: int) -> None:
    """A call chain as an arrival's: many frames, then requests' own (a refused connection)."""
    if n:
        deep(n - 1)
        return
    with pytest.raises(requests.ConnectionError):
        requests.get("http://127.0.0.1:9/", timeout=5)


@linux_cpython_311
def test_the_frame_pages_an_arrival_touched_are_given_back():
    def body() -> tuple[int | None, ...]:
        before = threadstack.frames_resident_bytes()
        deep(40)
        touched = threadstack.frames_resident_bytes()
        shed = threadstack.shed()
        after = threadstack.frames_resident_bytes()
        deep(40)  # the pages come back, zeroed, when a call goes that deep again
        again = threadstack.frames_resident_bytes()
        return before, touched, shed, after, again

    before, touched, shed, after, again = in_a_thread(body)
    assert before is not None and touched is not None and after is not None
    assert touched > before and shed > 0
    assert after <= before + 4096 < touched
    assert again == touched


def test_shedding_is_harmless_where_it_cannot_be_done():
    """Called anywhere (the main thread, a deep frame), it gives back nothing it must not:
    the calls after it work as before."""
    def body() -> int:
        freed = threadstack.shed()
        deep(5)
        return freed

    assert in_a_thread(body) >= 0
    assert threadstack.shed() >= 0
    deep(3)


def test_one_thread_per_participant(tmp_path, monkeypatch):
    """Each participant, arrival and conversation, runs on one thread from start to end: no
    second thread per participant for its conversation."""
    from esmeperf.scenario import participant

    seen: dict[str, set[int]] = {}
    lock = threading.Lock()
    original = participant.Participant._converse

    def converse(self, conn):  # the conversation: which thread holds it
        with lock:
            seen.setdefault(self.name, set()).add(threading.get_ident())
        return original(self, conn)

    register = participant.Participant._register

    def arrive(self):  # the arrival: which thread signs up
        with lock:
            seen.setdefault(self.name, set()).add(threading.get_ident())
        return register(self)

    monkeypatch.setattr(participant.Participant, "_converse", converse)
    monkeypatch.setattr(participant.Participant, "_register", arrive)
    assert main(["-q", "--no-plot", "--no-report", "--out", str(tmp_path), "-sci", "10",
                 "-cpi", "50", "-smi", "200", "--max-participants", "12",
                 "--duration", "2s"]) == 0
    assert len(seen) == 12 and all(len(idents) == 1 for idents in seen.values()), seen
    assert [t.name for t in threading.enumerate() if t.name.startswith("participant-")] == []
