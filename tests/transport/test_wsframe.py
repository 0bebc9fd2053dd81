"""The per-message WebSocket framing, over a real socket pair."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from esmeperf.system import platform_support
from esmeperf.transport import wsframe


def server_frame(payload: bytes, opcode: int = wsframe.OP_TEXT, fin: bool = True) -> bytes:
    """An unmasked frame as a server sends it."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", first, n) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def unmask_client_frame(frame: bytes) -> tuple[int, bytes]:
    """Decode a client frame the way a server must: check the mask bit, unmask."""
    assert frame[0] & 0x80, "FIN set"
    assert frame[1] & 0x80, "clients must mask"
    n, offset = frame[1] & 0x7F, 2
    if n == 126:
        (n,) = struct.unpack_from("!H", frame, 2)
        offset = 4
    elif n == 127:
        (n,) = struct.unpack_from("!Q", frame, 2)
        offset = 10
    key = frame[offset:offset + 4]
    body = frame[offset + 4:]
    assert len(body) == n
    return frame[0] & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(body))


@pytest.fixture
def pair():
    left, right = socket.socketpair()
    left.settimeout(5)
    right.settimeout(5)
    yield left, right
    left.close()
    right.close()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_encode_masks_every_length(size):
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    opcode, body = unmask_client_frame(wsframe.encode(payload))
    assert opcode == wsframe.OP_TEXT and body == payload


def test_reader_splits_and_joins_frames(pair):
    left, right = pair
    sent: list[bytes] = []
    reader = wsframe.FrameReader(left, sent.append)
    data = (server_frame(b"one") + server_frame(b"x" * 70_000)
            + server_frame(b"fr", fin=False) + server_frame(b"ag", wsframe.OP_CONTINUATION)
            + server_frame(b"ping!", wsframe.OP_PING)
            + server_frame(b"last"))
    right.sendall(data)
    got = []
    while len(got) < 4:
        message = reader.next_message()
        if message is None:
            reader.fill()
        else:
            got.append(message)
    assert got == [(1, b"one"), (1, b"x" * 70_000), (1, b"frag"), (1, b"last")]
    assert [unmask_client_frame(f) for f in sent] == [(wsframe.OP_PONG, b"ping!")]


def test_reader_returns_close_and_detects_eof(pair):
    left, right = pair
    reader = wsframe.FrameReader(left, lambda frame: None)
    right.sendall(server_frame(struct.pack("!H", 1000), wsframe.OP_CLOSE))
    reader.fill()
    assert reader.next_message() == (wsframe.OP_CLOSE, struct.pack("!H", 1000))
    right.close()
    with pytest.raises(ConnectionResetError):
        reader.fill()


@pytest.mark.parametrize("path", ["kernel", "clock"])
def test_reader_takes_the_kernel_receive_time_only_with_the_option_found(path):
    """Kernel timestamps come in a control message of the type platform_support's probe
    found (SO_TIMESTAMPNS); the portable path reads with recv() and leaves rx_ns unknown."""
    option = platform_support.detected().timestamp_option
    if path == "kernel" and not option:
        pytest.skip("this platform gives no kernel receive timestamps")
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname(), timeout=5) as left:
        right, _ = listener.accept()
        with right:
            reader = wsframe.FrameReader(left, lambda frame: None)
            if path == "kernel":
                assert option is not None
                left.setsockopt(socket.SOL_SOCKET, option, 1)
                reader.timestamps = option
            # Linux turns its receive stamping on for the first socket that asks through a
            # deferred work item: packets right after that may go unstamped. A frame every
            # 10 ms until one is stamped (kernel), within 2 s; every stamp must predate the
            # read. Without the option none is ever stamped.
            stamps: list[int] = []
            paced = threading.Event()
            deadline = time.monotonic() + (2.0 if path == "kernel" else 0.05)
            while time.monotonic() < deadline and not any(stamps):
                sent = time.time_ns()
                right.sendall(server_frame(b"stamped"))
                reader.fill()
                assert reader.next_message() == (wsframe.OP_TEXT, b"stamped")
                stamps.append(reader.rx_ns)
                assert reader.rx_ns == 0 or sent - 1_000_000_000 < reader.rx_ns <= time.time_ns()
                paced.wait(0.01)
            if path == "kernel":
                assert any(stamps), f"no stamp in {len(stamps)} frames over 2 s"
            else:
                assert stamps and not any(stamps)


def test_reader_rejects_a_stray_continuation(pair):
    left, right = pair
    reader = wsframe.FrameReader(left, lambda frame: None)
    right.sendall(server_frame(b"?", wsframe.OP_CONTINUATION))
    reader.fill()
    with pytest.raises(wsframe.ProtocolError):
        reader.next_message()


@pytest.mark.parametrize(("status", "words"), [
    (struct.pack("!H", 1009), r"closed by server \(1009 MESSAGE_TOO_BIG\)$"),
    (struct.pack("!H", 4000) + b"why", r"closed by server \(4000\)$"),
    (b"", "closed by server$"),
])
def test_connection_names_the_servers_close_code_and_answers_normal(status, words):
    from esmeperf.transport.connection import CloseCode, Closed, Connection

    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=5)
        peer, _ = server.accept()
    conn = Connection(client, "ws://test/connect", send_timeout=5)
    assert conn.local_addr == f"127.0.0.1:{client.getsockname()[1]}"
    peer.settimeout(5)
    peer.sendall(server_frame(status, wsframe.OP_CLOSE))
    with pytest.raises(Closed, match=words):
        conn.recv(5)
    assert unmask_client_frame(peer.recv(64)) == (
        wsframe.OP_CLOSE, struct.pack("!H", CloseCode.NORMAL))
    client.close()
    peer.close()


@pytest.mark.parametrize(("frame", "words"), [
    (bytes([0xC1, 0x01]) + b"x", "reserved bits"),
    (bytes([0x83, 0x01]) + b"x", "unknown opcode"),
    (bytes([0x09, 0x01]) + b"x", "fragmented or oversized control frame"),
    (bytes([0x89, 0x7E, 0x00, 0x80]) + b"x" * 128, "fragmented or oversized control frame"),
    (bytes([0x81, 0x7F]) + (1 << 40).to_bytes(8, "big"), "over the"),
])
def test_reader_rejects_broken_frames(pair, frame, words):
    left, right = pair
    reader = wsframe.FrameReader(left, lambda frame: None)
    right.sendall(frame)
    reader.fill()
    with pytest.raises(wsframe.ProtocolError, match=words):
        reader.next_message()


def test_handshake_reads_the_response_in_one_recv_and_keeps_what_follows():
    # A server that answers the upgrade and sends a frame in the same write: the frame must
    # reach the reader, and the handshake must not read the response a byte at a time.
    import base64
    import hashlib
    import threading

    from esmeperf.transport.connection import Connection

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def serve() -> None:
            peer, _ = server.accept()
            with peer:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += peer.recv(4096)
                key = [line.split(b": ", 1)[1] for line in request.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:")][0]
                accept = base64.b64encode(hashlib.sha1(
                    key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                peer.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                             + b"\r\n\r\n" + server_frame(b'{"type":"hello"}'))
                peer.recv(4096)  # the authorization frame
                peer.recv(4096)  # EOF once the client is done

        thread = threading.Thread(target=serve)
        thread.start()
        conn = Connection.open(f"ws://127.0.0.1:{port}", "participant:token", 5, newline=False)
        try:
            assert conn.recv(5) == '{"type":"hello"}'
        finally:
            conn.abort()
            thread.join(10)


def test_handshake_socket_serves_byte_reads_from_one_recv():
    from esmeperf.transport.connection import _HandshakeSocket

    reads = []

    class Counting(socket.socket):
        def recv(self, size: int, *args: int) -> bytes:
            reads.append(size)
            return super().recv(size, *args)

    left, right = socket.socketpair()
    counting = Counting(fileno=left.detach())
    with counting, right:
        response = b"HTTP/1.1 101 Switching Protocols\r\n" + b"x" * 150 + b"\r\n\r\nFRAME"
        right.sendall(response)
        buffered = _HandshakeSocket(counting)
        got = b"".join(buffered.recv(1) for _ in range(len(response) - 5))
        assert got == response[:-5] and buffered.rest() == b"FRAME"
        assert len(reads) == 1  # websocket-client asked for one byte at a time
