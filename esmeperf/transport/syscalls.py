"""Socket calls made through libc with the GIL held, where the socket module would hand it over
or take a detour: a send and a setsockopt matter once per message in each of thousands of
threads, and a shutdown once per connection when a run ends, thousands in a row. Also Linux's
timerfd, which Python 3.11's os module lacks: the exact deadline of a participant's next send.

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
from collections.abc import Callable
from typing import Any, NamedTuple

_WOULD_BLOCK = frozenset({errno.EAGAIN, errno.EWOULDBLOCK})


class _Libc(NamedTuple):
    setsockopt: Callable[[int, int, int, bytes, int], int]
    send: Callable[[int, bytes, int, int], int]
    shutdown: Callable[[int, int], int]
    get_errno: Callable[[], int]  # errno as the last of these calls in this thread left it


def _libc() -> _Libc | None:
    """setsockopt(), send() and shutdown() from the C library, called with the GIL held; None
    if there is no such library."""
    try:
        import ctypes

        libc = ctypes.PyDLL(None, use_errno=True)
        setsockopt, send, shutdown = libc.setsockopt, libc.send, libc.shutdown
    except (ImportError, OSError, AttributeError, TypeError):  # no ctypes, libc or symbol
        return None
    setsockopt.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint)
    setsockopt.restype = ctypes.c_int
    send.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
    send.restype = ctypes.c_ssize_t
    shutdown.argtypes = (ctypes.c_int, ctypes.c_int)
    shutdown.restype = ctypes.c_int
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


class _TimerFd(NamedTuple):
    create: Callable[[int, int], int]
    settime: Callable[[int, int, bytes, None], int]
    get_errno: Callable[[], int]


def _timerfd() -> _TimerFd | None:
    """timerfd_create() and timerfd_settime() from the C library, called with the GIL held
    (neither blocks); None where they do not exist (anything but Linux)."""
    try:
        import ctypes

        libc = ctypes.PyDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (ImportError, OSError, AttributeError, TypeError):
        return None
    create.argtypes = (ctypes.c_int, ctypes.c_int)
    create.restype = ctypes.c_int
    settime.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
    settime.restype = ctypes.c_int
    return _TimerFd(create, settime, ctypes.get_errno)


_TIMERFD = _timerfd()
# <sys/timerfd.h> and <time.h> on Linux (every architecture): CLOCK_MONOTONIC is the clock of
# time.monotonic(), so a deadline computed from it is armed as it is.
_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1
_TFD_CLOEXEC = 0o2000000
_TFD_NONBLOCK = 0o4000
# struct itimerspec: it_interval (0: one shot), it_value (the absolute expiry); two timespecs.
_ITIMERSPEC = struct.Struct("llll")
_DISARM = _ITIMERSPEC.pack(0, 0, 0, 0)


def timerfd_available() -> bool:
    """Whether timerfd_create() and timerfd_settime() were found (Linux)."""
    return _TIMERFD is not None


def timerfd_create() -> int:
    """A new timer descriptor on CLOCK_MONOTONIC (non-blocking, close-on-exec), disarmed."""
    timer = _TIMERFD
    if timer is None:
        raise OSError(errno.ENOSYS, "timerfd is not available on this platform")
    fd = timer.create(_CLOCK_MONOTONIC, _TFD_CLOEXEC | _TFD_NONBLOCK)
    if fd < 0:
        code = timer.get_errno()
        raise OSError(code, os.strerror(code))
    return fd


def timerfd_arm(fd: int, due_ns: int | None) -> None:
    """Make `fd` readable at the absolute CLOCK_MONOTONIC time `due_ns` (at once if that has
    passed), or never (None). Re-arming clears an expiry not yet read, so the descriptor is
    never read: it is readable exactly while its last deadline has passed.

    The kernel fires a timerfd on an hrtimer with no slack. A poll() timeout or SO_RCVTIMEO
    would not do: poll's timer may fire up to 0.1 % of the timeout late (60 ms at 60 s), and
    SO_RCVTIMEO runs on the timer wheel, whose buckets grow to 2 s at a 60 s timeout.
    """
    timer = _TIMERFD
    assert timer is not None  # callers hold an fd from timerfd_create()
    if due_ns is None:
        spec = _DISARM
    else:
        seconds, nanos = divmod(max(1, due_ns), 1_000_000_000)  # all zeros would disarm
        spec = _ITIMERSPEC.pack(0, 0, seconds, nanos)
    if timer.settime(fd, _TFD_TIMER_ABSTIME, spec, None) != 0:
        code = timer.get_errno()
        raise OSError(code, os.strerror(code))


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):  # struct msghdr as glibc lays it out
    _fields_ = (("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint),
                ("msg_iov", ctypes.POINTER(_IoVec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int))


class _Reader(NamedTuple):
    recvmsg: Callable[[int, Any, int], int]
    get_errno: Callable[[], int]
    msg: _MsgHdr
    iov: _IoVec
    data: Any  # ctypes char array: the bytes read
    control: Any  # ctypes char array: their control messages


#: The most one read_now() takes.
READ_NOW_MAX = 65536
# One control message's room: a struct timespec behind its header (CMSG_SPACE(16) on Linux).
_CONTROL_SPACE = 32
_CMSG_HEADER = struct.Struct("@Qii")  # cmsg_len (size_t), cmsg_level, cmsg_type
_TIMESPEC = struct.Struct("@qq")


def _reader() -> _Reader | None:
    """recvmsg() from the C library with one buffer for the whole process, called with the
    GIL held: only the thread holding the GIL touches the buffer, from the call to the copy
    out. None where it is missing, or not on Linux (msghdr's layout is glibc's)."""
    if not sys.platform.startswith("linux") or struct.calcsize("P") != 8:
        return None
    try:
        libc = ctypes.PyDLL(None, use_errno=True)
        recvmsg = libc.recvmsg
    except (OSError, AttributeError):
        return None
    recvmsg.argtypes = (ctypes.c_int, ctypes.POINTER(_MsgHdr), ctypes.c_int)
    recvmsg.restype = ctypes.c_ssize_t
    data = ctypes.create_string_buffer(READ_NOW_MAX)
    control = ctypes.create_string_buffer(_CONTROL_SPACE)
    iov = _IoVec(ctypes.cast(data, ctypes.c_void_p), READ_NOW_MAX)
    msg = _MsgHdr(None, 0, ctypes.pointer(iov), 1, ctypes.cast(control, ctypes.c_void_p), 0, 0)
    return _Reader(recvmsg, ctypes.get_errno, msg, iov, data, control)


_READER = _reader()


def read_now_available() -> bool:
    """Whether read_now() reads through libc with the GIL held (else the socket module's)."""
    return _READER is not None


def read_now(sock: socket.socket, size: int, timestamp_option: int = 0
             ) -> tuple[memoryview, int] | None:
    """What the socket holds, up to `size` bytes, without waiting and without letting the GIL
    go: (the bytes, valid until the next call, to be copied at once; the kernel's receive
    time of the last of them in Unix ns, or 0 without `timestamp_option`, SO_TIMESTAMPNS as
    platform_support found it). None when there is nothing yet; b'' at the peer's FIN;
    OSError otherwise.

    socket.recv() with MSG_DONTWAIT lets the GIL go around a call that cannot block: with
    hundreds of threads waiting for the GIL, one takes it and this thread waits to get it
    back, a context switch or two per message for nothing.
    """
    reader = _READER
    if reader is None:
        return _read_now_portable(sock, size, timestamp_option)
    msg = reader.msg
    reader.iov.iov_len = min(size, READ_NOW_MAX)
    msg.msg_controllen = _CONTROL_SPACE if timestamp_option else 0
    msg.msg_flags = 0
    got = reader.recvmsg(sock.fileno(), ctypes.byref(msg), _DONTWAIT)
    if got < 0:
        code = reader.get_errno()
        if code in _WOULD_BLOCK:
            return None
        raise OSError(code, os.strerror(code))
    stamp = 0
    if timestamp_option and msg.msg_controllen >= _CONTROL_SPACE:
        length, level, kind = _CMSG_HEADER.unpack_from(reader.control)
        if level == socket.SOL_SOCKET and kind == timestamp_option and length >= 32:
            seconds, nanos = _TIMESPEC.unpack_from(reader.control, _CMSG_HEADER.size)
            stamp = seconds * 1_000_000_000 + nanos
    return memoryview(reader.data)[:got], stamp


def _read_now_portable(sock: socket.socket, size: int, timestamp_option: int
                       ) -> tuple[memoryview, int] | None:
    try:
        if not timestamp_option:
            return memoryview(sock.recv(size, _DONTWAIT)), 0
        data, ancillary, _, _ = sock.recvmsg(size, socket.CMSG_SPACE(_TIMESPEC.size), _DONTWAIT)
    except BlockingIOError:
        return None
    stamp = 0
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == timestamp_option:
            seconds, nanos = _TIMESPEC.unpack_from(value)
            stamp = seconds * 1_000_000_000 + nanos
    return memoryview(data), stamp


def shutdown(sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    """sock.shutdown(how), keeping the GIL: a run's end wakes thousands of workers this way,
    one connection after another, and a main thread that let the GIL go at each would wait
    behind the workers it had just woken to get it back. OSError as socket.shutdown()."""
    libc = _LIBC
    if libc is None:
        sock.shutdown(how)
    elif libc.shutdown(sock.fileno(), how) != 0:
        raise _error(libc)
