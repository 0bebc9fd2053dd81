"""ESME's wire format as the generator uses it: the Go test's texts, builders, parsers."""

from __future__ import annotations

import json
from typing import Any

from ..config import Credentials
from ..errors import WebSocketFailure

# The Go test's fixed participant data (tests/performance/participants/rest.go).
PARTICIPANT_PASSWORD = "performance"
PARTICIPANT_PHONE = "+48100200300"
CHAT_REQUEST_DESCRIPTION = "Performance test chat request"
# ESME's first message of a chat whose request had a description (esme-protocol.md 4.8).
PROBLEM_PREFIX = "Problem description: "
# esmeperf's --reply: the organizer sends a participant's text back behind this.
REPLY_PREFIX = "reply: "

START_CHAT = '{"type":"start_chat","payload":""}\n'
GET_CHATS = '{"type":"get_chats","payload":""}\n'
SEND_MESSAGE_TAIL = '"}}\n'  # closes a send_message frame after its text (numbered_head)

# Outbound types whose payload is an object (esme-protocol.md 4.6).
OBJECT_PAYLOADS = frozenset(
    {"info", "error", "chats", "chat_history", "new_chat", "user_message", "closed_chat"})


# -- REST bodies -----------------------------------------------------------------------------
def sign_in_body(creds: Credentials) -> dict[str, Any]:
    """The organizer's POST /auth/sign-in body."""
    return {"email": creds.email, "password": creds.password}


def sign_up_body(email: str) -> dict[str, Any]:
    """The participant's POST /auth/sign-up body, with the Go test's password and phone."""
    return {"email": email, "password": PARTICIPANT_PASSWORD,
            "confirmPassword": PARTICIPANT_PASSWORD, "phoneNumber": PARTICIPANT_PHONE}


def chat_request_body(event_id: int) -> dict[str, Any]:
    """The participant's POST /chat-requests body, with the Go test's description."""
    return {"eventId": event_id, "description": CHAT_REQUEST_DESCRIPTION}


# -- WebSocket frames the generator sends ----------------------------------------------------
def authorization(token: str, newline: bool) -> str:
    """The first frame of a connection; ESME acknowledges nothing."""
    # The Go test's participant builds it with json.Marshal (no trailing newline), its
    # organizer with gorilla's WriteJSON (a newline): callers choose as the Go test does.
    return json.dumps({"Authorization": f"Bearer {token}"}) + ("\n" if newline else "")


def message_prefix(local_addr: str) -> str:
    """The Go test's message text up to the number: 'connection <addr>: message number '."""
    return f"connection {local_addr}: message number "


def send_message(chat_id: str, text: str) -> str:
    """A send_message frame in gorilla's compact layout, with its trailing newline."""
    return numbered_head(chat_id, text) + SEND_MESSAGE_TAIL


def numbered_head(chat_id: str, prefix: str) -> str:
    """send_message(chat_id, prefix + str(n)) is head + str(n) + SEND_MESSAGE_TAIL."""
    # Built once per chat, so each message costs one f-string instead of two json.dumps.
    return ('{"type":"send_message","payload":{"chatId":' + json.dumps(chat_id)
            + ',"message":' + json.dumps(prefix)[:-1])


# -- Frames the server sends: the JSON parse -------------------------------------------------
def parse(frame: str, local_addr: str) -> tuple[Any, Any]:
    """(type, payload) of a server frame; anything but a JSON envelope is a WebSocketFailure."""
    try:
        message = json.loads(frame)
    except ValueError:
        message = None
    if not isinstance(message, dict) or (message.get("type") in OBJECT_PAYLOADS
                                         and not isinstance(message.get("payload"), dict)):
        raise WebSocketFailure(
            f"connection {local_addr}: malformed frame from server: {frame[:120]!r}")
    return message.get("type"), message.get("payload")


def number_after(prefix: str, content: Any) -> int | None:
    """n of a text prefix + n; None for any other text."""
    if not isinstance(content, str) or not content.startswith(prefix):
        return None
    try:
        return int(content[len(prefix):])
    except ValueError:
        return None


def echo_number(kind: Any, payload: Any, prefix: str) -> int | None:
    """n when a parsed frame is a participant's message prefix + n (its echo), else None."""
    if kind != "user_message" or payload.get("fromOrganizer") != 0:
        return None
    return number_after(prefix, payload.get("content"))


def reply_number(kind: Any, payload: Any, reply_prefix: str) -> int | None:
    """n when a parsed frame is the organizer's reply to message n (--reply), else None."""
    if kind != "user_message" or payload.get("fromOrganizer") != 1:
        return None
    return number_after(reply_prefix, payload.get("content"))


def from_participant(kind: Any, payload: Any) -> bool:
    """Whether a parsed frame is a participant's own message (not ESME's problem description)."""
    return (kind == "user_message" and payload.get("fromOrganizer") == 0
            and not str(payload.get("content", "")).startswith(PROBLEM_PREFIX))


# -- Fast paths: the same answers by string search, for Go's compact layout ------------------
# Go (and the embedded target) write a user_message as {"type":"user_message","payload":{"id":..,
# "chatId":..,"authorId":..,"fromOrganizer":0,"content":"..",...}}. A quote inside a JSON string
# is always escaped, so these markers can only match the keys themselves. A frame in any other
# layout returns None or False here and takes the JSON parse; tests/test_protocol.py checks
# that both agree on every frame the target can send.
_USER_MESSAGE = '{"type":"user_message",'
_FROM_PARTICIPANT = '"fromOrganizer":0,'
_PROBLEM = '"content":' + json.dumps(PROBLEM_PREFIX)[:-1]


def echo_marker(prefix: str) -> str:
    """What find_echo looks for: a participant's message prefix + n as Go writes it."""
    return _FROM_PARTICIPANT + '"content":' + json.dumps(prefix)[:-1]


def find_echo(frame: str, marker: str) -> int | None:
    """echo_number without the parse: n, or None when the JSON parse must decide."""
    if not frame.startswith(_USER_MESSAGE):
        return None
    at = frame.find(marker)
    if at < 0:
        return None
    start = at + len(marker)
    end = frame.find('"', start)
    digits = frame[start:end]
    # isdecimal, not isdigit: int() refuses digits such as "²" that isdigit accepts.
    return int(digits) if end > 0 and digits.isdecimal() else None


def is_from_participant(frame: str) -> bool:
    """from_participant without the parse: True only when the parse would say so."""
    return (frame.startswith(_USER_MESSAGE) and _FROM_PARTICIPANT in frame
            and _PROBLEM not in frame)
