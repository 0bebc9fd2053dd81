"""Socket calls made through libc with the GIL held, where the socket module would hand it over
or take a detour: a send and a setsockopt matter once per message in each of thousands of
threads, and a shutdown once per connection when a run ends, thousands in a row. Also ppoll()
with a nanosecond timeout (select.poll() counts in milliseconds): the exact deadline of a
participant's next send.

ctypes.PyDLL calls a C function without releasing the GIL. The calls here never block (a
setsockopt; a send with MSG_DONTWAIT; a shutdown), so holding the GIL costs the other threads
nothing, while releasing it would: with hundreds of threads waiting for the GIL, one of them
takes it during the syscall and this thread then waits (a context switch out and one back in)
to get it back. Where libc's functions are not found (no ctypes, or Windows) the socket module's
own calls do the same job.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

_WOULD_BLOCK = frozenset({errno.EAGAIN, errno.EWOULDBLOCK})
# struct timespec as Linux lays it out (and macOS, on little-endian 64-bit): a kernel receive
# timestamp's control message, read back only where platform_support's probe found it so.
TIMESPEC = struct.Struct("ll")


def kernel_stamp(ancillary: list[tuple[int, int, bytes]], option: int) -> int:
    """The receive time (Unix ns) a control message of type `option` holds, else 0."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == option and len(value) >= TIMESPEC.size:
            seconds, nanos = TIMESPEC.unpack_from(value)
            return int(seconds * 1_000_000_000 + nanos)
    return 0


class _Libc(NamedTuple):
    setsockopt: Callable[[int, int, int, bytes, int], int]
    send: Callable[[int, bytes, int, int], int]
    shutdown: Callable[[int, int], int]
    get_errno: Callable[[], int]  # errno as the last of these calls in this thread left it


def libc_function(name: str, argtypes: tuple[Any, ...], restype: Any, *,
                  keep_gil: bool = True) -> Any:
    """A function of the C library with its types set, called with the GIL held (`keep_gil`,
    for calls that never block) or released; None where there is no such library or symbol
    (Windows' CDLL(None) raises TypeError)."""
    try:
        loader = ctypes.PyDLL if keep_gil else ctypes.CDLL
        function = getattr(loader(None, use_errno=True), name)
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes, function.restype = argtypes, restype
    return function


def _libc() -> _Libc | None:
    """setsockopt(), send() and shutdown() from the C library, called with the GIL held; None
    if there is no such library."""
    setsockopt = libc_function("setsockopt", (ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                              ctypes.c_char_p, ctypes.c_uint), ctypes.c_int)
    send = libc_function("send", (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                                  ctypes.c_int), ctypes.c_ssize_t)
    shutdown = libc_function("shutdown", (ctypes.c_int, ctypes.c_int), ctypes.c_int)
    if setsockopt is None or send is None or shutdown is None:
        return None
    return _Libc(setsockopt, send, shutdown, ctypes.get_errno)


_LIBC = _libc()
_SEND_FLAGS = getattr(socket, "MSG_DONTWAIT", 0) | getattr(socket, "MSG_NOSIGNAL", 0)
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def available() -> bool:
    """Whether the libc calls are in use (else the socket module's stand in)."""
    return _LIBC is not None


def _error(libc: _Libc) -> OSError:
    code = libc.get_errno()
    return OSError(code, os.strerror(code))  # OSError picks the subclass (BrokenPipeError ...)


def set_bytes_option(sock: socket.socket, level: int, option: int, value: bytes) -> None:
    """sock.setsockopt(level, option, value) for a bytes value (a struct timeval, say).

    The socket module first tries its integer form and then its (None, length) form, and each
    failed try formats a TypeError through vfprintf() before the bytes form is tried: about
    1 us per call, and 3 KB of C stack below the caller. A participant sets SO_RCVTIMEO
    before most waits, and that depth kept a third page of each one's stack resident.
    """
    libc = _LIBC
    if libc is None:
        sock.setsockopt(level, option, value)
    elif libc.setsockopt(sock.fileno(), level, option, value, len(value)) != 0:
        raise _error(libc)


def send_now(sock: socket.socket, data: bytes) -> int:
    """Send what the socket's buffer takes at once; return how many bytes that was (0 when
    the buffer is full). Other errors raise OSError, as socket.send() does. Without libc,
    socket.send() with MSG_DONTWAIT (which hands the GIL over around the call).
    """
    libc = _LIBC
    if libc is None:
        if not _SEND_FLAGS:  # no MSG_DONTWAIT either: the caller's blocking send does it
            return 0
        try:
            return sock.send(data, _SEND_FLAGS)
        except BlockingIOError:
            return 0
    sent = libc.send(sock.fileno(), data, len(data), _SEND_FLAGS)
    if sent >= 0:
        return sent
    error = _error(libc)
    if error.errno in _WOULD_BLOCK:
        return 0
    raise error


class _PollFd(ctypes.Structure):
    _fields_ = (("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short))


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


def _ppoll() -> Callable[..., int] | None:
    """ppoll() from the C library, called with the GIL released (it blocks); None where it
    does not exist."""
    return libc_function("ppoll", (ctypes.POINTER(_PollFd), ctypes.c_ulong,
                                   ctypes.POINTER(_Timespec), ctypes.c_void_p), ctypes.c_int,
                         keep_gil=False)


_PPOLL = _ppoll()
_POLLIN = 0x001
# How late the kernel lets a poll() timeout end (fs/select.c, select_estimate_accuracy): a
# thousandth of the timeout, at least the thread's timer slack (50 us unless changed), at most
# 100 ms. Measured here (KVM, HZ=250), a ppoll() ends up to about twice that plus the wake-up
# late: 0.4-0.8 ms at 200 ms, 1-2 ms at 500 ms, 6-8.5 ms at 5 s.
_SLACK_MIN_NS, _SLACK_MAX_NS = 50_000, 100_000_000
# A wait this long or longer ends in two steps: a ppoll() that stops short of the due time by
# twice the slack and a millisecond, then one for the rest, late by at most the slack of a
# wait of a few ms (50 us) and the wake-up. A shorter one is a single ppoll(), late by its own
# slack (at most 0.25 ms) and the wake-up: ending it early instead would take a second wake-up
# for every message at -smi 100. Messages at -smi 250 or more are rare enough that their
# second wake-up costs little.
_TWO_STEPS_NS = 250_000_000
_SHORT_OF_DUE_NS = 1_000_000


def ppoll_available() -> bool:
    """Whether exact waits (ExactWait) can be had: libc's ppoll() was found."""
    return _PPOLL is not None


class ExactWait:
    """Wait until one socket is readable or a CLOCK_MONOTONIC due time comes, ending as close
    to that time as the kernel's timer slack and the scheduler allow: one ppoll() with a
    nanosecond timeout. No descriptor of its
    own (a timerfd would be one more per participant, and the open-files limit is the count of
    participants a process can hold), and nothing rounded to the timer wheel's buckets as
    SO_RCVTIMEO is (about 30 ms at 1 s, 250 ms at 10 s, 2 s at 60 s). A long wait takes two
    wake-ups (_TWO_STEPS_NS), the last of them a short wait that ends at the due time. Used by
    one thread at a time."""

    __slots__ = ("_fds", "_timeout")

    def __init__(self, sock: socket.socket) -> None:
        self._fds = _PollFd(sock.fileno(), _POLLIN, 0)
        self._timeout = _Timespec(0, 0)

    def wait(self, due_ns: int | None) -> bool:
        """True once the socket is readable (or closed), False once `due_ns` has come."""
        ppoll = _PPOLL
        assert ppoll is not None  # ppoll_available() was asked first
        fds, timeout = self._fds, self._timeout
        while True:
            if due_ns is None:
                limit = None
            else:
                remaining = due_ns - time.monotonic_ns()
                if remaining <= 0:
                    return False
                if remaining >= _TWO_STEPS_NS:  # the first step: short of the due time
                    slack = min(max(remaining // 1000, _SLACK_MIN_NS), _SLACK_MAX_NS)
                    remaining -= 2 * slack + _SHORT_OF_DUE_NS
                timeout.tv_sec, timeout.tv_nsec = divmod(remaining, 1_000_000_000)
                limit = ctypes.byref(timeout)
            fds.revents = 0
            ready = ppoll(ctypes.byref(fds), 1, limit, None)
            if ready > 0:
                return True
            code = ctypes.get_errno() if ready < 0 else errno.EINTR
            if code != errno.EINTR:  # a signal: wait again for what is left
                raise OSError(code, os.strerror(code))


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):  # struct msghdr as glibc lays it out
    _fields_ = (("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint),
                ("msg_iov", ctypes.POINTER(_IoVec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int))


_CONTROL_SPACE = 32  # one control message: a struct timespec behind its header (CMSG_SPACE)
# NowReader's block: a msghdr, then its one iovec, then the control buffer.
_IOV_AT = ctypes.sizeof(_MsgHdr)
_CONTROL_AT = _IOV_AT + ctypes.sizeof(_IoVec)
_BLOCK_SIZE = _CONTROL_AT + _CONTROL_SPACE
_POINTER_AND_SIZE = struct.Struct("@PN")  # a pointer and a size_t: iov_base/iov_len, ...
_SIZE = struct.Struct("@N")
_CMSG_HEADER = struct.Struct("@Qii")  # cmsg_len (size_t), cmsg_level, cmsg_type


def _recvmsg() -> Callable[..., int] | None:
    """recvmsg() from the C library, called with the GIL held (it is given MSG_DONTWAIT and
    never blocks); None where it is missing, or not on Linux (msghdr's layout is glibc's)."""
    if not sys.platform.startswith("linux") or struct.calcsize("P") != 8:
        return None
    return libc_function("recvmsg", (ctypes.c_int, ctypes.c_void_p, ctypes.c_int),
                         ctypes.c_ssize_t)  # the msghdr's address: NowReader's block


_RECVMSG = _recvmsg()


def read_now_available() -> bool:
    """Whether read_now() reads through libc with the GIL held (else the socket module's)."""
    return _RECVMSG is not None


class NowReader:
    """What one socket holds, up to `size` bytes, without waiting and without letting the GIL
    go: (the bytes; the kernel's receive time of the last of them in Unix ns, or 0 without
    `timestamp_option`, SO_TIMESTAMPNS as platform_support found it, or when the kernel did
    not stamp them). None when there is nothing yet; b'' at the peer's FIN; OSError otherwise.

    socket.recv() with MSG_DONTWAIT lets the GIL go around a call that cannot block: with
    hundreds of threads waiting for the GIL, one takes it and this thread waits to get it
    back, a context switch or two per message for nothing. The msghdr, its iovec and the
    control buffer live in one block of this socket's own (one thread reads a socket: a
    connection's worker), written with struct, not as ctypes objects (about 250 bytes a
    connection, where the objects took a kilobyte); the data buffer is each read's own, so
    nothing of `size` stays held between reads while thousands of connections wait. Without
    libc's recvmsg, the socket module's, with MSG_DONTWAIT."""

    __slots__ = ("_sock", "_block", "_at")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        if _RECVMSG is None:
            return
        self._block = block = ctypes.create_string_buffer(_BLOCK_SIZE)
        self._at = at = ctypes.addressof(block)
        _POINTER_AND_SIZE.pack_into(block, _MsgHdr.msg_iov.offset, at + _IOV_AT, 1)  # one iovec

    def read(self, size: int, timestamp_option: int = 0) -> tuple[bytes, int] | None:
        recvmsg = _RECVMSG
        if recvmsg is None:
            return _read_now_portable(self._sock, size, timestamp_option)
        data = ctypes.create_string_buffer(size)
        block, at = self._block, self._at
        _POINTER_AND_SIZE.pack_into(block, _IOV_AT, ctypes.addressof(data), size)
        # The kernel writes back how much control space it used: set it each time.
        _POINTER_AND_SIZE.pack_into(block, _MsgHdr.msg_control.offset,
                                    at + _CONTROL_AT if timestamp_option else 0,
                                    _CONTROL_SPACE if timestamp_option else 0)
        got = recvmsg(self._sock.fileno(), at, _DONTWAIT)
        if got < 0:
            code = ctypes.get_errno()
            if code in _WOULD_BLOCK:
                return None
            raise OSError(code, os.strerror(code))
        stamp = 0
        if timestamp_option and _SIZE.unpack_from(block, _MsgHdr.msg_controllen.offset)[0] \
                >= _CONTROL_SPACE:
            length, level, kind = _CMSG_HEADER.unpack_from(block, _CONTROL_AT)
            if level == socket.SOL_SOCKET and kind == timestamp_option and length >= 32:
                seconds, nanos = TIMESPEC.unpack_from(block, _CONTROL_AT + _CMSG_HEADER.size)
                stamp = seconds * 1_000_000_000 + nanos
        return ctypes.string_at(data, got), stamp


def read_now(sock: socket.socket, size: int, timestamp_option: int = 0
             ) -> tuple[bytes, int] | None:
    """One NowReader read of `sock` (a connection reads through its own NowReader)."""
    return NowReader(sock).read(size, timestamp_option)


def _read_now_portable(sock: socket.socket, size: int, timestamp_option: int
                       ) -> tuple[bytes, int] | None:
    try:
        if not timestamp_option:
            return sock.recv(size, _DONTWAIT), 0
        data, ancillary, _, _ = sock.recvmsg(size, socket.CMSG_SPACE(TIMESPEC.size), _DONTWAIT)
    except BlockingIOError:
        return None
    return data, kernel_stamp(ancillary, timestamp_option)


def shutdown(sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    """sock.shutdown(how), keeping the GIL: a run's end wakes thousands of workers this way,
    one connection after another, and a main thread that let the GIL go at each would wait
    behind the workers it had just woken to get it back. OSError as socket.shutdown()."""
    libc = _LIBC
    if libc is None:
        sock.shutdown(how)
    elif libc.shutdown(sock.fileno(), how) != 0:
        raise _error(libc)
