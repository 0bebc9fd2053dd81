"""Property test: random and malformed frames and REST bodies never hurt a healthy client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from conftest import EsmeClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esmeperf.target.launcher import TargetProcess


@pytest.fixture(scope="module")
def arena() -> Iterator[dict[str, Any]]:
    """One target with a healthy chat, plus a fuzzing participant and a second organizer."""
    with TargetProcess("--organizers", "2", "--max-frame", "4096") as proc:
        esme = EsmeClient(proc.config)
        healthy = esme.chat()
        _, fuzz_token = esme.sign_up()
        org2 = esme.organizer_token(proc.config["organizers"][0]["email"])
        yield {"proc": proc, "esme": esme, "healthy": healthy, "tokens": [fuzz_token, org2]}
        esme.close()


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=10), kids, max_size=4)),
    max_leaves=10)
msg_type = st.sampled_from(["start_chat", "get_chats", "send_message", "get_chat_history",
                            "close_chat", "SEND_MESSAGE", "", "x"])


@st.composite
def frames(draw: st.DrawFn, chat_id: str) -> str | bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.text(max_size=200))
    if kind == 1:
        return draw(st.binary(max_size=200))
    if kind == 2:
        return json.dumps(draw(json_value))
    payload = draw(st.one_of(json_value, st.fixed_dictionaries(
        {"chatId": st.one_of(st.just(chat_id), st.text(max_size=30), json_leaf),
         "message": st.one_of(st.text(max_size=50), json_leaf)},
        optional={"lat": json_leaf, "lng": json_leaf})))
    return json.dumps({"type": draw(msg_type), "payload": payload})


def assert_healthy(arena: dict[str, Any], text: str) -> None:
    esme, c = arena["esme"], arena["healthy"]
    esme.send(c["part"], "send_message", {"chatId": c["chat_id"], "message": text})
    assert esme.recv(c["part"])["payload"]["content"] == text
    assert esme.recv(c["org"])["payload"]["content"] == text


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_frames_do_not_hurt_healthy_client(arena: dict[str, Any],
                                                  data: st.DataObject) -> None:
    auth = data.draw(st.one_of(
        st.sampled_from(arena["tokens"]).map(
            lambda t: json.dumps({"Authorization": "Bearer " + t})),
        st.text(max_size=80), st.binary(max_size=80).map(bytes)))
    batch = data.draw(st.lists(frames(arena["healthy"]["chat_id"]), max_size=8))
    ws = websocket.create_connection(arena["proc"].config["messenger_ws_url"] + "/connect",
                                     timeout=5)
    try:
        for frame in [auth, *batch]:
            if isinstance(frame, bytes):
                ws.send_binary(frame)
            else:
                ws.send(frame)
    except (websocket.WebSocketException, OSError):
        pass  # the server may drop a connection that failed authorization or sent oversize
    finally:
        ws.shutdown()
    assert_healthy(arena, "still fine")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from([("organizer_api_url", "/auth/sign-in"),
                             ("participant_api_url", "/auth/sign-up"),
                             ("participant_api_url", "/chat-requests")]),
       body=st.one_of(st.binary(max_size=300), json_value.map(json.dumps),
                      st.dictionaries(st.sampled_from(["email", "password", "confirmPassword",
                                                       "phoneNumber", "eventId", "description",
                                                       "EMAIL", "lat"]),
                                      json_leaf, max_size=5).map(json.dumps)),
       # printable only: control characters in a header are rejected by the HTTP parser itself
       token=st.one_of(st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                          max_size=40), st.just("participant:forged")))
def test_random_rest_bodies_get_clean_answers(arena: dict[str, Any], path: tuple[str, str],
                                              body: str | bytes, token: str | None) -> None:
    esme = arena["esme"]
    try:
        r = esme.post(path[0], path[1], data=body, token=token)
    except ValueError:
        return  # requests refuses some header values (e.g. newlines) before sending
    assert r.status_code in (200, 201, 400, 401, 404, 500), r.text
    if r.content:
        answer = r.json()
        if r.status_code == 500:
            assert answer["message"] == "database error"
        elif r.status_code >= 400:
            assert answer["statusCode"] == r.status_code
    assert_healthy(arena, "rest fine")
