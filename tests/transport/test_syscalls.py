"""The socket calls made through libc with the GIL held (esmeperf/transport/syscalls.py), on real
socket pairs; each runs twice, through libc and through the socket module's stand-ins."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator

import pytest

from esmeperf.system import platform_support
from esmeperf.transport import connection, syscalls


@pytest.fixture(params=["libc", "socket module"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Through libc (found on Linux, as the runs use it), or without it: the fallback."""
    if request.param == "libc":
        if sys.platform.startswith("linux"):
            assert syscalls.available(), "libc's setsockopt and send not found on Linux"
        elif not syscalls.available():
            pytest.skip("no C library functions found here")
    else:
        monkeypatch.setattr(syscalls, "_LIBC", None)
    yield request.param


def test_receive_deadline_reaches_the_socket(path: str) -> None:
    """SO_RCVTIMEO reads back as set (to the kernel's tick) and ends a recv() that gets
    nothing; on a closed socket the call is an OSError."""
    if not platform_support.detected().kernel_deadlines:
        pytest.skip("this platform's receive deadlines are Python's socket timeouts")
    left, right = socket.socketpair()
    with left, right:
        value = connection._timeval(0.05)
        syscalls.set_bytes_option(left, socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        seconds, micro = platform_support.TIMEVAL.unpack(
            left.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, len(value)))
        assert seconds == 0 and abs(micro - 50_000) <= 10_000  # the kernel counts in jiffies
        with pytest.raises((BlockingIOError, TimeoutError)):
            left.recv(1)
    with pytest.raises(OSError):
        syscalls.set_bytes_option(left, socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)


def test_send_now_sends_what_fits_and_never_blocks(path: str) -> None:
    """A frame goes whole; against a peer that reads nothing, sends stop at a full buffer
    (0 bytes, no wait: the socket has no timeout that would end a blocked send) and each
    byte counted as sent arrives; a peer gone is an OSError."""
    if not platform_support.detected().dontwait:
        pytest.skip("no MSG_DONTWAIT here: the connection's blocking send does the work")
    left, right = socket.socketpair()
    with left, right:
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        assert syscalls.send_now(left, b"one frame") == 9
        assert right.recv(100) == b"one frame"
        chunk, total = b"x" * 1000, 0
        for _ in range(10_000):
            sent = syscalls.send_now(left, chunk)
            total += sent
            if sent == 0:
                break
        else:
            pytest.fail("10 MB went into a socket nobody reads")
        right.setblocking(False)
        received = 0
        while True:
            try:
                received += len(right.recv(65536))
            except BlockingIOError:
                break
        assert received == total
        right.close()
        with pytest.raises(OSError):
            for _ in range(10):  # the first send after the peer's close may still succeed
                syscalls.send_now(left, chunk)


def test_shutdown_wakes_a_blocked_reader(path: str) -> None:
    """A thread blocked in recv() returns b"" once its socket is shut down from another
    thread (how shutdown wakes each worker); a closed socket is an OSError."""
    left, right = socket.socketpair()
    with left, right:
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(left.recv(10)))
        reader.start()
        syscalls.shutdown(left)
        reader.join(10)
        assert not reader.is_alive() and got == [b""]
    with pytest.raises(OSError):
        syscalls.shutdown(left)
