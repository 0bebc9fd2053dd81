"""Connection.recv_until on a real loopback TCP pair (issue 37): the wait for a due time ends at
that time, not at a receive timeout the kernel's timer wheel rounds up; a frame or a close from
the server still wakes the waiter at once; each waiter's timer descriptor is its own and closed
with its connection. Each runs on the exact (ppoll) path and on the receive-timeout fallback."""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from esmeperf.system import platform_support
from esmeperf.transport import wsframe
from esmeperf.transport.connection import Closed, Connection

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="ppoll and /proc/self/fd: Linux")


@pytest.fixture(params=["ppoll", "receive timeout"])
def mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The connection's exact waits (ppoll, as runs on Linux use them) or the fallback."""
    if request.param == "ppoll":
        if sys.platform.startswith("linux"):
            assert platform_support.detected().exact_waits, "no ppoll found on Linux"
        elif not platform_support.detected().exact_waits:
            pytest.skip("no ppoll on this platform")
    else:
        without = dataclasses.replace(platform_support.detected(), exact_waits=False)
        monkeypatch.setattr(platform_support, "detected", lambda: without)
    yield request.param


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair: (the client's socket, the server's)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    with client, server:
        yield client, server


def server_frame(text: str, opcode: int = wsframe.OP_TEXT) -> bytes:
    """An unmasked frame as a server sends it (RFC 6455 5.1)."""
    payload = text.encode()
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def test_the_wait_ends_at_the_due_time(mechanism, pair):
    """No frame: None, at the due time and not before it. The bound is the fallback's worst
    (a jiffy or two at 0.25 s); the exact path's own is checked by the pacing tests' runs."""
    client, _ = pair
    conn = Connection(client, "ws://127.0.0.1/connect", send_timeout=5.0)
    try:
        for ahead in (0.05, 0.25):
            due = time.monotonic() + ahead
            assert conn.recv_until(due) is None
            assert time.monotonic() >= due
        assert conn.recv_until(time.monotonic() - 1.0) is None  # a due time that has passed
    finally:
        conn.abort()


def test_a_frame_wakes_the_waiter_before_its_due_time(mechanism, pair):
    client, server = pair
    conn = Connection(client, "ws://127.0.0.1/connect", send_timeout=5.0)
    try:
        server.sendall(server_frame('{"type":"chats"}'))
        started = time.monotonic()
        assert conn.recv_until(started + 30.0) == '{"type":"chats"}'
        assert time.monotonic() - started < 10.0
    finally:
        conn.abort()


@pytest.mark.parametrize("batched", [False, True], ids=["per frame", "batched"])
def test_a_close_from_the_server_wakes_the_waiter_at_once(mechanism, pair, batched):
    """Even when reads are batched (SO_RCVLOWAT above any frame), a FIN is readable: the
    waiter learns of the close long before its due time, from another thread's doing."""
    client, server = pair
    conn = Connection(client, "ws://127.0.0.1/connect", send_timeout=5.0)
    conn.batch_reads(batched)
    outcome: list[BaseException | str | None] = []

    def wait() -> None:
        try:
            outcome.append(conn.recv_until(time.monotonic() + 60.0))
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)
        finally:
            conn.abort()  # as Context.hold does, in the waiting thread

    waiter = threading.Thread(target=wait, name="waiter")
    waiter.start()
    server.sendall(server_frame("", wsframe.OP_CLOSE))
    server.shutdown(socket.SHUT_WR)
    waiter.join(20.0)
    assert not waiter.is_alive(), "a close from the server did not wake the waiter"
    assert len(outcome) == 1 and isinstance(outcome[0], Closed), outcome


def test_batched_reads_take_what_came_at_the_due_time(mechanism, pair):
    """Batched, the frames of an interval wait in the socket until the due time, then come
    in one read (both frames, from one recv)."""
    client, server = pair
    conn = Connection(client, "ws://127.0.0.1/connect", send_timeout=5.0)
    try:
        if not conn.batch_reads(True):
            pytest.skip("no batched reads on this platform")
        server.sendall(server_frame("one") + server_frame("two"))
        due = time.monotonic() + 0.2
        assert conn.recv_until(due) == "one"
        assert time.monotonic() >= due  # held to its due time, not woken by the frames
        reads = conn.reads
        assert conn.recv_until(due) == "two" and conn.reads == reads  # from the same read
        # The kernel's receive time (the first packets a socket gets after asking for
        # timestamps may come unstamped: then 0, and the caller reads its clock).
        assert conn.rx_ns == 0 or time.time_ns() - 10**10 < conn.rx_ns <= time.time_ns()
    finally:
        conn.abort()


@linux_only
def test_an_exact_wait_takes_no_descriptor_of_its_own(pair):
    """A participant holds its socket and nothing more: the open-files limit is the count of
    participants a process can hold."""
    if not platform_support.detected().exact_waits:
        pytest.skip("no exact waits here")

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    client, server = pair
    conn = Connection(client, "ws://127.0.0.1/connect", send_timeout=5.0)
    before = descriptors()
    for ahead in (0.0, 0.002, 0.01):
        assert conn.recv_until(time.monotonic() + ahead) is None
        assert descriptors() == before
    conn.abort()


@linux_only
def test_a_long_wait_ends_at_its_due_time_not_before():
    """A wait of 1.5 s, which the timer wheel would end 30-60 ms late and poll()'s own
    timeout up to 1.5 ms late: here it ends at its due time, and never before it."""
    if not platform_support.detected().exact_waits:
        pytest.skip("no exact waits here")
    from esmeperf.system import syscalls

    left, right = socket.socketpair()
    with left, right:
        waiter = syscalls.ExactWait(left)
        due = time.monotonic_ns() + 1_500_000_000
        assert waiter.wait(due) is False
        late_ns = time.monotonic_ns() - due
        assert 0 <= late_ns < 20_000_000  # a bound for a busy machine, not a timing
