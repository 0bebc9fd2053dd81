"""Participant API (Go stand-in): sign-up, profile and chat requests."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp import web

from .auth import PARTICIPANT, hash_password, split_bearer, token_prefix
from .http import cors_middleware, empty_response, error_response, json_response
from .hub import Hub
from .models import ChatRequest, Participant
from .wire import go_unmarshal, ns_time

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_ADDR_SPEC = rf'(?:{_DOT_ATOM}|"(?:[^"\\\r\n]|\\.)*")@{_DOT_ATOM}'
# net/mail.ParseAddress accepts a bare addr-spec or 'display name <addr-spec>'.
_ADDRESS = re.compile(rf'^\s*(?:{_ADDR_SPEC}|(?:[^<>@]*|"[^"]*")\s*<{_ADDR_SPEC}>)\s*$')

SIGN_UP_FIELDS = {"email": "string", "password": "string", "confirmPassword": "string",
                  "phoneNumber": "string"}
CHAT_REQUEST_FIELDS = {"eventId": "int", "description": "string", "lat": "float",
                       "lng": "float"}


def valid_address(text: str) -> bool:
    """Approximation of Go's net/mail.ParseAddress success."""
    return bool(_ADDRESS.match(text))


def user_json(p: Participant, precision_ns: int = 1) -> dict[str, Any]:
    """The participant user object; /profile rounds to Postgres' microseconds."""
    created = ns_time(p.created_ns // precision_ns * precision_ns)
    return {"id": p.id, "email": p.email, "phoneNumber": p.phone, "timeCreated": created,
            "timeSignOut": created}


class ParticipantApi:
    """Handlers bound to the shared hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def _body(self, request: web.Request) -> str:
        return (await request.read()).decode(errors="replace")

    async def sign_up(self, request: web.Request) -> web.Response:
        hub = self.hub
        dto, error = go_unmarshal(await self._body(request), "auth.signUpDTO", SIGN_UP_FIELDS)
        if error is not None:
            return error_response(400, error)
        email, password, phone = dto["email"], dto["password"], dto["phoneNumber"]
        if not valid_address(email):
            return error_response(400, "invalid email address")
        if len(password.encode()) < 8:
            return error_response(400, "password must be at least 8 characters")
        if password != dto["confirmPassword"]:
            return error_response(400, "confirmPassword must match password")
        if email in hub.participant_emails:
            return error_response(400, "email already exists")
        hub.signups += 1
        faults = hub.faults
        if faults.fail_signup_after is not None and hub.signups > faults.fail_signup_after:
            return error_response(500, "database error")
        if faults.garbage_signup_after is not None and hub.signups > faults.garbage_signup_after:
            return json_response({"unexpected": True}, 201)
        if len(phone) > 30 or len(email) > 320:  # varchar limits of the real schema
            return error_response(500, "database error")
        loop = asyncio.get_running_loop()
        password_hash = await loop.run_in_executor(None, hash_password, password,
                                                   hub.pbkdf2_iterations)
        if email in hub.participant_emails:
            # two sign-ups raced past the check above into the unique constraint, as in ESME
            return error_response(500, "database error")
        created_ns = time.time_ns()
        user_id = hub.store.add_participant(email, password_hash, phone, created_ns)
        participant = Participant(user_id, email, password_hash, phone, created_ns)
        hub.participants[user_id] = participant
        hub.participant_emails.add(email)
        token = hub.tokens.issue(PARTICIPANT, user_id)
        return json_response({"user": user_json(participant), "token": token}, 201)

    def current(self, request: web.Request) -> Participant | web.Response:
        token = split_bearer(request.headers.get("Authorization", ""))
        if token is None:
            return error_response(401, "invalid authorization header")
        identity = self.hub.tokens.lookup(token) if token_prefix(token) == PARTICIPANT else None
        participant = None if identity is None else self.hub.participants.get(identity.user_id)
        if participant is None:
            return error_response(401, "invalid token")
        return participant

    async def profile(self, request: web.Request) -> web.Response:
        who = self.current(request)
        if isinstance(who, web.Response):
            return who
        return json_response(user_json(who, 1000))

    async def chat_request(self, request: web.Request) -> web.Response:
        hub = self.hub
        who = self.current(request)
        if isinstance(who, web.Response):
            return who
        dto, error = go_unmarshal(await self._body(request), "chat_requests.createChatRequestDto",
                                  CHAT_REQUEST_FIELDS)
        if error is not None:
            return error_response(400, error)
        if len(dto["description"].encode()) > 2000:
            return error_response(400, "description must be at most 2000 characters")
        event_id = dto["eventId"]
        agency_id = hub.events.get(event_id)
        if agency_id is None:
            return error_response(404, f"event with id {event_id} not found")
        hub.chat_request_attempts += 1
        limit = hub.faults.fail_chat_request_after
        if limit is not None and hub.chat_request_attempts > limit:
            return error_response(500, "database error")
        if not hub.store.add_lock(event_id, who.id):
            return error_response(400, "chat request already exists")
        hub.enqueue(ChatRequest(who.id, agency_id, event_id, dto["description"], dto["lat"],
                                dto["lng"]))
        return empty_response(200)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[cors_middleware("GET, PATCH, POST, OPTIONS")])
        app.router.add_post("/auth/sign-up", self.sign_up)
        app.router.add_get("/profile", self.profile)
        app.router.add_post("/chat-requests", self.chat_request)
        return app
