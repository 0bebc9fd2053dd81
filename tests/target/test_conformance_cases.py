"""What ESME's own organizer and participant APIs answered to the 41 REST cases of
contrib/esme-real/conformance.py (ESME's public repository at commit 75a6812, built outside this
repository; 41 of 41 the same, 2026-12-06), written out as facts and checked against the
embedded target: status, the error body with its text, a success body's shape (conformance's
`comparable`: keys, JSON types, RFC 3339 times, `prefix:<JWT>` tokens) and the values the
request determines. The requests are conformance.py's own, so a case added there needs its fact
here."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from esmeperf.target.launcher import TargetProcess

RUN_ID = "facts"  # the emails of a case: conf-facts-<key>@example.com


def _load_conformance() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "contrib" / "esme-real" / "conformance.py"
    spec = importlib.util.spec_from_file_location("conformance", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


conformance = _load_conformance()


def error(status: int, message: Any) -> tuple[int, dict[str, Any]]:
    """ESME's error body (both APIs answer in NestJS's form)."""
    reason = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
              500: "Internal Server Error"}[status]
    return status, {"statusCode": status, "message": message, "error": reason}


def bad(message: Any) -> tuple[int, dict[str, Any]]:
    return error(400, message)


TIMES = {"timeCreated": "time", "timeSignOut": "time"}
ORGANIZER = {"agencyId": "int", "email": "str", "firstName": "str", "id": "int",
             "lastName": "str", "phoneNumber": "str", "role": "int", **TIMES}
PARTICIPANT = {"email": "str", "id": "int", "phoneNumber": "str", **TIMES}
SIGNED_UP = {"token": "participant:jwt", "user": PARTICIPANT}
PASSWORD_TOO_LONG = "password must be shorter than or equal to 128 characters"
PASSWORD_TOO_SHORT = "password must be longer than or equal to 16 characters"
DESCRIPTION_TOO_LONG = bad("description must be at most 2000 characters")
NO_CHAT_BODY = (200, "null")  # the participant API answers a chat request with JSON null

FACTS: dict[str, tuple[int, Any]] = {
    # organizer API: POST /auth/sign-in (NestJS, class-validator)
    "organizer sign-in: right password": (200, {
        "shape": {"token": "organizer:jwt", "user": ORGANIZER}, "values": {"user.role": 2}}),
    "organizer sign-in: wrong password": bad("invalid email or password"),
    "organizer sign-in: unknown email": bad("invalid email or password"),
    "organizer sign-in: extra property": bad(["property remember should not exist"]),
    "organizer sign-in: password under 16 chars": bad([PASSWORD_TOO_SHORT]),
    "organizer sign-in: empty object": bad([
        "email must be shorter than or equal to 320 characters", "email must be an email",
        PASSWORD_TOO_LONG, PASSWORD_TOO_SHORT, "password must be a string"]),
    # class-validator runs @MaxLength on a value that is not a string too
    "organizer sign-in: password is a number": bad([
        PASSWORD_TOO_LONG, PASSWORD_TOO_SHORT, "password must be a string"]),
    "organizer sign-in: password 129 chars": bad([PASSWORD_TOO_LONG]),
    "organizer sign-in: not an email": bad(["email must be an email"]),
    "organizer sign-in: invalid JSON": bad("Unexpected end of JSON input"),
    "organizer: unknown path": error(404, "Cannot GET /no-such-path"),
    # organizer API: GET /profile
    "organizer profile: good token": (200, {"shape": ORGANIZER, "values": {"role": 2}}),
    "organizer profile: bad token": error(403, "Forbidden resource"),
    # participant API: POST /auth/sign-up (Go)
    "sign-up: good": (201, {"shape": SIGNED_UP, "values": {
        "user.email": "conf-facts-good@example.com", "user.phoneNumber": "+48100200300"}}),
    "sign-up: duplicate email": bad("email already exists"),
    "sign-up: bad email": bad("invalid email address"),
    "sign-up: password under 8 bytes": bad("password must be at least 8 characters"),
    "sign-up: password mismatch": bad("confirmPassword must match password"),
    "sign-up: missing fields ({})": bad("invalid email address"),
    "sign-up: missing confirmPassword": bad("confirmPassword must match password"),
    "sign-up: invalid JSON": bad("unexpected end of JSON input"),
    "sign-up: number where a string goes": bad(
        "json: cannot unmarshal number into Go struct field signUpDTO.password of type string"),
    # Go's net/mail accepts a display name, and the address is stored as given
    "sign-up: RFC 5322 'Name <addr>' email": (201, {"shape": SIGNED_UP, "values": {
        "user.email": "Conf Test <conf-facts-named@example.com>"}}),
    # the column is varchar(30): PostgreSQL refuses the insert
    "sign-up: phoneNumber over 30 chars": error(500, "database error"),
    # participant API: GET /profile, and what Go's router answers itself (text/plain)
    "participant profile: good token": (200, {"shape": PARTICIPANT, "values": {
        "email": "conf-facts-profile@example.com", "phoneNumber": "+48100200300"}}),
    "participant: unknown path": (404, {"non-JSON body": "404 page not found\n"}),
    "participant: GET /auth/sign-up": (405, {"non-JSON body": "Method Not Allowed\n"}),
    # participant API: POST /chat-requests
    "chat request: good": NO_CHAT_BODY,
    "chat request: twice for one event": bad("chat request already exists"),
    "chat request: bad token": error(401, "invalid token"),
    "chat request: organizer's prefix": error(401, "invalid token"),
    "chat request: no Authorization": error(401, "invalid authorization header"),
    "chat request: 'Bearer' alone": error(401, "invalid authorization header"),
    "chat request: unknown event": error(404, "event with id 999999 not found"),
    "chat request: description 2000 bytes": NO_CHAT_BODY,
    "chat request: description 2001 bytes": DESCRIPTION_TOO_LONG,
    # the limit is in bytes: 1001 two-byte characters are over it
    "chat request: 1001 chars = 2002 bytes": DESCRIPTION_TOO_LONG,
    "chat request: invalid JSON": bad("unexpected end of JSON input"),
    "chat request: with lat/lng": NO_CHAT_BODY,
    # a missing eventId is Go's zero value
    "chat request: no eventId": error(404, "event with id 0 not found"),
    "chat request: eventId as a string": bad("json: cannot unmarshal string into Go struct "
                                             "field createChatRequestDto.eventId of type int"),
}


def test_every_conformance_case_has_its_fact() -> None:
    assert [case.name for case in conformance.CASES] == list(FACTS)
    assert len(FACTS) == 41


@pytest.fixture(scope="module")
def context() -> Iterator[Any]:
    """One embedded target for the module's cases, and conformance's per-target state."""
    proc = TargetProcess()
    proc.start()
    try:
        config = proc.config
        target = conformance.Target(
            "embedded", config["organizer_api_url"], config["participant_api_url"],
            config["event_id"], config["organizer_email"], config["organizer_password"])
        yield conformance.Context(target, RUN_ID, timeout=10.0)
    finally:
        assert proc.stop() == 0


@pytest.mark.parametrize("case", conformance.CASES, ids=lambda case: case.name)
def test_the_embedded_target_answers_as_esme_did(case: Any, context: Any) -> None:
    reply = conformance.run_case(case, context)
    assert (reply.status, reply.comparable(case.values)) == FACTS[case.name], reply.raw[:300]
