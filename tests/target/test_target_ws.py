"""Messenger WebSocket behaviour against a real target: the spec's checklist and its details."""

from __future__ import annotations

import json
import re
import socket

import pytest
import websocket
from conftest import EsmeClient

HEX24 = re.compile(r"^[0-9a-f]{24}$")
MS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")


def assert_silently_closed(ws: websocket.WebSocket) -> None:
    """The server dropped TCP without a close frame or any message."""
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        ws.recv_data_frame(True)
    ws.shutdown()


@pytest.mark.parametrize("first_frame", [
    "not json",
    "[1, 2]",
    "null",
    '{"Authorization": 5}',
    '{"Authorization": "participant:abc"}',
    '{"Authorization": "Bearer  participant:abc"}',
    '{"Authorization": "bearer participant:abc"}',
    '{"Authorization": "Bearer participant:forged"}',
    '{"Authorization": "Bearer organizer:forged"}',
    '{"Authorization": "Bearer admin:xyz"}',
    '{"Authorization": "Bearer participant:a:b"}',
    '{"type": "get_chats", "payload": ""}',
])
def test_auth_failure_closes_silently(esme: EsmeClient, first_frame: str) -> None:
    ws = esme.raw_ws()
    ws.send(first_frame)
    assert_silently_closed(ws)


def test_auth_wrong_token_prefix_kind_closes(esme: EsmeClient) -> None:
    _, token = esme.sign_up()
    ws = esme.raw_ws()
    ws.send(json.dumps({"Authorization": "Bearer organizer:" + token.split(":")[1]}))
    assert_silently_closed(ws)


def test_auth_success_sends_nothing_and_accepts_case_insensitive_key(esme: EsmeClient) -> None:
    _, token = esme.sign_up()
    ws = esme.raw_ws()
    ws.send_binary(json.dumps({"authorization": "Bearer " + token}).encode())
    # the first frame back is the reply to our request: nothing was sent on success
    assert esme.request(ws, "get_chats") == {"type": "chats", "payload": {"chats": []}}
    ws.close()


def test_auth_timeout_closes_silently(target_factory, client_factory) -> None:
    proc = target_factory("--auth-timeout", "0.3")
    ws = client_factory(proc).raw_ws()
    assert_silently_closed(ws)


def test_frames_pipelined_before_auth_are_processed(esme: EsmeClient) -> None:
    _, token = esme.sign_up()
    sock = esme.raw_ws()
    sock.send(json.dumps({"Authorization": "Bearer " + token}))
    for _ in range(3):
        esme.send(sock, "get_chats")
    assert [esme.recv(sock)["type"] for _ in range(3)] == ["chats"] * 3
    sock.close()


def test_start_chat_with_empty_queue_is_info(esme: EsmeClient) -> None:
    org = esme.ws(esme.organizer_token())
    assert esme.request(org, "start_chat") == {"type": "info",
                                               "payload": {"message": "no new chats"}}
    org.close()


def test_start_chat_pushes_enriched_chat_and_description(esme: EsmeClient) -> None:
    user, p_token = esme.sign_up()
    esme.request_chat(p_token, "help me")
    part = esme.ws(p_token)
    esme.send(part, "get_chats")
    assert esme.recv(part)["payload"] == {"chats": []}
    org = esme.ws(esme.organizer_token())
    frames = [esme.request(org, "start_chat"), esme.recv(org)]
    assert [f["type"] for f in frames] == ["new_chat", "user_message"]
    chat = frames[0]["payload"]
    assert list(chat) == ["id", "agencyId", "eventId", "organizerId", "participantId", "ended",
                          "timeStart", "timeEnd", "participant"]
    assert HEX24.match(chat["id"]) and MS_TIME.match(chat["timeStart"])
    assert (chat["agencyId"], chat["eventId"], chat["organizerId"], chat["ended"]) == (1, 1, 1, 0)
    assert chat["participantId"] == user["id"]
    assert chat["timeEnd"] == "0001-01-01T00:00:00Z"
    assert chat["participant"] == {"id": user["id"], "email": user["email"],
                                   "phoneNumber": "+48100200300"}
    msg = frames[1]["payload"]
    assert list(msg) == ["id", "chatId", "authorId", "fromOrganizer", "content", "timeSent"]
    assert msg["content"] == "Problem description: help me"
    assert (msg["chatId"], msg["authorId"], msg["fromOrganizer"]) == (chat["id"], user["id"], 0)
    assert [esme.recv(part)["type"], esme.recv(part)["type"]] == ["new_chat", "user_message"]
    # the queue is FIFO and now empty
    assert esme.request(org, "start_chat")["type"] == "info"
    org.close()
    part.close()


def test_empty_description_sends_no_problem_message(esme: EsmeClient) -> None:
    c = esme.chat(description="")
    # the next frame to the organizer is the reply to its own request, not a user_message
    assert esme.request(c["org"], "get_chats")["type"] == "chats"


def test_send_message_echoes_to_both_parties(esme: EsmeClient) -> None:
    c = esme.chat()
    esme.send(c["part"], "send_message", {"chatId": c["chat_id"], "message": "hello <&>"})
    echo, seen = esme.recv(c["part"]), esme.recv(c["org"])
    assert echo == seen and echo["type"] == "user_message"
    p = echo["payload"]
    assert (p["chatId"], p["authorId"], p["fromOrganizer"], p["content"]) == (
        c["chat_id"], c["user"]["id"], 0, "hello <&>")
    assert HEX24.match(p["id"]) and MS_TIME.match(p["timeSent"])
    esme.send(c["org"], "send_message", {"chatId": c["chat_id"], "message": "hi", "lat": 1.5})
    reply = esme.recv(c["part"])
    assert reply == esme.recv(c["org"])
    assert (reply["payload"]["fromOrganizer"], reply["payload"]["authorId"]) == (1, 1)
    assert "lat" not in reply["payload"]  # ESME ignores organizer coordinates


def test_participant_coordinates_are_kept(esme: EsmeClient) -> None:
    c = esme.chat()
    esme.send(c["part"], "send_message",
              {"CHATID": c["chat_id"], "Message": "here", "lat": 52.2, "lng": 21.0})
    p = esme.recv(c["part"])["payload"]
    assert (p["content"], p["lat"], p["lng"]) == ("here", 52.2, 21.0)


def test_no_access_errors(esme: EsmeClient) -> None:
    c = esme.chat()
    other = esme.chat()
    for ws, chat_id in ((c["part"], other["chat_id"]), (c["part"], "nope"), (c["part"], "")):
        reply = esme.request(ws, "send_message", {"chatId": chat_id, "message": "x"})
        assert reply == {"type": "error",
                         "payload": {"message": f"you have no access to chat {chat_id}"}}
    # organizer of chat c is organizer 1 too, so use a second organizer for the negative case
    reply = esme.request(c["part"], "get_chat_history", {"chatId": other["chat_id"]})
    assert reply["payload"]["message"] == f"you have no access to chat {other['chat_id']}"


def test_other_organizer_has_no_access(target_factory, client_factory) -> None:
    proc = target_factory("--organizers", "2")
    esme = client_factory(proc)
    c = esme.chat()
    org2 = esme.ws(esme.organizer_token(proc.config["organizers"][0]["email"]))
    reply = esme.request(org2, "send_message", {"chatId": c["chat_id"], "message": "x"})
    assert reply["payload"]["message"] == f"you have no access to chat {c['chat_id']}"
    assert esme.request(org2, "close_chat", {"chatId": c["chat_id"]})["type"] == "error"
    assert esme.request(org2, "get_chats") == {"type": "chats", "payload": {"chats": []}}


def test_get_chats_newest_first_and_history_in_order(esme: EsmeClient) -> None:
    a, b = esme.chat(), esme.chat()
    chats = esme.request(b["org"], "get_chats")["payload"]["chats"]
    assert [ch["id"] for ch in chats][:2] == [b["chat_id"], a["chat_id"]]
    assert all("participant" in ch for ch in chats)
    own = esme.request(b["part"], "get_chats")["payload"]["chats"]
    assert [ch["id"] for ch in own] == [b["chat_id"]] and "participant" not in own[0]
    for i in range(3):
        esme.send(b["part"], "send_message", {"chatId": b["chat_id"], "message": f"m{i}"})
        esme.recv(b["part"])
    hist = esme.request(b["part"], "get_chat_history", {"chatId": b["chat_id"]})
    assert hist["type"] == "chat_history" and hist["payload"]["chatId"] == b["chat_id"]
    contents = [m["content"] for m in hist["payload"]["messages"]]
    assert contents == ["Problem description: Performance test chat request", "m0", "m1", "m2"]


def test_close_chat_releases_lock_and_revokes_access(esme: EsmeClient) -> None:
    c = esme.chat()
    esme.send(c["org"], "close_chat", {"chatId": c["chat_id"]})
    closed = {"type": "closed_chat", "payload": {"chatId": c["chat_id"]}}
    assert esme.recv(c["org"]) == closed and esme.recv(c["part"]) == closed
    reply = esme.request(c["part"], "send_message", {"chatId": c["chat_id"], "message": "x"})
    assert reply["payload"]["message"] == f"you have no access to chat {c['chat_id']}"
    assert esme.request(c["org"], "close_chat", {"chatId": c["chat_id"]})["type"] == "error"
    assert esme.request(c["part"], "get_chats")["payload"]["chats"] == []
    esme.request_chat(c["p_token"])  # the lock was released, so a new request is accepted
    archived = esme.get("messenger_ws_url", "/participant/chats", c["p_token"]).json()
    assert [ch["id"] for ch in archived] == [c["chat_id"]] and archived[0]["ended"] == 1


@pytest.mark.parametrize("frame,message", [
    ("not json", "malformed message"),
    ("[1]", "malformed message"),
    ('"text"', "malformed message"),
    ('{"type": 5, "payload": ""}', "malformed message"),
    ('{"type": "fly", "payload": ""}', "invalid message type"),
    ('{"payload": ""}', "invalid message type"),
    ('{"type": "start_chat", "payload": ""}', "invalid message type"),
    ('{"type": "close_chat", "payload": {"chatId": "x"}}', "invalid message type"),
    ('{"type": "send_message", "payload": ""}', "invalid message payload"),
    ('{"type": "send_message"}', "invalid message payload"),
    ('{"type": "send_message", "payload": {"chatId": 5, "message": "x"}}',
     "invalid message payload"),
    ('{"type": "send_message", "payload": {"chatId": "x", "message": "y", "lat": "n"}}',
     "invalid message payload"),
    ('{"type": "get_chat_history", "payload": [1]}', "invalid message payload"),
    ("[" * 30000, "malformed message"),
])
def test_bad_participant_frames_get_error_and_connection_survives(
        esme: EsmeClient, frame: str, message: str) -> None:
    _, token = esme.sign_up()
    ws = esme.ws(token)
    ws.send(frame)
    assert esme.recv(ws) == {"type": "error", "payload": {"message": message}}
    assert esme.request(ws, "get_chats")["type"] == "chats"
    ws.close()


def test_binary_frames_are_accepted(esme: EsmeClient) -> None:
    c = esme.chat()
    c["part"].send_binary(json.dumps({"type": "send_message", "payload": {
        "chatId": c["chat_id"], "message": "bin"}}).encode())
    assert esme.recv(c["part"])["payload"]["content"] == "bin"


def test_oversized_frame_closes_with_1009_and_others_continue(esme: EsmeClient) -> None:
    c = esme.chat()
    _, token = esme.sign_up()
    big = esme.ws(token)
    big.send("x" * (64 * 1024 + 1))
    opcode, frame = big.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 1009
    esme.send(c["part"], "send_message", {"chatId": c["chat_id"], "message": "still here"})
    assert esme.recv(c["part"])["payload"]["content"] == "still here"


def test_multiple_connections_share_pushes_not_replies(esme: EsmeClient) -> None:
    c = esme.chat()
    second = esme.ws(c["p_token"])
    assert esme.request(second, "get_chats")["type"] == "chats"
    esme.send(c["part"], "send_message", {"chatId": c["chat_id"], "message": "both"})
    for ws in (c["part"], second, c["org"]):
        assert esme.recv(ws)["payload"]["content"] == "both"
    esme.send(c["part"], "get_chats")
    assert esme.recv(c["part"])["type"] == "chats"
    # the reply went only to the requesting connection: the second sees the next push first
    esme.send(second, "send_message", {"chatId": c["chat_id"], "message": "next"})
    assert esme.recv(second)["payload"]["content"] == "next"


def test_reconnect_reloads_active_chats(esme: EsmeClient) -> None:
    c = esme.chat()
    c["part"].close()
    again = esme.ws(c["p_token"])
    reply = esme.request(again, "send_message", {"chatId": c["chat_id"], "message": "back"})
    assert reply["payload"]["content"] == "back"


def test_stats_are_exact(target, esme: EsmeClient) -> None:
    c = esme.chat()
    for i in range(25):
        esme.send(c["part"], "send_message", {"chatId": c["chat_id"], "message": str(i)})
    for _ in range(25):
        esme.recv(c["part"])
    esme.send(c["org"], "send_message", {"chatId": c["chat_id"], "message": "o"})
    esme.recv(c["org"])
    s = target.stats()
    assert set(s) == {"participants", "organizers_connected", "participants_connected",
                      "connections_open", "connections_total", "chat_requests_total",
                      "chat_requests_queued", "chat_requests_popped", "chats",
                      "messages_stored", "participant_messages_stored",
                      "organizer_messages_stored", "frames_received", "frames_delivered",
                      "frames_dropped", "handshakes_refused", "handling_us",
                      "handling_by_second", "send_intervals"}
    assert (s["participants"], s["chats"], s["chat_requests_total"]) == (1, 1, 1)
    assert (s["chat_requests_popped"], s["chat_requests_queued"]) == (1, 0)
    assert (s["participant_messages_stored"], s["organizer_messages_stored"]) == (25, 1)
    assert s["messages_stored"] == 27  # plus the problem description
    assert (s["connections_open"], s["organizers_connected"], s["participants_connected"]) == (
        2, 1, 1)
    # get_chats + start_chat + 25 + 1 sends
    assert s["frames_received"] == 28
    # chats reply, new_chat x2, description x2, (25 + 1) x 2 user_message
    assert s["frames_delivered"] == 1 + 2 + 2 + 52
    assert s["frames_dropped"] == 0 and s["handshakes_refused"] == 0
    assert set(s["handling_us"]) == {"p50", "p99", "max"}
    assert 0 < s["handling_us"]["p50"] <= s["handling_us"]["p99"] <= s["handling_us"]["max"]
    # Per second too, for the generator's series: every frame handled, in some second.
    by_second = s["handling_by_second"]
    assert sum(f["count"] for f in by_second.values()) == 25 + 1  # the stored messages
    assert all(f["p50_us"] <= f["p99_us"] and f["max_us"] <= s["handling_us"]["max"]
               for f in by_second.values())
    history = esme.get("messenger_ws_url", f"/participant/chats/{c['chat_id']}/messages",
                       c["p_token"]).json()
    assert len(history) == 27


def test_raw_socket_garbage_does_not_hurt_server(esme: EsmeClient, target) -> None:
    host, port = target.config["messenger_ws_url"][5:].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET /connect HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff garbage")
        s.recv(1024)
    c = esme.chat()
    assert esme.request(c["part"], "get_chats")["type"] == "chats"
