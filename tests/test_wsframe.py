"""The per-message WebSocket framing, over a real socket pair."""

from __future__ import annotations

import socket
import struct

import pytest

from esmeperf import wsframe


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
    import websocket

    from esmeperf.connection import CloseCode, Closed, Connection

    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=5)
        peer, _ = server.accept()
    ws = websocket.WebSocket()
    ws.sock = client
    conn = Connection(ws, "ws://test/connect", send_timeout=5)
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
