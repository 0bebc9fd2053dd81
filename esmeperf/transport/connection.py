"""One authorized WebSocket to ESME's Messenger API, read and written through `wsframe`."""

from __future__ import annotations

import functools
import math
import select
import socket
import ssl
import struct
import sys
import threading
import time
from enum import IntEnum
from typing import Any
from urllib.parse import urlsplit

import websocket

from ..errors import WebSocketFailure
from ..system import platform_support, syscalls
from . import protocol, wsframe


class CloseCode(IntEnum):
    """WebSocket close status codes (RFC 6455 section 7.4.1) a client sends or meets."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


def go_addr(sockname: tuple[Any, ...]) -> str:
    """A socket address as Go's net.Addr.String() prints it: 127.0.0.1:5000 or [::1]:5000."""
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Closed(WebSocketFailure):
    """The peer closed the WebSocket."""


class Connection:
    """One authorized WebSocket to the Messenger API, used by one worker thread.

    websocket-client does the handshake; frames then go through `wsframe` (see there why).
    On a plain TCP socket a receive deadline is set with SO_RCVTIMEO, so waiting for a frame
    is one recv() syscall: Python's own socket timeouts add a poll() and, when the timeout
    changes, an ioctl() per call, each a GIL hand-off. TLS sockets use Python's timeouts, and
    so does every socket where platform_support found no kernel deadlines (or --portable).
    `close()` and `abort()` may be called from the main thread to wake the worker at shutdown.
    """

    def __init__(self, sock: socket.socket, url: str, send_timeout: float,
                 recv_size: int = wsframe.RECV_SIZE, received: bytes = b"") -> None:
        self.url = url
        # Only the socket is kept, not websocket-client's object (the handshake's headers and
        # more, about 0.6 KB) that would stay alive for nothing in every one of thousands.
        self.sock = sock
        self.local_addr = go_addr(self.sock.getsockname())
        self._lock = threading.Lock()  # one frame at a time: the worker, pongs, close()
        self._reader = wsframe.FrameReader(self.sock, self._send_raw, recv_size)
        self._reader.feed(received)  # what came right behind the handshake's response
        mechanisms = platform_support.active()  # read once: the hot path keeps flags
        self._plain = not isinstance(self.sock, ssl.SSLSocket)
        # Deadlines as SO_RCVTIMEO/SO_SNDTIMEO, short waits in poll() + MSG_DONTWAIT; else
        # Python's socket timeouts (a poll() per call), as for TLS.
        self._kernel = self._plain and mechanisms.kernel_deadlines
        self._can_batch = self._kernel and mechanisms.batched_reads
        self._exact = self._kernel and mechanisms.exact_waits  # waits end at their due time
        self._waiter: syscalls.ExactWait | None = None  # made at the first wait
        self._timestamp_option = mechanisms.timestamp_option or 0
        self._dontwait = mechanisms.dontwait
        self._send_timeout = send_timeout
        self._timeout: float | None = -1.0  # the socket's receive (Python: any) timeout
        self._batching = False
        self._poll: select.poll | None = None  # made on the first sub-jiffy wait
        # Set once by close()/abort() (any thread), read by the worker: a plain flag, as an
        # Event would cost each of thousands of connections a Condition it never waits on.
        self._closing = False
        if self._exact and mechanisms.batched_reads:
            # A frame's receive time is the kernel's, not the moment this thread next got the
            # GIL: a round trip is the target's and the network's, the wake-up is not in it.
            self._time_by_kernel()
        if self._kernel:
            self.sock.settimeout(None)  # blocking; deadlines come from SO_RCVTIMEO/SO_SNDTIMEO
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(send_timeout))
        else:
            self.sock.settimeout(send_timeout)
            self._timeout = send_timeout

    @classmethod
    def open(cls, ws_url: str, token: str, timeout: float, newline: bool,
             recv_size: int = wsframe.RECV_SIZE) -> Connection:
        """Connect to `{ws_url}/connect` and send the authorization frame.

        ESME acknowledges nothing: a bad token shows only as a closed socket later.
        `newline` as protocol.authorization says.
        """
        url = f"{ws_url}/connect"
        parts = urlsplit(url)
        buffered: _HandshakeSocket | None = None
        try:
            if parts.scheme == "ws":
                buffered = _HandshakeSocket(_tcp_connect(parts.hostname or "",
                                                         parts.port or 80, timeout))
            ws = websocket.create_connection(url, timeout=timeout, skip_utf8_validation=True,
                                             socket=buffered)
        except (OSError, websocket.WebSocketException) as exc:
            if buffered is not None:
                buffered.sock.close()
            raise WebSocketFailure(f"{url}: could not connect to websocket: {exc}") from exc
        if buffered is not None and ws.sock is buffered:
            conn = cls(buffered.sock, url, send_timeout=timeout, recv_size=recv_size,
                       received=buffered.rest())
        else:  # wss://, or a redirect websocket-client followed on a socket of its own
            assert ws.sock is not None
            conn = cls(ws.sock, url, send_timeout=timeout, recv_size=recv_size)
        auth = protocol.authorization(token, newline)
        try:
            conn._send_raw(wsframe.encode(auth.encode()))
        except OSError as exc:
            conn.abort()
            raise WebSocketFailure(f"{url}: error sending authorization message: {exc}") from exc
        return conn

    def _send_raw(self, frame: bytes) -> None:
        with self._lock:
            if self._kernel:
                # What fits in the send buffer goes without letting go of the GIL (socket's
                # send() lets go even when it does not block, and with hundreds of threads
                # waiting for the GIL, taking it back costs this thread a context switch or
                # two); the rest, if any, waits for room as below, up to SO_SNDTIMEO.
                sent = syscalls.send_now(self.sock, frame)
                if sent == len(frame):
                    return
                frame = frame[sent:]
            elif self._timeout != self._send_timeout:
                # One Python timeout serves recv() and send(): a send must not inherit a
                # receive's few milliseconds (or its None, forever).
                self.sock.settimeout(self._send_timeout)
                self._timeout = self._send_timeout
            self.sock.sendall(frame)

    def send(self, text: str) -> None:
        """Send one text frame; Closed once shutdown closed the connection (nothing is sent)."""
        if self._closing:
            raise Closed(f"connection {self.local_addr}: closed by this side")
        try:
            self._send_raw(wsframe.encode(text.encode()))
        except OSError as exc:
            raise WebSocketFailure(
                f"connection {self.local_addr}: error sending message: {exc}") from exc

    def recv(self, timeout: float | None) -> str | None:
        """The next text or binary message as text, or None when `timeout` passes first."""
        return self.recv_until(None if timeout is None else time.monotonic() + timeout)

    def recv_until(self, due: float | None) -> str | None:
        """The next text or binary message as text, or None once time.monotonic() reaches
        `due` (None: no deadline).

        Where the platform has ppoll() (Linux) the wait ends at `due` itself, to the
        scheduler's wake-up latency (syscalls.ExactWait). Elsewhere it ends at the receive
        timeout's, which SO_RCVTIMEO rounds up to the kernel's timer wheel (tens of ms at 1 s,
        2 s at 60 s).
        """
        if self._exact:
            return self._recv_exact(due)
        return self._recv_timeout(due)

    def _next_message(self) -> str | None:
        """A whole message already read, as text; Closed for a close frame or bad framing."""
        try:
            message = self._reader.next_message()
        except (wsframe.ProtocolError, OSError) as exc:  # bad framing, or a failed pong
            raise Closed(f"connection {self.local_addr}: error receiving message: {exc}"
                         ) from exc
        if message is None:
            return None
        opcode, payload = message
        if opcode == wsframe.OP_CLOSE:
            self._send_close_frame()  # RFC 6455 5.5.1: answer a close with a close
            raise Closed(f"connection {self.local_addr}: error receiving message: "
                         f"closed by server{_close_status(payload)}")
        return payload.decode("utf-8", "replace")

    def _fill(self, flags: int | None) -> bool:
        """Read what the socket has into the frame reader; False when it had nothing. `flags`
        None: without waiting and with the GIL kept (FrameReader.fill_now)."""
        try:
            if flags is None:
                return self._reader.fill_now()
            self._reader.fill(flags)
        except (BlockingIOError, TimeoutError):
            return False
        except OSError as exc:
            raise Closed(f"connection {self.local_addr}: error receiving message: "
                         f"{exc.strerror or exc}") from exc
        return True

    def _recv_exact(self, due: float | None) -> str | None:
        """recv_until with exact waits (syscalls.ExactWait): one wake-up at `due`, or one per
        frame (when not batching), and a close from the server wakes the thread at once (FIN
        is readable whatever SO_RCVLOWAT says). Every read is MSG_DONTWAIT, with the GIL kept
        (syscalls.NowReader): the waiting is ppoll()'s, the one hand-off of the GIL."""
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = syscalls.ExactWait(self.sock)
        due_ns = None if due is None else int(due * 1e9)
        at_due = False
        while True:
            message = self._next_message()
            if message is not None or at_due:
                return message
            if due is None and self._batching:
                self.batch_reads(False)  # no deadline to wake at: read frames as they come
            if not waiter.wait(due_ns):
                if not self._batching:
                    return None
                at_due = True  # take what came below the low-water mark, once
            self._fill(None)

    def _recv_timeout(self, due: float | None) -> str | None:
        """recv_until on the socket's receive timeout (no ppoll() here, or --portable)."""
        reader = self._reader
        timeout = None if due is None else max(0.0, due - time.monotonic())
        while True:
            message = self._next_message()
            if message is not None:
                return message
            if timeout is None and self._batching:
                self.batch_reads(False)  # no deadline to wake at: read frames as they come
            if due is not None and reader.pending():  # part of a frame came: the rest
                timeout = due - time.monotonic()      # gets what is left, not it all again
                if timeout <= 0:
                    return None
            flags = 0
            if self._kernel and timeout is not None and timeout < FINE_TIMEOUT:
                # SO_RCVTIMEO counts in jiffies (4 ms at HZ=250): a 1 ms interval would
                # wait 4. Batched reads sleep to the deadline (microseconds) and take what
                # came, even below the low-water mark (MSG_DONTWAIT does); others wait in
                # poll(), which wakes for the first frame (to the millisecond otherwise).
                if self._batching:
                    time.sleep(timeout)
                elif not self._wait_readable(timeout):
                    return None
                flags = socket.MSG_DONTWAIT
            elif timeout != self._timeout:
                self._set_recv_timeout(timeout)
            if not self._fill(flags):
                return None

    def _wait_readable(self, timeout: float) -> bool:
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self.sock, select.POLLIN)
        return bool(self._poll.poll(math.ceil(timeout * 1000)))

    def unread_bytes(self) -> int | None:
        """Bytes the peer sent that this side has not handled yet: in the kernel's receive
        queue (FIONREAD) and in the frame reader's buffer. None where the platform cannot tell
        (no FIONREAD) or the socket is closed. Any thread may ask (the stall check does)."""
        try:
            import fcntl
            import termios

            raw = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except (ImportError, AttributeError, OSError, ValueError):
            return None
        return int.from_bytes(raw, sys.byteorder, signed=True) + self._reader.buffered()

    @property
    def reads(self) -> int:
        """How many reads of the socket so far (tells frames of one read apart from others)."""
        return self._reader.reads

    @property
    def rx_ns(self) -> int:
        """Kernel receive time (Unix ns) of the data last read, where the kernel times reads
        (batched reads; every read on the exact-wait path), else 0."""
        return self._reader.rx_ns if self._reader.timestamps else 0

    def _time_by_kernel(self) -> None:
        """Have the kernel stamp each read with its arrival time (SO_TIMESTAMPNS)."""
        if self._timestamp_option and not self._reader.timestamps:
            self.sock.setsockopt(socket.SOL_SOCKET, self._timestamp_option, 1)
            self._reader.timestamps = self._timestamp_option

    def batch_reads(self, on: bool) -> bool:
        """Wake only at the recv() deadline, not for each frame; time frames by the kernel.

        A paced participant then wakes once per message instead of twice: the echo of its
        last message waits in the socket (SO_RCVLOWAT above any echo) until the next send is
        due, and its arrival time comes from the kernel's receive timestamp (SO_TIMESTAMPNS),
        not from when this thread got the GIL. A close from the server still wakes at once;
        anything else (an `error` frame, the stop) is seen at the deadline. Raising or lowering
        SO_RCVLOWAT does not wake a recv() already waiting: only its deadline does. Plain TCP
        where platform_support's probe saw all this work (Linux), not with --portable: then
        every frame wakes its reader and is timed by the clock right after recv(). Returns
        whether batching is on.
        """
        if not self._can_batch or on == self._batching:
            return self._batching
        if on:
            self._time_by_kernel()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT,
                             platform_support.BATCH_LOWAT if on else 1)
        self._batching = on
        if not self._exact:  # then only batched reads are timed by the kernel
            self._reader.timestamps = self._timestamp_option if on else 0
        if on:  # a read then brings the frames of a whole interval
            self._reader.recv_size = max(self._reader.recv_size, BATCH_RECV_SIZE)
        return on

    def _set_recv_timeout(self, timeout: float | None) -> None:
        if self._kernel:
            # A zero timeval means "block forever": only None may ask for that.
            value = _timeval(max(timeout, 1e-6)) if timeout is not None else _FOREVER
            syscalls.set_bytes_option(self.sock, socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        else:
            self.sock.settimeout(timeout)
        self._timeout = timeout

    @property
    def closing(self) -> bool:
        """True once shutdown asked this connection to close."""
        return self._closing

    def close(self) -> None:
        """Send a close frame (NORMAL) if that can be done at once; the server answers by closing.

        Best effort, never blocking: when the server stopped reading (a full send buffer, or
        the worker stuck in its own send) the frame is skipped, and abort() follows anyway.
        """
        self._closing = True
        self._send_close_frame()

    def _send_close_frame(self) -> None:
        if not self._lock.acquire(timeout=0.1):
            return
        try:
            frame = wsframe.encode(_CLOSE_NORMAL, wsframe.OP_CLOSE)
            if self._dontwait:  # at a run's end, thousands in a row: the GIL kept (syscalls)
                syscalls.send_now(self.sock, frame)
            elif _writable_now(self.sock):  # then 8 bytes go at once, whatever the timeout
                self.sock.send(frame)
        except OSError:
            pass  # buffer full or already gone: the worker sees that itself
        finally:
            self._lock.release()

    def wake(self) -> None:
        """Shut the TCP connection down without closing the socket: the worker blocked in
        recv() wakes, and closes it (Context.hold aborts it on its way out). Shutdown's pass
        over thousands of connections, which keeps the GIL throughout (syscalls.shutdown)."""
        self._closing = True
        try:
            syscalls.shutdown(self.sock)
        except OSError:
            pass  # not connected any more

    def abort(self) -> None:
        """Drop the TCP connection now; wakes a worker blocked in recv()."""
        self.wake()
        self.sock.close()


class _HandshakeSocket:
    """A connected socket whose reads websocket-client's handshake takes from a buffer.

    websocket-client reads the handshake's response a byte at a time: about 150 recv()
    calls per connection, each handing the GIL over, which with hundreds of arrivals a second
    cost more CPU than the rest of an arrival. Here one recv() brings the whole response;
    bytes behind it (frames, in principle) are kept for the frame reader. Everything else
    goes to the socket itself.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._buf):
            self._buf, self._pos = self.sock.recv(HANDSHAKE_RECV_SIZE), 0
        data = self._buf[self._pos:self._pos + size]
        self._pos += len(data)
        return data

    def rest(self) -> bytes:
        """What was read past the handshake's response."""
        return self._buf[self._pos:]

    def gettimeout(self) -> float | None:
        """0 while the buffer holds bytes (a read of them does not wait), else the socket's.

        websocket-client asks before each one-byte read, and for a socket without a timeout
        it reads straight away instead of wrapping the read in a closure and error handlers
        made for waiting: a third of the handshake's cost. An empty buffer gets its real
        timeout, and its usual handling.
        """
        return 0.0 if self._pos < len(self._buf) else self.sock.gettimeout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@functools.lru_cache(maxsize=16)
def _address(host: str, port: int) -> tuple[socket.AddressFamily, Any]:
    """The first address of host:port, looked up once a run, not once per connection."""
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    return family, sockaddr


def _tcp_connect(host: str, port: int, timeout: float) -> socket.socket:
    """A connected TCP socket with TCP_NODELAY, as websocket-client would open it."""
    family, sockaddr = _address(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


HANDSHAKE_RECV_SIZE = 4096  # a whole 101 response, headers and all
_CLOSE_NORMAL = struct.pack("!H", CloseCode.NORMAL)
_TIMEVAL = platform_support.TIMEVAL
_FOREVER = _TIMEVAL.pack(0, 0)
FINE_TIMEOUT = 0.02  # seconds: shorter waits use poll(), not SO_RCVTIMEO (jiffies)
BATCH_RECV_SIZE = 4096  # a few echoes per batched read; bigger frames take more reads


def _timeval(seconds: float) -> bytes:
    """A struct timeval for a positive timeout (never rounded down to 0, which means forever)."""
    micro = max(1, round(seconds * 1_000_000))
    return _TIMEVAL.pack(*divmod(micro, 1_000_000))


def _writable_now(sock: socket.socket) -> bool:
    """Whether a small send would not block (where MSG_DONTWAIT is missing). select() on
    Windows, which has no poll(); poll() elsewhere, since select() fails on descriptors
    above 1,023, which a run of thousands of participants has."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        return bool(poller.poll(0))
    return bool(select.select([], [sock], [], 0)[1])


def _close_status(payload: bytes) -> str:
    """' (1009 MESSAGE_TOO_BIG)' for a close frame's status code; '' if it carries none."""
    if len(payload) < 2:
        return ""
    code = int.from_bytes(payload[:2], "big")
    try:
        return f" ({code} {CloseCode(code).name})"
    except ValueError:  # an application's own code (4000-4999) or one this list lacks
        return f" ({code})"
