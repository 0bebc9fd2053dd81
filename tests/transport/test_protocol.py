"""ESME's wire format: builders, the JSON parse, and the fast paths that must agree with it."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esmeperf.errors import WebSocketFailure
from esmeperf.target import wire
from esmeperf.transport import protocol
from esmeperf.transport.connection import go_addr


def unframe(frame: bytes) -> str:
    """The text of one unmasked server frame (wire.envelope's output)."""
    n, offset = frame[1] & 0x7F, 2
    if n == 126:
        (n,), offset = struct.unpack_from("!H", frame, 2), 4
    elif n == 127:
        (n,), offset = struct.unpack_from("!Q", frame, 2), 10
    assert len(frame) == offset + n
    return frame[offset:].decode()


def target_frame(kind: str, payload: Any) -> str:
    """A frame exactly as the embedded target sends it."""
    return unframe(wire.envelope(kind, payload))


def go_frame(kind: str, payload: Any) -> str:
    """A frame as ESME's Go server writes it: also <, >, &, U+2028 and U+2029 escaped."""
    text = json.dumps({"type": kind, "payload": payload}, ensure_ascii=False,
                      separators=(",", ":"))
    for char in "<>&\u2028\u2029":  # only ever inside strings, so a plain replace is exact
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text + "\n"


# -- strategies: every frame shape the target sends, with hostile texts ----------------------
addresses = st.tuples(st.ip_addresses(), st.integers(1, 65535)).map(
    lambda pair: go_addr((str(pair[0]), pair[1])))


def texts(prefix: str) -> st.SearchStrategy[str]:
    """Message texts: ours, other participants', replies, and pieces that imitate the markers."""
    other = protocol.message_prefix("10.0.0.1:1")
    pieces = st.one_of(
        st.sampled_from([prefix, other, protocol.REPLY_PREFIX, protocol.PROBLEM_PREFIX, '"',
                         "\\", '\\"', '"}}\n', '"content":"', '"fromOrganizer":0,',
                         '"fromOrganizer":1,', '{"type":"user_message",', "\u2028", "<&>",
                         "²", "١٢", " ", "\n", "+", "_", "-"]),
        st.integers(0, 10**12).map(str),
        st.text(max_size=8))
    return st.one_of(
        st.integers(0, 10**9).map(lambda n: f"{prefix}{n}"),
        st.integers(0, 10**9).map(lambda n: f"{protocol.REPLY_PREFIX}{prefix}{n}"),
        st.lists(pieces, max_size=6).map("".join))


ids = st.one_of(st.text(max_size=30), st.just("64a0c0ffee0000000000a000"))
coords = st.one_of(st.none(), st.floats(-180, 180))


@st.composite
def messages(draw: st.DrawFn, prefix: str) -> dict[str, Any]:
    """A Message object as the target encodes it (wire.message_json)."""
    row = (draw(ids), draw(ids), draw(st.integers(1, 10**6)), draw(st.sampled_from([0, 1])),
           draw(texts(prefix)), draw(st.integers(0, 2**42)), draw(coords), draw(coords))
    return wire.message_json(row)


@st.composite
def chats(draw: st.DrawFn, enriched: bool) -> dict[str, Any]:
    """A Chat object in the target's (and Go's) field order; organizers get `participant`."""
    chat: dict[str, Any] = {"id": draw(ids), "agencyId": 1, "eventId": draw(st.integers(1, 9)),
                            "organizerId": 1, "participantId": draw(st.integers(1, 10**6)),
                            "ended": 0}
    for key in ("latStart", "lngStart"):
        value = draw(coords)
        if value is not None:
            chat[key] = value
    chat["timeStart"] = wire.ms_time(draw(st.integers(0, 2**42)))
    chat["timeEnd"] = wire.ZERO_TIME
    if enriched:
        chat["participant"] = {"id": chat["participantId"], "email": draw(st.text(max_size=30)),
                               "phoneNumber": draw(st.text(max_size=30))}
    return chat


@st.composite
def server_frames(draw: st.DrawFn, prefix: str) -> str:
    """Any frame the target (or Go's ESME) can send to an organizer or a participant."""
    kind = draw(st.sampled_from(["user_message", "user_message", "user_message", "new_chat",
                                 "chats", "chat_history", "info", "error", "closed_chat"]))
    if kind == "user_message":
        payload: Any = draw(messages(prefix))
    elif kind == "new_chat":
        payload = draw(chats(enriched=True))
    elif kind == "chats":
        payload = {"chats": draw(st.lists(chats(enriched=draw(st.booleans())), max_size=3))}
    elif kind == "chat_history":
        payload = {"chatId": draw(ids), "messages": draw(st.lists(messages(prefix), max_size=3))}
    elif kind in ("info", "error"):
        payload = {"message": draw(st.one_of(
            st.sampled_from(["no new chats", "malformed message", "invalid message type",
                             "invalid message payload", "internal server error"]),
            ids.map(lambda chat_id: f"you have no access to chat {chat_id}"), texts(prefix)))}
    else:
        payload = {"chatId": draw(ids)}
    encode = draw(st.sampled_from([target_frame, go_frame]))
    return encode(kind, payload)


# -- the property: a fast path answers only when the JSON parse gives the same answer --------
@settings(max_examples=1500, deadline=None)
@given(data=st.data())
def test_fast_paths_agree_with_the_json_parse(data: st.DataObject) -> None:
    addr = data.draw(addresses)
    prefix = protocol.message_prefix(addr)
    frame = data.draw(server_frames(prefix))
    kind, payload = protocol.parse(frame, addr)
    echo = protocol.find_echo(frame, protocol.echo_marker(prefix))
    assert echo is None or echo == protocol.echo_number(kind, payload, prefix)
    if protocol.is_from_participant(frame):
        assert protocol.from_participant(kind, payload)


@given(addr=addresses, number=st.integers(0, 10**12), coord=coords,
       encode=st.sampled_from([target_frame, go_frame]))
def test_fast_paths_take_every_message_of_a_run(addr: str, number: int, coord: float | None,
                                                encode: Any) -> None:
    """The frames a run is made of never need the parse (else the fast paths were dead code)."""
    prefix = protocol.message_prefix(addr)
    message = wire.message_json(("64a0c0ffee0000000000abcd", "64a0c0ffee0000000000a000", 42, 0,
                                 f"{prefix}{number}", 1_690_000_000_123, coord, coord))
    frame = encode("user_message", message)
    assert protocol.find_echo(frame, protocol.echo_marker(prefix)) == number
    assert protocol.is_from_participant(frame)


def test_fast_paths_leave_the_problem_description_and_replies_to_the_parse() -> None:
    prefix = protocol.message_prefix("127.0.0.1:5000")
    marker = protocol.echo_marker(prefix)
    for from_organizer, text in ((0, protocol.PROBLEM_PREFIX + protocol.CHAT_REQUEST_DESCRIPTION),
                                 (1, f"{protocol.REPLY_PREFIX}{prefix}7"), (1, f"{prefix}7")):
        frame = target_frame("user_message", wire.message_json(
            ("a", "b", 1, from_organizer, text, 0, None, None)))
        assert protocol.find_echo(frame, marker) is None
        assert not protocol.is_from_participant(frame)
        kind, payload = protocol.parse(frame, "x")
        assert protocol.reply_number(kind, payload, protocol.REPLY_PREFIX + prefix) == (
            7 if text.startswith(protocol.REPLY_PREFIX) else None)


# -- builders and the parse ------------------------------------------------------------------
@given(chat_id=st.text(), addr=addresses, number=st.integers(0, 10**12))
def test_numbered_messages_are_send_message_frames(chat_id: str, addr: str, number: int) -> None:
    prefix = protocol.message_prefix(addr)
    frame = protocol.numbered_head(chat_id, prefix) + str(number) + protocol.SEND_MESSAGE_TAIL
    assert frame == protocol.send_message(chat_id, f"{prefix}{number}")
    # The target reads it as Go's json.Decoder would.
    assert wire.decode_first(frame) == {"type": "send_message", "payload": {
        "chatId": chat_id, "message": f"connection {addr}: message number {number}"}}


def test_fixed_frames_and_bodies_are_the_go_tests() -> None:
    assert protocol.authorization("participant:x", newline=False) == (
        '{"Authorization": "Bearer participant:x"}')
    assert protocol.authorization("organizer:y", newline=True).endswith('"}\n')
    assert json.loads(protocol.START_CHAT) == {"type": "start_chat", "payload": ""}
    assert json.loads(protocol.GET_CHATS) == {"type": "get_chats", "payload": ""}
    assert protocol.sign_up_body("p@x.com") == {
        "email": "p@x.com", "password": "performance", "confirmPassword": "performance",
        "phoneNumber": "+48100200300"}
    assert protocol.chat_request_body(3) == {
        "eventId": 3, "description": "Performance test chat request"}
    assert go_addr(("::1", 5000)) == "[::1]:5000" and go_addr(("1.2.3.4", 5)) == "1.2.3.4:5"


def test_parse_rejects_what_is_not_an_envelope() -> None:
    assert protocol.parse('{"type":"info","payload":{"message":"no new chats"}}\n', "a") == (
        "info", {"message": "no new chats"})
    assert protocol.parse('{"type":"something_new","payload":""}', "a") == ("something_new", "")
    for frame in ("not json", "[1, 2]", '{"type":"user_message","payload":""}',
                  '{"type":"error"}'):
        with pytest.raises(WebSocketFailure, match="connection a: malformed frame from server"):
            protocol.parse(frame, "a")


@pytest.mark.parametrize(("content", "number"), [
    ("p 12", 12), ("p ١٢", 12), ("p 1_000", 1000), ("p 12\n", 12), ("p ²", None),
    ("p 1a", None), ("p ", None), ("q 12", None), (None, None), (12, None)])
def test_number_after(content: Any, number: int | None) -> None:
    assert protocol.number_after("p ", content) == number
