"""RFC 6455 client framing for the per-message path.

websocket-client opens and upgrades the connection (URL, TLS, proxies, the handshake); after that
every frame goes through here. Its own frame reader asks the socket for the 2-byte header, then
for the rest, each with a poll: about four syscalls per frame, and in a process of a thousand
threads every syscall is a GIL hand-off. This reader takes whatever the socket holds in one
recv() and cuts frames out of a buffer; the writer sends a frame with one send().
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Callable

from ..system import syscalls

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_CONTROL = OP_CLOSE
_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG})
MAX_MESSAGE = 16 << 20  # no ESME frame comes near; a peer sending more is broken
RECV_SIZE = 65536  # the most one read takes; a participant's reads ask for less
_TIMESPEC = syscalls.TIMESPEC
# Room for one timestamp's control message; Windows has no recvmsg() (nor timestamps to read).
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
_COMPACT_AT = 1 << 20  # drop consumed bytes from the buffer once this many piled up


class ProtocolError(Exception):
    """The peer broke the framing rules."""


def _mask(payload: bytes, key: int) -> bytes:
    """XOR the payload with the 4-byte key, repeated (one big-int operation, no Python loop)."""
    n = len(payload)
    if not n:
        return payload
    repeated = key.to_bytes(4, "big") * ((n + 3) // 4)
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated[:n], "big")
    return value.to_bytes(n, "big")


def encode(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, masked client frame.

    The masking key comes from `random`, not os.urandom: a key is needed per frame, and a
    getrandom() syscall per message is measurable here. Masking protects browsers behind
    caching proxies; nothing on this path needs cryptographic keys.
    """
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    key = random.getrandbits(32)
    return header + key.to_bytes(4, "big") + _mask(payload, key)


class FrameReader:
    """Cuts whole messages out of what one socket delivers; answers pings."""

    def __init__(self, sock: socket.socket, send_raw: Callable[[bytes], None],
                 recv_size: int = RECV_SIZE) -> None:
        self._sock = sock
        # Each read allocates this much before shrinking to what came: ten thousand threads
        # each asking for 64 KiB fragment the heap, so a socket that gets one small frame at
        # a time asks for little.
        self.recv_size = recv_size
        self._send_raw = send_raw  # sends an encoded frame under the connection's lock
        self._buf = bytearray()
        self._pos = 0
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        # The socket option (SO_TIMESTAMPNS, as platform_support found it) whose kernel
        # receive timestamps reads collect, once the connection turned it on; 0: none.
        self.timestamps = 0
        self.reads = 0  # fill() calls that brought data
        self._now = syscalls.NowReader(sock)  # fill_now's reads, through libc
        self.rx_ns = 0  # kernel receive time of the last data read, Unix ns (0: unknown)

    def fill(self, flags: int = 0) -> None:
        """Read what the socket has (blocking with the socket's timeout, unless `flags` say
        MSG_DONTWAIT, which also takes less than SO_RCVLOWAT). Without kernel timestamps the
        caller takes the receive time from its clock right after this returns."""
        if self.timestamps:
            data, ancillary, _, _ = self._sock.recvmsg(self.recv_size, _CMSG_SPACE, flags)
            self.rx_ns = syscalls.kernel_stamp(ancillary, self.timestamps) or self.rx_ns
        else:
            data = self._sock.recv(self.recv_size, flags)
        self._append(data)

    def fill_now(self) -> bool:
        """Read what the socket has without waiting (below SO_RCVLOWAT too) and without letting
        the GIL go (syscalls.NowReader); False when it had nothing yet."""
        got = self._now.read(self.recv_size, self.timestamps)
        if got is None:
            return False
        data, self.rx_ns = got  # 0 for a read the kernel did not stamp: the caller's clock
        self._append(data)
        return True

    def _append(self, data: bytes) -> None:
        """A read's bytes behind what is buffered; b'' is the peer's FIN."""
        if not data:
            raise ConnectionResetError("connection closed without a close frame")
        self.reads += 1
        if self._pos >= _COMPACT_AT or self._pos == len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def feed(self, data: bytes) -> None:
        """Bytes already read from the socket by someone else (the handshake)."""
        self._buf += data

    def buffered(self) -> int:
        """Bytes read from the socket and not yet handed out as frames."""
        return len(self._buf) - self._pos

    def pending(self) -> bool:
        """Whether part of a frame is waiting for the rest."""
        return self._pos < len(self._buf) or bool(self._fragments)

    def next_message(self) -> tuple[int, bytes] | None:
        """The next whole message (opcode, payload) in the buffer, or None if it needs more."""
        while True:
            frame = self._next_frame()
            if frame is None:
                return None
            fin, opcode, payload = frame
            if opcode == OP_PING:
                self._send_raw(encode(payload, OP_PONG))
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                return opcode, payload
            if opcode == OP_CONTINUATION:
                if not self._fragments:
                    raise ProtocolError("continuation frame without a first fragment")
                self._fragments.append(payload)
                if sum(map(len, self._fragments)) > MAX_MESSAGE:
                    raise ProtocolError(f"message over the {MAX_MESSAGE} byte limit")
                if fin:
                    whole = b"".join(self._fragments)
                    self._fragments = []
                    return self._fragment_opcode, whole
                continue
            if self._fragments:
                raise ProtocolError("new message before the last one was finished")
            if fin:
                return opcode, payload
            self._fragments, self._fragment_opcode = [payload], opcode

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf, pos = self._buf, self._pos
        available = len(buf) - pos
        if available < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        length = second & 0x7F
        offset = pos + 2
        if length == 126:
            if available < 4:
                return None
            (length,) = struct.unpack_from("!H", buf, offset)
            offset += 2
        elif length == 127:
            if available < 10:
                return None
            (length,) = struct.unpack_from("!Q", buf, offset)
            offset += 8
        masked = second & 0x80
        key = 0
        if masked:  # servers must not mask, but a lenient reader costs nothing
            if len(buf) < offset + 4:
                return None
            key = int.from_bytes(buf[offset:offset + 4], "big")
            offset += 4
        if length > MAX_MESSAGE:
            raise ProtocolError(f"frame of {length} bytes is over the {MAX_MESSAGE} limit")
        end = offset + length
        if len(buf) < end:
            return None
        payload = bytes(buf[offset:end])
        if masked:
            payload = _mask(payload, key)
        self._pos = end
        opcode = first & 0x0F
        if first & 0x70:
            raise ProtocolError("reserved bits set (no extension was negotiated)")
        if opcode not in _OPCODES:
            raise ProtocolError(f"unknown opcode {opcode:#x}")
        if opcode >= _CONTROL and (not first & 0x80 or length > 125):
            raise ProtocolError("fragmented or oversized control frame")
        return bool(first & 0x80), opcode, payload
