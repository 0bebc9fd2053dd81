"""Organizer, participant and messenger REST endpoints of the target, against a real process."""

from __future__ import annotations

import base64
import json
import re

import pytest
from conftest import EsmeClient

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
JS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ORG = "organizer_api_url"
PART = "participant_api_url"
MSG = "messenger_ws_url"


def signup_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"email": "a@example.com", "password": "performance",
                               "confirmPassword": "performance", "phoneNumber": "+48100200300"}
    body.update(overrides)
    return body


# -- organizer API ----------------------------------------------------------------------------
def assert_esme_jwt(token: str, kind: str, sub: int) -> None:
    """`<kind>:<JWT>` as ESME issues it: HS256, its claims, its size on the wire."""
    prefix, jwt = token.split(":")
    head, claims, signature = (base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
                               for part in jwt.split("."))
    assert prefix == kind and json.loads(head) == {"alg": "HS256", "typ": "JWT"}
    body = json.loads(claims)
    assert body["sub"] == (str(sub) if kind == "participant" else sub)
    assert (body["iss"], body["aud"]) == ("esme.com", ["esme.com"])
    assert body["iat"] == body["nbf"] == body["exp"] - 86400 and len(signature) == 32
    assert 200 <= len(token) <= 260, len(token)  # ESME's: ~220 (organizer), ~240 (participant)


def test_sign_in_and_profile(esme: EsmeClient) -> None:
    r = esme.post(ORG, "/auth/sign-in", {"email": esme.config["organizer_email"],
                                         "password": esme.config["organizer_password"]})
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["user", "token"]
    assert_esme_jwt(body["token"], "organizer", sub=1)
    user = body["user"]
    assert list(user) == ["id", "email", "firstName", "lastName", "phoneNumber", "timeCreated",
                          "timeSignOut", "role", "agencyId"]
    assert (user["id"], user["role"], user["agencyId"]) == (1, 2, 1)
    assert JS_TIME.match(user["timeCreated"])
    profile = esme.get(ORG, "/profile", body["token"])
    assert profile.status_code == 200 and profile.json() == user
    assert esme.organizer_token() != body["token"]  # every sign-in issues a fresh token


@pytest.mark.parametrize("body,message", [
    ({"email": "organizer@esmeperf.local", "password": "wrong-password-123"},
     "invalid email or password"),
    ({"email": "nobody@esmeperf.local", "password": "esmeperf-organizer-pass"},
     "invalid email or password"),
    ({"email": "not-an-email", "password": "esmeperf-organizer-pass"}, ["email must be an email"]),
    ({"email": "organizer@esmeperf.local", "password": "short"},
     ["password must be longer than or equal to 16 characters"]),
    ({"email": "organizer@esmeperf.local", "password": "x" * 129},
     ["password must be shorter than or equal to 128 characters"]),
    ({"email": "organizer@esmeperf.local", "password": "esmeperf-organizer-pass", "x": 1},
     ["property x should not exist"]),
    # class-validator checks both lengths of a missing or non-string password (ESME's API does)
    ({}, ["email must be shorter than or equal to 320 characters", "email must be an email",
          "password must be shorter than or equal to 128 characters",
          "password must be longer than or equal to 16 characters",
          "password must be a string"]),
    ({"email": "organizer@esmeperf.local", "password": 12345},
     ["password must be shorter than or equal to 128 characters",
      "password must be longer than or equal to 16 characters", "password must be a string"]),
])
def test_sign_in_errors(esme: EsmeClient, body: dict[str, object], message: object) -> None:
    r = esme.post(ORG, "/auth/sign-in", body)
    assert r.status_code == 400
    assert r.json() == {"statusCode": 400, "message": message, "error": "Bad Request"}


@pytest.mark.parametrize("data", ["{bad", "[]", "5", "", "[" * 50000, "1" * 5000])
def test_sign_in_malformed_bodies_are_400(esme: EsmeClient, data: str) -> None:
    r = esme.post(ORG, "/auth/sign-in", data=data)
    assert r.status_code == 400 and r.json()["statusCode"] == 400


@pytest.mark.parametrize("token", [None, "organizer:forged", "participant:x", "organizer"])
def test_organizer_profile_bad_token_is_403(esme: EsmeClient, token: str | None) -> None:
    r = esme.get(ORG, "/profile", token)
    assert r.status_code == 403
    assert r.json() == {"statusCode": 403, "message": "Forbidden resource", "error": "Forbidden"}


def test_event_lookup_with_api_key(esme: EsmeClient) -> None:
    ok = esme.get(ORG, "/api/events/1", "esmeperf-organizer-api-key")
    assert ok.status_code == 200 and ok.json()["agencyId"] == 1 and ok.json()["id"] == 1
    assert esme.get(ORG, "/api/events/9", "esmeperf-organizer-api-key").status_code == 404
    assert esme.get(ORG, "/api/events/1", "wrong").json()["message"] == "invalid api key"


def test_seeded_organizers(target_factory, client_factory) -> None:
    proc = target_factory("--organizers", "3", "--organizer-email", "boss@example.com")
    esme = client_factory(proc)
    # The first account once, in ESME's own keys; the others in organizers[].
    emails = [proc.config["organizer_email"], *(o["email"] for o in proc.config["organizers"])]
    assert emails == ["boss@example.com", "organizer2@esmeperf.local",
                      "organizer3@esmeperf.local"]
    ids = set()
    for email in emails:
        token = esme.organizer_token(email)
        ids.add(esme.get(ORG, "/profile", token).json()["id"])
    assert len(ids) == 3


# -- participant API --------------------------------------------------------------------------
def test_sign_up_profile_and_cors(esme: EsmeClient) -> None:
    r = esme.post(PART, "/auth/sign-up", signup_body())
    assert r.status_code == 201
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, PATCH, POST, OPTIONS"
    assert r.headers["Access-Control-Allow-Headers"] == "Content-Type,Authorization"
    body = r.json()
    assert list(body) == ["user", "token"]
    assert list(body["user"]) == ["id", "email", "phoneNumber", "timeCreated", "timeSignOut"]
    assert isinstance(body["user"]["id"], int)
    assert RFC3339.match(body["user"]["timeCreated"]) and RFC3339.match(body["user"]["timeSignOut"])
    assert_esme_jwt(body["token"], "participant", sub=body["user"]["id"])
    profile = esme.get(PART, "/profile", body["token"])
    assert profile.status_code == 200
    assert profile.json()["email"] == "a@example.com" and profile.json()["id"] == body["user"]["id"]


def test_sign_up_keys_case_insensitive_and_unknown_ignored(esme: EsmeClient) -> None:
    r = esme.post(PART, "/auth/sign-up", {"EMAIL": "Ann <ann@example.com>", "Password": "12345678",
                                          "confirmpassword": "12345678", "extra": [1]})
    assert r.status_code == 201, r.text
    assert r.json()["user"]["email"] == "Ann <ann@example.com>"
    assert r.json()["user"]["phoneNumber"] == ""


@pytest.mark.parametrize("data,message", [
    ("", "unexpected end of JSON input"),
    ("{", "unexpected end of JSON input"),
    ("x", "invalid character 'x' looking for beginning of value"),
    ("[1]", "json: cannot unmarshal array into Go value of type auth.signUpDTO"),
    ('{"email": 5}',
     "json: cannot unmarshal number into Go struct field signUpDTO.email of type string"),
    ("null", "invalid email address"),
    ('{"email": "nope", "password": "1"}', "invalid email address"),
    ('{"email": "a@b.c", "password": "1234567", "confirmPassword": "1234567"}',
     "password must be at least 8 characters"),
    ('{"email": "a@b.c", "password": "12345678", "confirmPassword": "12345679"}',
     "confirmPassword must match password"),
])
def test_sign_up_checks_in_order(esme: EsmeClient, data: str, message: str) -> None:
    r = esme.post(PART, "/auth/sign-up", data=data)
    assert r.status_code == 400
    assert r.json() == {"statusCode": 400, "message": message, "error": "Bad Request"}


@pytest.mark.parametrize("data", ["[" * 50000, '{"email": ' + "1" * 5000 + "}", b"\xff\xfe{"])
def test_sign_up_hostile_bodies_are_400(esme: EsmeClient, data: str | bytes) -> None:
    r = esme.post(PART, "/auth/sign-up", data=data)
    assert r.status_code == 400 and r.json()["statusCode"] == 400


def test_sign_up_duplicate_and_db_limits(esme: EsmeClient) -> None:
    assert esme.post(PART, "/auth/sign-up", signup_body()).status_code == 201
    dup = esme.post(PART, "/auth/sign-up", signup_body())
    assert (dup.status_code, dup.json()["message"]) == (400, "email already exists")
    long_phone = esme.post(PART, "/auth/sign-up", signup_body(email="b@example.com",
                                                              phoneNumber="1" * 31))
    assert (long_phone.status_code, long_phone.json()["message"]) == (500, "database error")


def test_chat_request_flow(esme: EsmeClient) -> None:
    _, token = esme.sign_up()
    r = esme.post(PART, "/chat-requests", {"eventId": 1, "description": "d"}, token=token)
    assert (r.status_code, r.content) == (200, b"")
    assert r.headers["Content-Type"].startswith("application/json")
    again = esme.post(PART, "/chat-requests", {"eventId": 1, "description": "d"}, token=token)
    assert (again.status_code, again.json()["message"]) == (400, "chat request already exists")


@pytest.mark.parametrize("auth,message", [
    (None, "invalid authorization header"),
    ("participant:x y", "invalid authorization header"),
    ("participant:forged", "invalid token"),
    ("organizer:forged", "invalid token"),
])
def test_chat_request_auth_errors(esme: EsmeClient, auth: str | None, message: str) -> None:
    r = esme.post(PART, "/chat-requests", {"eventId": 1}, token=auth)
    assert r.status_code == 401
    assert r.json() == {"statusCode": 401, "message": message, "error": "Unauthorized"}


def test_chat_request_validation(esme: EsmeClient) -> None:
    _, token = esme.sign_up()
    long = esme.post(PART, "/chat-requests", {"eventId": 1, "description": "é" * 1001},
                     token=token)
    assert (long.status_code, long.json()["message"]) == (
        400, "description must be at most 2000 characters")
    missing = esme.post(PART, "/chat-requests", {"eventId": 7}, token=token)
    assert (missing.status_code, missing.json()["message"]) == (404, "event with id 7 not found")
    no_event = esme.post(PART, "/chat-requests", {}, token=token)
    assert (no_event.status_code, no_event.json()["message"]) == (404, "event with id 0 not found")
    bad = esme.post(PART, "/chat-requests", data='{"eventId": "1"}', token=token)
    assert bad.status_code == 400 and "cannot unmarshal string" in bad.json()["message"]
    ok = esme.post(PART, "/chat-requests", {"eventId": 1, "description": "x" * 2000}, token=token)
    assert ok.status_code == 200


def test_participant_profile_errors(esme: EsmeClient) -> None:
    assert esme.get(PART, "/profile").json()["message"] == "invalid authorization header"
    assert esme.get(PART, "/profile", "participant:nope").status_code == 401


# -- messenger REST ---------------------------------------------------------------------------
def test_messenger_rest_auth_errors(esme: EsmeClient) -> None:
    _, p_token = esme.sign_up()
    o_token = esme.organizer_token()
    cases = [(None, "/participant/chats", "malformed token"),
             ("garbage", "/participant/chats", "malformed token"),
             (o_token, "/participant/chats", "invalid token type"),
             (p_token, "/agency/chats", "invalid token type"),
             ("participant:unknown", "/participant/chats", "unknown user")]
    for token, path, message in cases:
        r = esme.get(MSG, path, token)
        assert r.status_code == 401, (path, token)
        assert r.json() == {"statusCode": 401, "message": message, "error": "Unauthorized"}
        assert r.headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"


def test_messenger_rest_chats_and_messages(esme: EsmeClient) -> None:
    c = esme.chat()
    esme.send(c["part"], "send_message", {"chatId": c["chat_id"], "message": "stored text"})
    esme.recv(c["part"])
    msgs = esme.get(MSG, f"/participant/chats/{c['chat_id']}/messages", c["p_token"])
    assert msgs.status_code == 200
    assert [m["content"] for m in msgs.json()] == [
        "Problem description: Performance test chat request", "stored text"]
    agency = esme.get(MSG, f"/agency/chats/{c['chat_id']}/messages", c["o_token"]).json()
    assert agency == msgs.json()
    assert esme.get(MSG, "/agency/chats", c["o_token"]).json() == []  # only archived chats
    _, other = esme.sign_up()
    r = esme.get(MSG, f"/participant/chats/{c['chat_id']}/messages", other)
    assert (r.status_code, r.json()["message"]) == (400, "chat not found")
    esme.send(c["org"], "close_chat", {"chatId": c["chat_id"]})
    esme.recv(c["org"])
    archived = esme.get(MSG, "/agency/chats", c["o_token"]).json()
    assert [ch["id"] for ch in archived] == [c["chat_id"]] and "participant" in archived[0]


def test_unknown_paths_are_answered_as_each_service_does_with_cors(esme: EsmeClient) -> None:
    """NestJS (the organizer API): JSON `Cannot GET /nope`; Go's httprouter (the participant
    and messenger APIs): text, 404 or 405 (contrib/esme-real/conformance.py's cases)."""
    r = esme.get(ORG, "/nope")
    assert r.json() == {"statusCode": 404, "message": "Cannot GET /nope", "error": "Not Found"}
    assert esme.get(ORG, "/auth/sign-in").json()["message"] == "Cannot GET /auth/sign-in"
    for api in (PART, MSG):
        r = esme.get(api, "/nope")
        assert (r.status_code, r.headers["Content-Type"], r.text) == (
            404, "text/plain; charset=utf-8", "404 page not found\n")
        assert r.headers["Access-Control-Allow-Origin"] == "*"
    r = esme.get(PART, "/auth/sign-up")
    assert (r.status_code, r.text) == (405, "Method Not Allowed\n")
    assert esme.http.options(esme.config[PART] + "/auth/sign-up", timeout=5).status_code == 200
