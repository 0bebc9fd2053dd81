"""Plain records shared by the hub and the APIs: users, requests, chats, connections, faults."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import ChatRow


@dataclass(slots=True)
class Organizer:
    id: int
    email: str
    password: str
    first_name: str
    last_name: str
    phone: str
    created_ms: int
    role: int
    agency_id: int | None


@dataclass(slots=True)
class Participant:
    id: int
    email: str
    password: str
    phone: str
    created_ns: int


@dataclass(slots=True)
class ChatRequest:
    participant_id: int
    agency_id: int
    event_id: int
    description: str
    lat: float | None
    lng: float | None


@dataclass(slots=True)
class Chat:
    id: str
    agency_id: int
    event_id: int
    organizer_id: int
    participant_id: int
    ended: int
    lat: float | None
    lng: float | None
    start_ms: int

    def row(self) -> ChatRow:
        return (self.id, self.agency_id, self.event_id, self.organizer_id, self.participant_id,
                self.ended, self.lat, self.lng, self.start_ms)


@dataclass(slots=True, eq=False)
class Conn:
    """One authorized WebSocket connection; `transport` is written to directly."""

    transport: asyncio.Transport
    kind: str
    user_id: int
    send_limit: int
    dropped: int = 0
    sends: int = 0  # send_message frames received on this connection (fault flags count them)
    last_send_ns: int = 0  # when the last of them arrived (CLOCK_MONOTONIC ns): the pacing ruler
    closed: bool = False
    out: list[bytes] = field(default_factory=list)  # frames queued for this loop iteration
    out_bytes: int = 0


@dataclass(slots=True)
class Faults:
    """Fault-injection thresholds from the CLI; None disables a fault."""

    refuse_ws_after: int | None = None
    ws_handshake_delay: float = 0.0
    close_after_messages: int | None = None
    error_frame_after: int | None = None
    fail_signup_after: int | None = None
    fail_chat_request_after: int | None = None
    garbage_signup_after: int | None = None
    stats_delay: float = 0.0
    message_delay: float = 0.0  # seconds every participant message is held
