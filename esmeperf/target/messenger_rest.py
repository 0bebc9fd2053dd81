"""Messenger REST endpoints: archived chats, chat messages, and our /stats."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from .auth import ORGANIZER, PARTICIPANT, Identity, split_bearer, token_prefix
from .http import error_response, json_response
from .hub import Hub
from .models import Chat
from .store import ChatRow
from .wire import message_json

AGENCY_ROLES = frozenset((2, 3, 4))


class MessengerRest:
    """REST handlers; every call re-validates the bearer token, as messenger-api does."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def rest_user(self, request: web.Request, kind: str) -> Identity | web.Response:
        """Validate a REST bearer token for a route of `kind`; an error response otherwise."""
        token = split_bearer(request.headers.get("Authorization", ""))
        prefix = None if token is None else token_prefix(token)
        if token is None or prefix not in (ORGANIZER, PARTICIPANT):
            return error_response(401, "malformed token")
        if prefix != kind:
            return error_response(401, "invalid token type")
        identity = self.hub.tokens.lookup(token)
        if identity is None:
            return error_response(401, "unknown user")
        if kind == ORGANIZER and self.hub.organizers[identity.user_id].role not in AGENCY_ROLES:
            return error_response(401, "invalid role")
        return identity

    def _archived(self, rows: list[ChatRow]) -> list[dict[str, Any]]:
        return [self.hub.chat_json(Chat(*row), True) for row in rows]

    async def agency_chats(self, request: web.Request) -> web.Response:
        who = self.rest_user(request, ORGANIZER)
        if isinstance(who, web.Response):
            return who
        agency_id = self.hub.organizers[who.user_id].agency_id or 0
        return json_response(self._archived(self.hub.store.ended_chats_of_agency(agency_id)))

    async def participant_chats(self, request: web.Request) -> web.Response:
        who = self.rest_user(request, PARTICIPANT)
        if isinstance(who, web.Response):
            return who
        return json_response(self._archived(
            self.hub.store.ended_chats_of_participant(who.user_id)))

    async def chat_messages(self, request: web.Request) -> web.Response:
        kind = ORGANIZER if request.path.startswith("/agency/") else PARTICIPANT
        who = self.rest_user(request, kind)
        if isinstance(who, web.Response):
            return who
        store = self.hub.store
        chat_id = request.match_info["chat_id"]
        if kind == ORGANIZER:
            found = store.agency_has_chat(chat_id, self.hub.organizers[who.user_id].agency_id)
        else:
            found = store.participant_has_chat(chat_id, who.user_id)
        if not found:
            return error_response(400, "chat not found")
        return json_response([message_json(r) for r in store.messages(chat_id)])

    async def stats(self, request: web.Request) -> web.Response:
        if self.hub.faults.stats_delay:
            await asyncio.sleep(self.hub.faults.stats_delay)
        interval = request.query.get("send_interval_ms")
        try:
            send_interval_ms = float(interval) if interval else None
        except ValueError:
            return error_response(400, "send_interval_ms must be a number of milliseconds")
        if send_interval_ms is not None and not 0 < send_interval_ms < 1e9:
            return error_response(400, "send_interval_ms must be a number of milliseconds")
        return json_response(self.hub.stats(send_interval_ms))
