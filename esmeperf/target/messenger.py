"""Messenger API: the WebSocket endpoint /connect, the chat REST endpoints and /stats."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, cast

from aiohttp import WSMsgType, web

from .auth import ORGANIZER, PARTICIPANT, Identity, split_bearer, token_prefix
from .http import cors_middleware, error_response
from .hub import Hub
from .messenger_rest import AGENCY_ROLES, MessengerRest, message_json
from .models import Conn
from .wire import decode_first, envelope, fold, now_ms

log = logging.getLogger("esmeperf.target.messenger")

MALFORMED = envelope("error", {"message": "malformed message"})
BAD_TYPE = envelope("error", {"message": "invalid message type"})
BAD_PAYLOAD = envelope("error", {"message": "invalid message payload"})
INTERNAL = envelope("error", {"message": "internal server error"})


def _no_access(chat_id: str) -> bytes:
    return envelope("error", {"message": f"you have no access to chat {chat_id}"})


def _chat_id_payload(obj: dict[str, Any]) -> str | None:
    """The chatId of a {"chatId": string} payload, '' if absent, None if undecodable."""
    found, payload = fold(obj, "payload")
    if not found:
        return None  # Go unmarshals an absent RawMessage as an error
    if payload is None:
        return ""
    if not isinstance(payload, dict):
        return None
    _, chat_id = fold(payload, "chatId")
    if chat_id is None:
        return ""
    return chat_id if isinstance(chat_id, str) else None


class Messenger:
    """Routes authorized WebSocket frames to the hub; one instance per target."""

    def __init__(self, hub: Hub, max_frame: int, auth_timeout: float) -> None:
        self.hub = hub
        self.max_frame = max_frame
        self.auth_timeout = auth_timeout
        self.sockets: set[asyncio.Transport] = set()  # every upgraded socket, for shutdown
        # --message-delay: participant messages held, oldest first, with when each is due. One
        # delay for all, so the queue is in due order and one timer at a time serves it.
        self.held: deque[tuple[float, Conn, dict[str, Any], int]] = deque()

    # -- authorization ---------------------------------------------------------------------
    def identify(self, data: str | bytes) -> Identity | None:
        """Validate the first frame {"Authorization": "Bearer <prefix>:<token>"}."""
        try:
            obj = decode_first(data)
        except (ValueError, RecursionError):  # also bad UTF-8, huge ints, deep nesting
            return None
        if not isinstance(obj, dict):
            return None
        _, header = fold(obj, "Authorization")
        if not isinstance(header, str):
            return None
        token = split_bearer(header)
        if token is None or token_prefix(token) not in (ORGANIZER, PARTICIPANT):
            return None
        identity = self.hub.tokens.lookup(token)
        if identity is None:
            return None
        if identity.kind == ORGANIZER:
            org = self.hub.organizers.get(identity.user_id)
            if org is None or org.role not in AGENCY_ROLES:
                return None
        return identity

    # -- the WebSocket endpoint ------------------------------------------------------------
    async def connect(self, request: web.Request) -> web.StreamResponse:
        hub, faults = self.hub, self.hub.faults
        hub.handshakes += 1
        if faults.refuse_ws_after is not None and hub.handshakes > faults.refuse_ws_after:
            hub.counters.handshakes_refused += 1
            return error_response(503, "service unavailable (--refuse-ws-after)")
        if faults.ws_handshake_delay:
            await asyncio.sleep(faults.ws_handshake_delay)
        ws = web.WebSocketResponse(max_msg_size=self.max_frame, compress=False)
        await ws.prepare(request)
        transport = cast(asyncio.Transport, request.transport)
        self.sockets.add(transport)
        try:
            try:
                first = await ws.receive(timeout=self.auth_timeout)
            except TimeoutError:
                first = None
            identity = None
            if first is not None and first.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                identity = self.identify(first.data)
            if identity is None:
                # ESME only logs and drops the TCP connection: no close frame, no message.
                transport.abort()
                return ws
            conn = Conn(transport, identity.kind, identity.user_id, hub.send_buffer)
            hub.attach(conn)
            try:
                await self._serve(ws, conn)
            finally:
                hub.detach(conn)
                if conn.dropped:
                    log.info("%s %d: %d frames dropped", conn.kind, conn.user_id, conn.dropped)
        finally:
            self.sockets.discard(transport)
        return ws

    async def _serve(self, ws: web.WebSocketResponse, conn: Conn) -> None:
        hub = self.hub
        counters = hub.counters
        receive = ws.receive
        handle = self.handle
        text, binary = WSMsgType.TEXT, WSMsgType.BINARY
        while True:
            msg = await receive()
            if msg.type is not text and msg.type is not binary:
                return  # close, error (for example a frame over --max-frame: 1009) or EOF
            counters.frames_received += 1
            if not handle(conn, msg.data):
                hub.flush_conn(conn)
                conn.transport.close()  # --close-after-messages: flush, then FIN; no close frame
                return

    def handle(self, conn: Conn, data: str | bytes) -> bool:
        """Process one frame; False means close the connection now."""
        hub = self.hub
        try:
            obj = decode_first(data)
        except (ValueError, RecursionError):  # also bad UTF-8, huge ints, deep nesting
            hub.send(conn, MALFORMED)
            return True
        if obj is None:
            obj = {}
        if not isinstance(obj, dict):
            hub.send(conn, MALFORMED)
            return True
        kind = obj["type"] if "type" in obj else fold(obj, "type")[1]
        if kind == "send_message":
            return self.send_message(conn, obj)
        if kind is not None and not isinstance(kind, str):
            hub.send(conn, MALFORMED)
        elif kind == "get_chats":
            hub.send(conn, envelope("chats", {"chats": hub.chats_of(conn)}))
        elif kind == "get_chat_history":
            self.history(conn, obj)
        elif conn.kind == ORGANIZER and kind == "start_chat":
            hub.start_chat(conn)
        elif conn.kind == ORGANIZER and kind == "close_chat":
            chat_id = _chat_id_payload(obj)
            chat = None if chat_id is None else hub.owned_chat(conn, chat_id)
            if chat_id is None:
                hub.send(conn, BAD_PAYLOAD)
            elif chat is None:
                hub.send(conn, _no_access(chat_id))
            else:
                hub.close_chat(chat)
        else:
            hub.send(conn, BAD_TYPE)
        return True

    def send_message(self, conn: Conn, obj: dict[str, Any]) -> bool:
        """The hot path: check access, persist (batched) and fan out one prebuilt frame."""
        started = time.perf_counter_ns()
        hub = self.hub
        faults = hub.faults
        participant = conn.kind == PARTICIPANT
        if participant:
            conn.sends += 1
            if conn.last_send_ns:
                hub.counters.send_intervals.record(started - conn.last_send_ns)
            conn.last_send_ns = started
            if faults.error_frame_after is not None and conn.sends == faults.error_frame_after + 1:
                hub.send(conn, INTERNAL)
                return self._keep(conn)
            if faults.message_delay:
                self._hold(conn, obj, started)
                return self._keep(conn)
        self._store(conn, obj, started)
        return self._keep(conn)

    def _hold(self, conn: Conn, obj: dict[str, Any], started: int) -> None:
        """--message-delay: process this frame once the delay has passed, after those before.
        The delay is the target's slowness: it counts in the frame's handling time."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.hub.faults.message_delay
        if not self.held:
            loop.call_at(due, self._release)
        self.held.append((due, conn, obj, started))

    def _release(self) -> None:
        """Process the held frames that are due; wake again for the next one."""
        loop = asyncio.get_running_loop()
        held, now = self.held, loop.time()
        while held and held[0][0] <= now:
            _, conn, obj, started = held.popleft()
            self._store(conn, obj, started)
        if held:
            loop.call_at(held[0][0], self._release)

    def _store(self, conn: Conn, obj: dict[str, Any], started: int) -> None:
        """Check access, persist (batched) and fan out one send_message frame."""
        hub = self.hub
        participant = conn.kind == PARTICIPANT
        if "payload" in obj:
            payload = obj["payload"]
        else:
            found, payload = fold(obj, "payload")
            if not found:
                payload = _ABSENT  # Go fails to unmarshal an absent RawMessage
        parsed = _message_payload(payload)
        if parsed is None:
            hub.send(conn, BAD_PAYLOAD)
            return
        chat_id, text, lat, lng = parsed
        chat = hub.active.get(chat_id)
        owner = None if chat is None else chat.participant_id if participant else chat.organizer_id
        if chat is None or owner != conn.user_id:
            hub.send(conn, _no_access(chat_id))
            return
        if participant:
            hub.counters.participant_messages += 1
            hub.message(chat, conn.user_id, 0, text, now_ms(), lat, lng)
        else:
            hub.counters.organizer_messages += 1
            hub.message(chat, conn.user_id, 1, text, now_ms(), None, None)  # ESME drops them
        hub.counters.handled((time.perf_counter_ns() - started) // 1000)

    def _keep(self, conn: Conn) -> bool:
        limit = self.hub.faults.close_after_messages
        return limit is None or conn.kind != PARTICIPANT or conn.sends < limit

    def history(self, conn: Conn, obj: dict[str, Any]) -> None:
        hub = self.hub
        chat_id = _chat_id_payload(obj)
        if chat_id is None:
            hub.send(conn, BAD_PAYLOAD)
            return
        chat = hub.owned_chat(conn, chat_id)
        if chat is None:
            hub.send(conn, _no_access(chat_id))
            return
        messages = [message_json(row) for row in hub.store.messages(chat.id)]
        hub.send(conn, envelope("chat_history", {"chatId": chat.id, "messages": messages}))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[cors_middleware("GET, OPTIONS")])
        app.router.add_get("/connect", self.connect)
        rest = MessengerRest(self.hub)
        app.router.add_get("/agency/chats", rest.agency_chats)
        app.router.add_get("/agency/chats/{chat_id}/messages", rest.chat_messages)
        app.router.add_get("/participant/chats", rest.participant_chats)
        app.router.add_get("/participant/chats/{chat_id}/messages", rest.chat_messages)
        app.router.add_get("/stats", rest.stats)
        return app


_ABSENT = object()


def _message_payload(payload: Any) -> tuple[str, str, float | None, float | None] | None:
    """Decode a send_message payload as Go would into {chatId, message, lat?, lng?}."""
    if payload is None:
        return "", "", None, None
    if type(payload) is not dict:
        return None
    if len(payload) == 2 and "chatId" in payload and "message" in payload:
        chat_id, text, lat, lng = payload["chatId"], payload["message"], None, None  # fast path
    else:
        chat_id = fold(payload, "chatId")[1]
        text = fold(payload, "message")[1]
        lat = fold(payload, "lat")[1]
        lng = fold(payload, "lng")[1]
        for coord in (lat, lng):
            if coord is not None and (type(coord) is bool or not isinstance(coord, int | float)):
                return None
    if chat_id is None:
        chat_id = ""
    if text is None:
        text = ""
    if type(chat_id) is not str or type(text) is not str:
        return None
    return chat_id, text, lat, lng
