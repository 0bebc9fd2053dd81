"""Organizer API (NestJS stand-in): sign-in, profile and the event lookup."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from .auth import ORGANIZER, split_bearer, token_prefix, verify_password
from .http import NEST, cors_middleware, error_response, json_response
from .hub import Hub
from .models import Organizer
from .wire import js_time

# Close to validator.js isEmail: a dot-atom local part and a domain with a TLD of 2+ letters.
_EMAIL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}$")
# The service-to-service key participant-api would send to /api/events/:id.
API_KEY = "esmeperf-organizer-api-key"


def public_user(org: Organizer) -> dict[str, Any]:
    """PublicUserDto, fields in declaration order."""
    created = js_time(org.created_ms)
    return {"id": org.id, "email": org.email, "firstName": org.first_name,
            "lastName": org.last_name, "phoneNumber": org.phone, "timeCreated": created,
            "timeSignOut": created, "role": org.role, "agencyId": org.agency_id}


def validate_sign_in(body: Any) -> list[str]:
    """class-validator messages for SignInDto under whitelist + forbidNonWhitelisted."""
    if not isinstance(body, dict):
        body = {}
    errors = [f"property {key} should not exist" for key in body
              if key not in ("email", "password")]
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or len(email) > 320:
        errors.append("email must be shorter than or equal to 320 characters")
    if not isinstance(email, str) or not _EMAIL.match(email):
        errors.append("email must be an email")
    # class-validator runs @MaxLength and @MinLength on a value that is not a string too, and
    # both fail there (ESME's organizer API, checked by contrib/esme-real/conformance.py).
    if not isinstance(password, str) or len(password) > 128:
        errors.append("password must be shorter than or equal to 128 characters")
    if not isinstance(password, str) or len(password) < 16:
        errors.append("password must be longer than or equal to 16 characters")
    if not isinstance(password, str):
        errors.append("password must be a string")
    return errors


class OrganizerApi:
    """Handlers bound to the shared hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def sign_in(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError) as exc:  # bad JSON/UTF-8, huge ints, nesting
                pos = getattr(exc, "pos", getattr(exc, "start", 0))
                if pos >= len(raw.rstrip()):  # V8's words, in every Node.js version
                    return error_response(400, "Unexpected end of JSON input")
                return error_response(400, f"Unexpected token in JSON at position {pos}")
            if not isinstance(body, dict | list):
                # body-parser's strict mode only accepts objects and arrays
                return error_response(400, f"Unexpected token in JSON at position 0: {raw[:20]!r}")
        else:
            body = {}
        errors = validate_sign_in(body)
        if errors:
            return error_response(400, errors)
        org = self.hub.organizers_by_email.get(body["email"])
        loop = asyncio.get_running_loop()
        if org is None or not await loop.run_in_executor(None, verify_password,
                                                         body["password"], org.password):
            return error_response(400, "invalid email or password")
        token = self.hub.tokens.issue(ORGANIZER, org.id)
        return json_response({"user": public_user(org), "token": token})

    def current(self, request: web.Request) -> Organizer | None:
        token = split_bearer(request.headers.get("Authorization", ""))
        if token is None or token_prefix(token) != ORGANIZER:
            return None
        identity = self.hub.tokens.lookup(token)
        return None if identity is None else self.hub.organizers.get(identity.user_id)

    async def profile(self, request: web.Request) -> web.Response:
        org = self.current(request)
        if org is None:  # NestJS guard returning false
            return error_response(403, "Forbidden resource")
        return json_response(public_user(org))

    async def event(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization")
        if header is None:
            return error_response(401, "Unauthorized")
        if split_bearer(header) != API_KEY:
            return error_response(401, "invalid api key")
        raw_id = request.match_info["event_id"]
        if not raw_id.isdigit():
            return error_response(400, ["id must be an integer number"])
        event_id = int(raw_id)
        if event_id not in self.hub.events:  # missing, or its agency is not approved
            return error_response(404, f"Event with id {event_id} not found")
        row = self.hub.store.event(event_id)
        assert row is not None  # hub.events mirrors the events table, which only grows
        return json_response({"id": row[0], "name": row[1], "description": row[2],
                              "address": row[3], "lat": row[4], "lng": row[5],
                              "timeStart": js_time(row[6]), "timeEnd": js_time(row[7]),
                              "agencyId": row[8]})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[cors_middleware("GET,HEAD,PUT,PATCH,POST,DELETE",
                                                            unmatched=NEST)])
        app.router.add_post("/auth/sign-in", self.sign_in)
        app.router.add_get("/profile", self.profile)
        app.router.add_get("/api/events/{event_id}", self.event)
        return app
