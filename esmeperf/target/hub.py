"""Messenger state: users, chat-request queues, active chats, connection pools and fan-out."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .auth import ORGANIZER, Tokens
from .metrics import Counters
from .models import Chat, ChatRequest, Conn, Faults, Organizer, Participant
from .store import Store
from .wire import ZERO_TIME, ObjectIds, envelope, message_json, ms_time, now_ms


@dataclass
class Hub:
    """All mutable state; touched only from the event-loop thread, so it needs no locks."""

    store: Store
    faults: Faults
    send_buffer: int
    pbkdf2_iterations: int
    tokens: Tokens = field(default_factory=Tokens)
    counters: Counters = field(default_factory=Counters)
    ids: ObjectIds = field(default_factory=ObjectIds)
    organizers: dict[int, Organizer] = field(default_factory=dict)
    organizers_by_email: dict[str, Organizer] = field(default_factory=dict)
    participants: dict[int, Participant] = field(default_factory=dict)
    participant_emails: set[str] = field(default_factory=set)
    events: dict[int, int] = field(default_factory=dict)  # event id -> agency id (approved only)
    queues: dict[int, deque[ChatRequest]] = field(default_factory=dict)
    # The chat cache of ESME: active chats only; access checks look nowhere else.
    active: dict[str, Chat] = field(default_factory=dict)
    by_organizer: dict[int, dict[str, Chat]] = field(default_factory=dict)
    by_participant: dict[int, dict[str, Chat]] = field(default_factory=dict)
    organizer_pools: dict[int, list[Conn]] = field(default_factory=dict)
    participant_pools: dict[int, list[Conn]] = field(default_factory=dict)
    connections: set[Conn] = field(default_factory=set)
    signups: int = 0
    _dirty: list[Conn] = field(default_factory=list)  # connections with queued frames
    _flush_scheduled: bool = False
    chat_request_attempts: int = 0
    handshakes: int = 0

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        """Fill the in-memory mirrors from the database (also after a restart on --db)."""
        store = self.store
        for row in store.organizers():
            org = Organizer(*row)
            self.organizers[org.id] = org
            self.organizers_by_email[org.email] = org
        for prow in store.participants():
            self.participants[prow[0]] = Participant(*prow)
            self.participant_emails.add(prow[1])
        for event_id, agency_id in store.approved_events():
            self.events[event_id] = agency_id
        for chat_row in store.active_chats():
            self._cache(Chat(*chat_row))
        stored = store.counts()
        c = self.counters
        c.chats = stored.chats
        c.chat_requests_total = stored.chat_requests
        c.participant_messages = stored.participant_messages
        c.organizer_messages = stored.organizer_messages
        c.description_messages = stored.description_messages

    def _cache(self, chat: Chat) -> None:
        self.active[chat.id] = chat
        self.by_organizer.setdefault(chat.organizer_id, {})[chat.id] = chat
        self.by_participant.setdefault(chat.participant_id, {})[chat.id] = chat

    def _uncache(self, chat: Chat) -> None:
        self.active.pop(chat.id, None)
        self.by_organizer.get(chat.organizer_id, {}).pop(chat.id, None)
        self.by_participant.get(chat.participant_id, {}).pop(chat.id, None)

    # -- connections -----------------------------------------------------------------------
    def _pools(self, kind: str) -> dict[int, list[Conn]]:
        return self.organizer_pools if kind == ORGANIZER else self.participant_pools

    def attach(self, conn: Conn) -> None:
        self._pools(conn.kind).setdefault(conn.user_id, []).append(conn)
        self.connections.add(conn)
        self.counters.connections_total += 1

    def detach(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.connections.discard(conn)
        pools = self._pools(conn.kind)
        pool = pools.get(conn.user_id)
        if pool is not None and conn in pool:
            pool.remove(conn)
            if not pool:
                del pools[conn.user_id]

    def send(self, conn: Conn, frame: bytes) -> None:
        """Queue one frame unless the connection's send buffer is full (then drop and count).

        Frames are written once per event-loop iteration, joined per connection: a busy
        organizer socket then costs one send() syscall per iteration instead of one per frame.
        """
        if conn.closed:
            return
        size = len(frame)
        if conn.transport.get_write_buffer_size() + conn.out_bytes + size > conn.send_limit:
            conn.dropped += 1
            self.counters.frames_dropped += 1
            return
        if not conn.out:
            self._dirty.append(conn)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self.flush_writes)
        conn.out.append(frame)
        conn.out_bytes += size
        self.counters.frames_delivered += 1

    def flush_writes(self) -> None:
        """Write every connection's queued frames with one transport.write each."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            self.flush_conn(conn)

    @staticmethod
    def flush_conn(conn: Conn) -> None:
        if conn.out:
            data = conn.out[0] if len(conn.out) == 1 else b"".join(conn.out)
            conn.out.clear()
            conn.out_bytes = 0
            if not conn.transport.is_closing():
                conn.transport.write(data)

    def push(self, chat: Chat, frame: bytes) -> None:
        """Send one prebuilt frame to every connection of both parties of a chat."""
        send = self.send
        for conn in self.organizer_pools.get(chat.organizer_id, ()):
            send(conn, frame)
        for conn in self.participant_pools.get(chat.participant_id, ()):
            send(conn, frame)

    # -- chat requests ---------------------------------------------------------------------
    def enqueue(self, request: ChatRequest) -> None:
        self.store.add_chat_request(request.participant_id, request.agency_id, request.event_id,
                                    request.description, request.lat, request.lng)
        self.queues.setdefault(request.agency_id, deque()).append(request)
        self.counters.chat_requests_total += 1

    # -- messenger operations ----------------------------------------------------------------
    def participant_brief(self, participant_id: int) -> dict[str, Any] | None:
        p = self.participants.get(participant_id)
        return None if p is None else {"id": p.id, "email": p.email, "phoneNumber": p.phone}

    def chat_json(self, chat: Chat, enriched: bool) -> dict[str, Any]:
        obj: dict[str, Any] = {"id": chat.id, "agencyId": chat.agency_id, "eventId": chat.event_id,
                               "organizerId": chat.organizer_id,
                               "participantId": chat.participant_id, "ended": chat.ended}
        if chat.lat is not None:
            obj["latStart"] = chat.lat
        if chat.lng is not None:
            obj["lngStart"] = chat.lng
        obj["timeStart"] = ms_time(chat.start_ms)
        obj["timeEnd"] = ZERO_TIME
        if enriched:
            brief = self.participant_brief(chat.participant_id)
            if brief is not None:
                obj["participant"] = brief
        return obj

    def start_chat(self, conn: Conn) -> None:
        org = self.organizers[conn.user_id]
        queue = self.queues.get(org.agency_id or 0)
        if not queue:
            self.send(conn, envelope("info", {"message": "no new chats"}))
            return
        request = queue.popleft()
        self.counters.chat_requests_popped += 1
        chat = Chat(self.ids.next(), org.agency_id or 0, request.event_id, org.id,
                    request.participant_id, 0, request.lat, request.lng, now_ms())
        self.store.add_chat(chat.row())
        self.counters.chats += 1
        self._cache(chat)
        self.push(chat, envelope("new_chat", self.chat_json(chat, True)))
        if request.description:
            self.counters.description_messages += 1
            self.message(chat, request.participant_id, 0,
                         "Problem description: " + request.description, now_ms(), None, None,
                         description=True)

    def message(self, chat: Chat, author_id: int, from_organizer: int, content: str, ms: int,
                lat: float | None, lng: float | None, description: bool = False) -> None:
        """Persist one message (batched) and push the same frame bytes to both pools."""
        row = (self.ids.next(), chat.id, author_id, from_organizer, content, ms, lat, lng)
        payload = message_json(row)
        if description:
            self.store.add_description(row)
        else:
            self.store.add_message(row)
        self.push(chat, envelope("user_message", payload))

    def owned_chat(self, conn: Conn, chat_id: str) -> Chat | None:
        """The cached chat if this user is its organizer or participant, else None."""
        chat = self.active.get(chat_id)
        if chat is None:
            return None
        owner = chat.organizer_id if conn.kind == ORGANIZER else chat.participant_id
        return chat if owner == conn.user_id else None

    def close_chat(self, chat: Chat) -> None:
        self.store.end_chat(chat.id)
        chat.ended = 1
        self.store.delete_lock(chat.event_id, chat.participant_id)
        self.push(chat, envelope("closed_chat", {"chatId": chat.id}))
        self._uncache(chat)

    def chats_of(self, conn: Conn) -> list[dict[str, Any]]:
        """Active chats of the requester, newest first; organizers get enriched chats."""
        if conn.kind == ORGANIZER:
            mine = self.by_organizer.get(conn.user_id, {})
        else:
            mine = self.by_participant.get(conn.user_id, {})
        chats = sorted(mine.values(), key=lambda c: c.start_ms, reverse=True)
        return [self.chat_json(c, conn.kind == ORGANIZER) for c in chats]

    def stats(self, send_interval_ms: float | None = None) -> dict[str, Any]:
        """Exact counters: queued frames are written and the store flushed before counting.
        With the interval the client meant to send at (`send_interval_ms`, its -smi), how far
        the intervals it kept were from it, as this process saw the frames arrive."""
        self.flush_writes()
        self.store.flush()
        c = self.counters
        return {
            "participants": len(self.participants),
            "organizers_connected": len(self.organizer_pools),
            "participants_connected": len(self.participant_pools),
            "connections_open": len(self.connections),
            "connections_total": c.connections_total,
            "chat_requests_total": c.chat_requests_total,
            "chat_requests_queued": sum(len(q) for q in self.queues.values()),
            "chat_requests_popped": c.chat_requests_popped,
            "chats": c.chats,
            "messages_stored": (c.participant_messages + c.organizer_messages
                                + c.description_messages),
            "participant_messages_stored": c.participant_messages,
            "organizer_messages_stored": c.organizer_messages,
            "frames_received": c.frames_received,
            "frames_delivered": c.frames_delivered,
            "frames_dropped": c.frames_dropped,
            "handshakes_refused": c.handshakes_refused,
            "handling_us": c.handling.summary(),
            "handling_by_second": c.handling_by_second.summary(),
            "send_intervals": c.send_intervals.total,
            **({"send_interval_ms": send_interval_ms,
                "send_interval_error_us": c.send_intervals.error_summary(send_interval_ms)}
               if send_interval_ms else {}),
        }
