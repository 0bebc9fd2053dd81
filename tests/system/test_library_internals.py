"""Library internals esmeperf relies on: these fail loudly, naming the library, if they change.

- hdrhistogram: `esmeperf/measure/latency.py` `release()` writes `hist.encoder.histogram = None`
  to break the histogram <-> encoder reference cycle, so a histogram's counts (20-140 KiB) are
  freed at once instead of at the next full garbage collection; `add_encoded()` re-implements
  `HdrHistogram.decode_and_add` on top of that.
- aiohttp: the target's WebSocket endpoint lets aiohttp do the handshake and read frames, but
  writes its own frames (`wire.envelope`) straight to `request.transport` (`Hub.flush_conn`),
  beside aiohttp's writer, which still sends pongs and close frames on the same transport. That
  is safe only while aiohttp has the 101 response on the transport when `prepare()` returns,
  negotiates no compression with `compress=False`, writes each of its own frames whole (no
  await inside a frame), and writes nothing once the target has closed or aborted the
  transport under it.

The aiohttp checks run against the real target (tests/conftest.py) on raw sockets, so every
byte the target sends is seen.
"""

from __future__ import annotations

import gc
import json
import socket
import struct
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pytest
from hdrh.codec import HdrHistogramEncoder
from hdrh.histogram import HdrHistogram

from esmeperf.measure import latency


@dataclass(frozen=True)
class Library:
    name: str
    pin: str  # what setup.cfg pins
    measured: str  # the versions esmeperf was measured and these tests were run on
    user: str  # the code that relies on the internals

    def broken(self, what: str) -> str:
        return (f"{self.name} {version(self.name)} changed an internal that {self.user} relies "
                f"on: {what}. esmeperf was measured on {self.name} {self.measured} "
                f"(pinned {self.pin}); adapt that code and re-measure before moving the pin.")


HDRHISTOGRAM = Library("hdrhistogram", "hdrhistogram>=0.10,<0.11",
                       "0.10.8, these checks also on 0.10.1",
                       "esmeperf/measure/latency.py (release, add_encoded)")
AIOHTTP = Library("aiohttp", "aiohttp>=3.9,<4", "3.14.5",
                  "esmeperf/target (Hub.send/flush_conn write raw frames to request.transport)")


# -- hdrhistogram ------------------------------------------------------------------------------
def test_hdrhistogram_encoder_points_back_to_its_histogram() -> None:
    """The attribute latency.release() writes: without it, release() silently frees nothing."""
    for digits in (2, 3):  # the per-second and the whole-run histograms
        hist = latency.new_histogram(digits)
        encoder = getattr(hist, "encoder", None)
        assert isinstance(encoder, HdrHistogramEncoder), HDRHISTOGRAM.broken(
            f"HdrHistogram.encoder is {type(encoder).__name__}, not an HdrHistogramEncoder")
        assert hist.counts is encoder.get_counts(), HDRHISTOGRAM.broken(
            "a histogram's counts no longer live in its encoder's payload")
        assert getattr(encoder, "histogram", None) is hist, HDRHISTOGRAM.broken(
            "HdrHistogramEncoder.histogram no longer refers back to its histogram")


def test_hdrhistogram_release_frees_the_counts_without_gc() -> None:
    """The cycle exists (so release() is needed) and release() breaks it (so it works)."""
    gc.disable()
    try:
        kept = latency.new_histogram()
        kept.record_value(1000)
        kept_ref = weakref.ref(kept)
        del kept
        assert kept_ref() is not None, HDRHISTOGRAM.broken(
            "an unreleased histogram is freed without a garbage collection: the encoder "
            "cycle is gone, so latency.release() is no longer needed")
        gc.collect()

        hist = latency.new_histogram()
        hist.record_value(1000)
        refs = [weakref.ref(hist), weakref.ref(hist.encoder), weakref.ref(hist.counts)]
        latency.release(hist)
        del hist
        assert [r() is None for r in refs] == [True, True, True], HDRHISTOGRAM.broken(
            "after latency.release() a histogram, its encoder or its counts outlive the last "
            "reference (another reference cycle)")
    finally:
        gc.enable()


def test_hdrhistogram_add_encoded_matches_decode_and_add() -> None:
    """latency.add_encoded() is HdrHistogram.decode_and_add() plus release(): same result."""
    values = [1, 2, 999, 1000, 1001, 65_535, 1_000_000, 599_999_999, 600_000_000]
    for digits in (2, 3):
        source = latency.new_histogram(digits)
        for n, value in enumerate(values, 1):
            source.record_value(value, n)
        encoded = source.encode()
        ours, theirs = latency.new_histogram(digits), latency.new_histogram(digits)
        ours.record_value(5)
        theirs.record_value(5)
        latency.add_encoded(ours, encoded)
        theirs.decode_and_add(encoded)
        assert ours.encode() == theirs.encode(), HDRHISTOGRAM.broken(
            "HdrHistogram.decode() + add() no longer equals decode_and_add()")
        assert ours.get_total_count() == sum(range(1, len(values) + 1)) + 1
        assert (ours.get_min_value(), ours.get_max_value()) == (
            theirs.get_min_value(), theirs.get_max_value())
        pcts = [50.0, 90.0, 99.0, 99.9]
        assert (ours.get_percentile_to_value_dict(pcts)
                == theirs.get_percentile_to_value_dict(pcts))
        assert HdrHistogram.decode(ours.encode()).get_total_count() == ours.get_total_count()


# -- aiohttp -----------------------------------------------------------------------------------
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
CHATS = b'{"type":"chats","payload":{"chats":[]}}\n'
GET_CHATS = b'{"type":"get_chats","payload":""}\n'


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """A final, masked client frame with an all-zero key (the payload stays as it is)."""
    n = len(payload)
    head = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else struct.pack(
        "!BBH", 0x80 | opcode, 0x80 | 126, n)
    return head + b"\0\0\0\0" + payload


def auth_frame(token: str) -> bytes:
    return client_frame(json.dumps({"Authorization": "Bearer " + token}).encode())


@dataclass
class Frame:
    first: int  # FIN, RSV1-3 and the opcode
    masked: bool
    payload: bytes

    @property
    def opcode(self) -> int:
        return self.first & 0x0F


def parse_frame(buf: bytes) -> tuple[Frame, int] | None:
    """The first frame in buf and the bytes it takes, or None if buf holds only part of it."""
    if len(buf) < 2:
        return None
    first, second = buf[0], buf[1]
    n, at = second & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = struct.unpack_from("!H", buf, 2)[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = struct.unpack_from("!Q", buf, 2)[0], 10
    if second & 0x80:
        at += 4  # a masking key: never from a server, and assert_plain_frame says so
    if len(buf) < at + n:
        return None
    return Frame(first, bool(second & 0x80), buf[at:at + n]), at + n


class RawWs:
    """A client socket that sees every byte the target sends (no library in between)."""

    def __init__(self, ws_url: str, offer_deflate: bool = False) -> None:
        host, port = ws_url[len("ws://"):].rsplit(":", 1)
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
        extensions = ("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                      if offer_deflate else "")
        self.upgrade = (f"GET /connect HTTP/1.1\r\nHost: {host}:{port}\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
                        f"{extensions}\r\n").encode()
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _fill(self, what: str) -> None:
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            pytest.fail(AIOHTTP.broken(f"waited 5 s for {what} in vain"))
        if not data:
            pytest.fail(AIOHTTP.broken(f"the connection ended before {what}"))
        self.buf += data

    def head(self) -> bytes:
        """The HTTP response head, up to and without the blank line."""
        while b"\r\n\r\n" not in self.buf:
            self._fill("the HTTP response")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def frame(self) -> Frame:
        while (parsed := parse_frame(self.buf)) is None:
            self._fill("a whole WebSocket frame")
        frame, used = parsed
        self.buf = self.buf[used:]
        return frame

    def rest(self) -> bytes:
        """Everything until the target ends the connection (EOF or reset)."""
        rest, self.buf = self.buf, b""
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return rest
            except TimeoutError:
                pytest.fail(AIOHTTP.broken("the connection stayed open after the target "
                                           "closed its transport"))
            if not data:
                return rest
            rest += data


def assert_plain_frame(frame: Frame) -> None:
    """A frame as one write produces it: final, no RSV bits (no compression), unmasked."""
    assert frame.first & 0xF0 == 0x80 and not frame.masked, AIOHTTP.broken(
        f"a server frame with first byte {frame.first:#04x}, masked={frame.masked}: the "
        "stream is no longer whole frames of uncompressed, unmasked, final data")


@pytest.fixture
def raw(esme: Any) -> Iterator[Callable[..., RawWs]]:
    """Make raw connections to the `esme` target; all are closed at teardown."""
    opened: list[RawWs] = []

    def factory(offer_deflate: bool = False) -> RawWs:
        conn = RawWs(esme.config["messenger_ws_url"], offer_deflate)
        opened.append(conn)
        return conn

    yield factory
    for conn in opened:
        conn.close()


def test_aiohttp_101_is_on_the_wire_before_the_first_raw_frame(esme: Any, raw: Any) -> None:
    """prepare() has written the whole 101 response when it returns, and nothing else.

    Upgrade, authorization and a request in one segment: the reply is written raw as soon as
    the frame is handled, so a 101 that aiohttp still held back would arrive after it.
    """
    _, token = esme.sign_up()
    ws = raw(offer_deflate=True)
    ws.sock.sendall(ws.upgrade + auth_frame(token) + client_frame(GET_CHATS))
    head = ws.head()
    assert head.startswith(b"HTTP/1.1 101 "), AIOHTTP.broken(
        f"the target's stream starts with {head[:40]!r}, not the 101 response")
    assert b"sec-websocket-extensions" not in head.lower(), AIOHTTP.broken(
        "WebSocketResponse(compress=False) negotiated an extension; the target's raw frames "
        "are uncompressed and its clients expect no extension")
    frame = ws.frame()
    assert_plain_frame(frame)
    assert (frame.opcode, frame.payload) == (OP_TEXT, CHATS), AIOHTTP.broken(
        f"the first frame after the 101 response is {frame!r}")


def test_aiohttp_control_frames_and_raw_frames_share_one_stream(esme: Any, raw: Any) -> None:
    """aiohttp's pongs go to the transport the target writes to, each frame whole.

    The pongs may overtake replies queued in the same loop iteration (aiohttp writes at once,
    the hub once per iteration); within each kind the order holds.
    """
    _, token = esme.sign_up()
    ws = raw()
    request = client_frame(GET_CHATS)
    ws.sock.sendall(ws.upgrade + auth_frame(token) + request + client_frame(b"p1", OP_PING)
                    + request + client_frame(b"p2", OP_PING) + request)
    ws.head()
    frames = [ws.frame() for _ in range(5)]
    for frame in frames:
        assert_plain_frame(frame)
    assert [f.payload for f in frames if f.opcode == OP_PONG] == [b"p1", b"p2"], AIOHTTP.broken(
        f"the pongs on the target's stream are {frames!r}")
    assert [f.payload for f in frames if f.opcode == OP_TEXT] == [CHATS] * 3, AIOHTTP.broken(
        f"the replies on the target's stream are {frames!r}")
    ws.sock.sendall(client_frame(struct.pack("!H", 1000), OP_CLOSE))
    close = ws.frame()
    assert_plain_frame(close)
    assert (close.opcode, close.payload[:2]) == (OP_CLOSE, struct.pack("!H", 1000)), \
        AIOHTTP.broken(f"aiohttp answered a close frame with {close!r}")


def test_aiohttp_writes_nothing_after_the_target_aborts(esme: Any, raw: Any) -> None:
    """A failed authorization aborts the transport; aiohttp must not add a close frame."""
    ws = raw()
    ws.sock.sendall(ws.upgrade + client_frame(b'{"Authorization": "Bearer participant:x"}'))
    ws.head()
    assert ws.rest() == b"", AIOHTTP.broken(
        "bytes after the target aborted the transport (aiohttp wrote a close frame?)")


def test_aiohttp_writes_nothing_after_the_target_closes(target_factory, client_factory) -> None:
    """--close-after-messages flushes the raw echo, then closes: FIN, and no close frame."""
    esme = client_factory(target_factory("--close-after-messages", "1"))
    c = esme.chat(description="")
    ws = RawWs(esme.config["messenger_ws_url"])
    try:
        message = json.dumps({"type": "send_message",
                              "payload": {"chatId": c["chat_id"], "message": "last"}}).encode()
        ws.sock.sendall(ws.upgrade + auth_frame(c["p_token"]) + client_frame(message))
        ws.head()
        echo = ws.frame()
        assert_plain_frame(echo)
        assert json.loads(echo.payload)["payload"]["content"] == "last"
        assert ws.rest() == b"", AIOHTTP.broken(
            "bytes after the target closed the transport (aiohttp wrote a close frame?)")
    finally:
        ws.close()


def test_urllib3_pool_classes_are_chosen_by_scheme() -> None:
    """transport/rest.py gives the adapter's PoolManager its own pool classes (to track each
    connection, so a shutdown can end calls in flight): the attribute and the pools'
    ConnectionCls must still be how urllib3 picks them."""
    import requests.adapters
    import urllib3

    manager = requests.adapters.HTTPAdapter().poolmanager
    assert set(manager.pool_classes_by_scheme) >= {"http", "https"}
    assert urllib3.HTTPConnectionPool.ConnectionCls is urllib3.connection.HTTPConnection
