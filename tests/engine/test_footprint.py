"""What each of thousands of participant threads keeps: a stack of its own.

The memory this saves is measured side by side with ESME's Go test in bench/versus_go.py
(shape 2's RSS per participant); the test holds the mechanism to what it promises.
"""

from __future__ import annotations

import ctypes
import sys
import threading

import pytest

from esmeperf.config import Credentials, Settings, Target
from esmeperf.engine.life import Life
from esmeperf.engine.workers import (
    CONVERSATION_STACK_SIZE,
    WORKER_STACK_SIZE,
    Workers,
    worker_thread_settings,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc/self/maps and glibc's pthread_self()")


def own_stack_size() -> int:
    """The size of the mapping that holds this thread's stack (glibc keeps the thread's
    descriptor at its top), from /proc/self/maps."""
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_void_p
    address = libc.pthread_self()
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(part, 16) for part in line.split()[0].split("-"))
            if start <= address < end:
                return end - start
    raise AssertionError(f"no mapping holds the thread descriptor at {address:#x}")


@linux_only
def test_conversations_start_on_a_stack_size_no_other_thread_asks_for() -> None:
    """So glibc never gives a conversation the stack a finished arrival left pages in; the
    size is set back for the threads that start after it."""
    target = Target(event_id=1, messenger_ws_url="ws://127.0.0.1:9",
                    organizer_api_url="http://127.0.0.1:9", participant_api_url="http://127.0.0.1:9",
                    organizers=(Credentials("organizer@example.com", "secret"),))
    workers = Workers(Life(), target, Settings(), stamp=0)
    sizes: dict[str, int] = {}

    def measure(name: str) -> None:
        sizes[name] = own_stack_size()

    with worker_thread_settings():
        workers.start_thread("arrival", lambda: measure("arrival"))
        workers.start_thread("conversation", lambda: measure("conversation"), conversation=True)
        workers.start_thread("after", lambda: measure("after"))
        workers.join(10.0)
        assert threading.stack_size() == WORKER_STACK_SIZE
    assert workers.life.first_error is None and not workers.alive()
    # The conversation's stack is never an arrival's: glibc hands a kept stack only to a thread
    # asking for no more than its size. The others ask for the small size, and get it or a
    # kept conversation's stack (of this process's earlier runs), never more.
    assert sizes["conversation"] == CONVERSATION_STACK_SIZE
    assert sizes["arrival"] in (WORKER_STACK_SIZE, CONVERSATION_STACK_SIZE)
    assert sizes["after"] in (WORKER_STACK_SIZE, CONVERSATION_STACK_SIZE)
