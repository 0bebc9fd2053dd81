"""Fault-injection flags and the slow-reader policy of the target."""

from __future__ import annotations

import json
import socket
import time

import pytest
import websocket


def test_refuse_ws_after(target_factory, client_factory) -> None:
    proc = target_factory("--refuse-ws-after", "1")
    esme = client_factory(proc)
    _, token = esme.sign_up()
    first = esme.ws(token)
    assert esme.request(first, "get_chats")["type"] == "chats"
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        esme.raw_ws()
    assert info.value.status_code == 503
    assert proc.stats()["handshakes_refused"] == 1
    assert esme.request(first, "get_chats")["type"] == "chats"  # the admitted one still works


def test_ws_handshake_delay(target_factory, client_factory) -> None:
    proc = target_factory("--ws-handshake-delay", "0.4")
    esme = client_factory(proc)
    started = time.monotonic()
    esme.raw_ws()
    assert time.monotonic() - started >= 0.4


def test_close_after_messages(target_factory, client_factory) -> None:
    proc = target_factory("--close-after-messages", "2")
    esme = client_factory(proc)
    c = esme.chat()
    for i in range(2):
        esme.send(c["part"], "send_message", {"chatId": c["chat_id"], "message": f"m{i}"})
        assert esme.recv(c["part"])["payload"]["content"] == f"m{i}"
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        c["part"].recv_data_frame(True)  # closed without a close frame
    assert [esme.recv(c["org"])["payload"]["content"] for _ in range(2)] == ["m0", "m1"]
    assert esme.request(c["org"], "get_chats")["type"] == "chats"  # organizer unaffected


def test_error_frame_after(target_factory, client_factory) -> None:
    proc = target_factory("--error-frame-after", "1")
    esme = client_factory(proc)
    c = esme.chat()
    replies = [esme.request(c["part"], "send_message", {"chatId": c["chat_id"], "message": m})
               for m in ("a", "b", "c")]
    assert replies[0]["payload"]["content"] == "a"
    assert replies[1] == {"type": "error", "payload": {"message": "internal server error"}}
    assert replies[2]["payload"]["content"] == "c"
    assert proc.stats()["participant_messages_stored"] == 2


@pytest.mark.parametrize("flag,garbage", [("--fail-signup-after", False),
                                          ("--garbage-signup-after", True)])
def test_signup_faults(target_factory, client_factory, flag: str, garbage: bool) -> None:
    proc = target_factory(flag, "1")
    esme = client_factory(proc)
    esme.sign_up()
    r = esme.post("participant_api_url", "/auth/sign-up",
                  {"email": "late@example.com", "password": "performance",
                   "confirmPassword": "performance"})
    if garbage:
        assert (r.status_code, r.json()) == (201, {"unexpected": True})
    else:
        assert r.status_code == 500
        assert r.json() == {"statusCode": 500, "message": "database error",
                            "error": "Internal Server Error"}
    assert proc.stats()["participants"] == 1


def test_fail_chat_request_after(target_factory, client_factory) -> None:
    proc = target_factory("--fail-chat-request-after", "1")
    esme = client_factory(proc)
    _, first = esme.sign_up()
    _, second = esme.sign_up()
    esme.request_chat(first)
    r = esme.post("participant_api_url", "/chat-requests", {"eventId": 1}, token=second)
    assert (r.status_code, r.json()["message"]) == (500, "database error")
    assert proc.stats()["chat_requests_total"] == 1


def test_slow_reader_does_not_stall_other_chats(target_factory, client_factory) -> None:
    proc = target_factory("--organizers", "2", "--send-buffer", "65536")
    esme = client_factory(proc)
    emails = [proc.config["organizer_email"], *(o["email"] for o in proc.config["organizers"])]
    # chat 1: organizer 1 starts it and then never reads again (like ESME's Go test)
    user1, p1_token = esme.sign_up()
    esme.request_chat(p1_token, "")
    sleeper = websocket.create_connection(
        proc.config["messenger_ws_url"] + "/connect", timeout=5,
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    esme.sockets.append(sleeper)
    sleeper.send(json.dumps({"Authorization": "Bearer " + esme.organizer_token(emails[0])}))
    esme.send(sleeper, "start_chat")
    p1 = esme.ws(p1_token)
    chats = []
    deadline = time.monotonic() + 10
    while not chats:  # start_chat is processed asynchronously to our requests
        assert time.monotonic() < deadline, "the organizer's start_chat made no chat in 10 s"
        chats = esme.request(p1, "get_chats")["payload"]["chats"]
    chat1 = chats[0]["id"]
    # chat 2: organizer 2 and participant 2 both read
    user2, p2_token = esme.sign_up()
    esme.request_chat(p2_token, "")
    org2 = esme.ws(esme.organizer_token(emails[1]))
    chat2 = esme.request(org2, "start_chat")["payload"]["id"]
    p2 = esme.ws(p2_token)
    big = "x" * 60000
    for i in range(150):  # ~9 MB towards the sleeper: far beyond any socket buffer
        esme.send(p1, "send_message", {"chatId": chat1, "message": big})
        assert esme.recv(p1)["payload"]["content"] == big  # the sender still gets every echo
        if i % 30 == 0:
            esme.send(p2, "send_message", {"chatId": chat2, "message": f"other {i}"})
            assert esme.recv(p2)["payload"]["content"] == f"other {i}"
            assert esme.recv(org2)["payload"]["content"] == f"other {i}"
    stats = proc.stats()
    assert stats["frames_dropped"] > 0
    assert stats["participant_messages_stored"] == 150 + 5
