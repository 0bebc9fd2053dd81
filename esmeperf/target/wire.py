"""Wire encodings shared by the APIs: JSON, Go-like times and errors, ids, WebSocket frames."""

from __future__ import annotations

import json
import os
import struct
import time
from datetime import UTC, datetime
from typing import Any

# Compact, UTF-8 (not \u-escaped) output, like Go's encoding/json minus its <>& escaping.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_decoder = json.JSONDecoder()

ZERO_TIME = "0001-01-01T00:00:00Z"


def dumps(obj: Any) -> str:
    """Compact JSON text."""
    return _encode(obj)


def _trim_fraction(base: str, frac: int, digits: int) -> str:
    # Go's RFC3339Nano trims trailing zeros and drops the dot when nothing remains.
    if frac == 0:
        return base + "Z"
    return base + "." + f"{frac:0{digits}d}".rstrip("0") + "Z"


_last_ms = -1
_last_ms_text = ""


def ms_time(ms: int) -> str:
    """RFC 3339 UTC text of a Unix time in milliseconds, as Go prints a Mongo DateTime."""
    global _last_ms, _last_ms_text
    if ms == _last_ms:  # thousands of messages share a millisecond under load
        return _last_ms_text
    sec, frac = divmod(ms, 1000)
    text = _trim_fraction(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)), frac, 3)
    _last_ms, _last_ms_text = ms, text
    return text


def ns_time(ns: int) -> str:
    """RFC 3339 UTC text with nanoseconds, trailing zeros trimmed (Go's time.Time)."""
    sec, frac = divmod(ns, 1_000_000_000)
    return _trim_fraction(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)), frac, 9)


def js_time(ms: int) -> str:
    """ISO text with exactly three fraction digits, as JavaScript's Date.toISOString()."""
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def now_ms() -> int:
    """Current Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


class ObjectIds:
    """Mongo-style 24-hex ids: 4-byte seconds, 5 random bytes per process, 3-byte counter."""

    def __init__(self) -> None:
        self._process = os.urandom(5).hex()
        self._counter = int.from_bytes(os.urandom(3), "big")

    def next(self) -> str:
        self._counter = (self._counter + 1) & 0xFFFFFF
        return f"{int(time.time()) & 0xFFFFFFFF:08x}{self._process}{self._counter:06x}"


def text_frame(text: str) -> bytes:
    """One unmasked, final WebSocket text frame (server to client)."""
    data = text.encode()
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + data
    return struct.pack("!BBQ", 0x81, 127, n) + data


def envelope(kind: str, payload: Any) -> bytes:
    """A server frame as gorilla's WriteJSON sends it: compact JSON plus a trailing newline."""
    return text_frame(_encode({"type": kind, "payload": payload}) + "\n")


def decode_first(data: str | bytes) -> Any:
    """Decode the first JSON value of a frame, as Go's json.Decoder does; ValueError if none."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise
        text = data.decode() if isinstance(data, bytes) else data
        return _decoder.raw_decode(text.lstrip(" \t\r\n"))[0]


def go_type_name(value: Any) -> str:
    """The JSON type word Go uses in UnmarshalTypeError messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def go_syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    """Approximate Go's json syntax-error text for a body Python could not parse."""
    rest = text[exc.pos:].strip()
    if not rest or exc.pos >= len(text.rstrip()):
        return "unexpected end of JSON input"
    if exc.msg == "Extra data":
        return f"invalid character {rest[0]!r} after top-level value"
    return f"invalid character {rest[0]!r} looking for beginning of value"


def fold(obj: dict[str, Any], name: str) -> tuple[bool, Any]:
    """Look a key up as Go does: exact match first, then case-insensitive."""
    if name in obj:
        return True, obj[name]
    low = name.lower()
    for key, value in obj.items():
        if key.lower() == low:
            return True, value
    return False, None


def go_unmarshal(text: str, struct: str,
                 fields: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """Decode a JSON body into a Go-like struct of `fields` (name -> 'string', 'int' or 'float').

    Returns the values (zero values for absent keys; None for absent floats) and Go's error text
    or None. Like encoding/json: keys match case-insensitively, unknown keys are ignored, null
    leaves the zero value, and the first type mismatch is reported after decoding the rest.
    """
    zero = {"string": "", "int": 0, "float": None}
    values: dict[str, Any] = {name: zero[kind] for name, kind in fields.items()}
    try:
        obj = decode_first(text)
    except json.JSONDecodeError as exc:
        return values, go_syntax_error(text, exc)
    except RecursionError:
        return values, "exceeded max depth"  # Go's decoder stops at 10000 levels
    except ValueError:  # an integer literal beyond Python's 4300-digit conversion limit
        return values, "json: cannot unmarshal number into Go value of type " + struct
    if obj is None:
        return values, None
    if not isinstance(obj, dict):
        word = go_type_name(obj)
        return values, f"json: cannot unmarshal {word} into Go value of type {struct}"
    error = None
    short = struct.rsplit(".", 1)[-1]
    for name, kind in fields.items():
        found, value = fold(obj, name)
        if not found or value is None:
            continue
        ok = (isinstance(value, str) if kind == "string" else
              not isinstance(value, bool) and (isinstance(value, int) if kind == "int"
                                               else isinstance(value, int | float)))
        if ok:
            values[name] = value
        elif error is None:
            word = go_type_name(value)
            if word == "number" and kind == "int":
                word = f"number {value}"
            go_kind = {"string": "string", "int": "int", "float": "float64"}[kind]
            error = (f"json: cannot unmarshal {word} into Go struct field {short}.{name} "
                     f"of type {go_kind}")
    return values, error


def message_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """A stored message row as ESME's Message object, fields in declaration order."""
    mid, chat_id, author_id, from_organizer, content, sent_ms, lat, lng = row
    obj: dict[str, Any] = {"id": mid, "chatId": chat_id, "authorId": author_id,
                           "fromOrganizer": from_organizer, "content": content,
                           "timeSent": ms_time(sent_ms)}
    if lat is not None:
        obj["lat"] = lat
    if lng is not None:
        obj["lng"] = lng
    return obj
