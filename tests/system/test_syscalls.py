"""The socket calls made through libc with the GIL held (esmeperf/system/syscalls.py), on real
socket pairs; each runs twice, through libc and through the socket module's stand-ins."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from esmeperf.system import platform_support, syscalls
from esmeperf.transport import connection


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


@pytest.fixture(params=["libc", "socket module"])
def reader_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """read_now() through libc's recvmsg with the GIL held (Linux), or the socket module's."""
    if request.param == "libc":
        if sys.platform.startswith("linux"):
            assert syscalls.read_now_available(), "libc's recvmsg not found on Linux"
        elif not syscalls.read_now_available():
            pytest.skip("no C library recvmsg here")
    else:
        monkeypatch.setattr(syscalls, "_RECVMSG", None)
    return request.param


def test_read_now_takes_what_is_there_and_never_waits(reader_path):
    """Nothing yet: None at once; then the bytes there (at most `size`), stamped with their
    arrival time where asked; the peer's FIN: empty."""
    option = platform_support.detected().timestamp_option or 0
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    with client, server:
        client.settimeout(None)
        if option:
            client.setsockopt(socket.SOL_SOCKET, option, 1)
        assert syscalls.read_now(client, 100, option) is None
        sent_ns = time.time_ns()
        server.sendall(b"hello, world")
        got = None
        for _ in range(1000):  # loopback delivers at once; the loop is a bound, not a wait
            got = syscalls.read_now(client, 5, option)
            if got is not None:
                break
        assert got is not None
        data, stamp = got
        assert bytes(data) == b"hello"
        rest = syscalls.read_now(client, 100, 0)
        assert rest is not None and bytes(rest[0]) == b", world"
        # Linux turns timestamps on through deferred work the first time a socket asks: the
        # first packets may come unstamped (platform_support's probe). Later ones are not.
        stamps, pause = [stamp], threading.Event()
        for _ in range(200 if option else 0):
            if any(stamps):
                break
            pause.wait(0.01)  # a bound on the tries, for the deferred work to run
            server.sendall(b"x")
            for _ in range(1000):
                got = syscalls.read_now(client, 100, option)
                if got is not None:
                    break
            assert got is not None and bytes(got[0]) == b"x"
            stamps.append(got[1])
        if option:
            assert any(sent_ns - 1_000_000_000 < s <= time.time_ns() for s in stamps), stamps
            assert all(s == 0 or s > sent_ns - 1_000_000_000 for s in stamps), stamps
        server.shutdown(socket.SHUT_WR)
        for _ in range(1000):
            got = syscalls.read_now(client, 100, 0)
            if got is not None:
                break
        assert got is not None and bytes(got[0]) == b""
