#!/usr/bin/env python3
"""Send the same REST requests to ESME's real APIs and to esmeperf's embedded target; compare.

    python3 contrib/esme-real/conformance.py --real REAL.json --embedded EMBEDDED.json
    python3 contrib/esme-real/conformance.py --start-real "ESME" --start-embedded

REAL.json and EMBEDDED.json are config.json files in the Go test's format (a running ESME's;
esme_real.py's --config-out or --ready-file; the embedded target's --ready-file).  --start-*
starts them here and stops them afterwards: --start-real runs `esme_real.py up ESME`, ESME being
its arguments that name ESME's APIs, built outside this repository (one shell-quoted string:
--organizer-api DIR --participant-api PATH --participant-schema PATH).

Each case's status codes must be equal; an error body (status >= 400) must be equal as a value
(its texts are fixed strings); a success body must have the same shape (keys and value types;
RFC 3339 times and `prefix:` tokens, JWT or opaque, told apart from other strings) and the same
values where the request determines them.  Prints a table and exits 0 when every case matches, 1
when one differs, 2 when a target cannot be used.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.client
import json
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
TOKEN_RE = re.compile(r"^(organizer|participant):(.+)$")
JWT_RE = re.compile(r"^[\w-]+\.[\w-]+\.[\w-]+$")
UNKNOWN_EVENT_ID = 999_999
GOOD_PASSWORD = "password123"


class Unusable(Exception):
    """A target cannot be reached or set up."""


@dataclass(frozen=True)
class Target:
    """One set of APIs, from a config.json."""

    label: str
    organizer_url: str
    participant_url: str
    event_id: int
    organizer_email: str
    organizer_password: str

    @classmethod
    def load(cls, label: str, path: Path) -> Target:
        """Read a config.json (extra keys, as in esme_real.py's ready file, are ignored)."""
        try:
            config = json.loads(path.read_text())
            return cls(
                label,
                config["organizer_api_url"].rstrip("/"),
                config["participant_api_url"].rstrip("/"),
                int(config["event_id"]),
                config["organizer_email"],
                config["organizer_password"],
            )
        except (OSError, ValueError, KeyError) as error:
            raise Unusable(f"{label}: cannot read {path}: {error}") from None


@dataclass
class Reply:
    """What a target answered."""

    status: int
    content_type: str
    raw: bytes

    @functools.cached_property
    def _decoded(self) -> tuple[bool, Any]:
        """(whether the body is empty or valid JSON, what it decodes to), parsed once."""
        if not self.raw.strip():
            return True, None
        try:
            return True, json.loads(self.raw)
        except ValueError:
            return False, self.raw.decode(errors="replace")

    @property
    def body(self) -> Any:
        """The decoded JSON body; None for an empty one; the text for a non-JSON one."""
        return self._decoded[1]

    @property
    def is_json(self) -> bool:
        """Whether the body is empty or valid JSON."""
        return self._decoded[0]

    def comparable(self, values: tuple[str, ...] = ()) -> Any:
        """What must be equal: an error body as a value; a success body's shape, plus the values
        at the dotted paths `values` (those that the request determines)."""
        if not self.is_json:
            return {"non-JSON body": self.raw.decode(errors="replace")}
        if self.status >= 400:
            return self.body
        if not values:
            return shape(self.body)
        return {
            "shape": shape(self.body),
            "values": {path: dig(self.body, path) for path in values},
        }

    def summary(self, width: int) -> str:
        """One table cell: status and a compact body."""
        if self.body is None:
            text = "(empty)"
        elif self.status >= 400 and isinstance(self.body, dict):
            text = json.dumps(self.body.get("message", self.body))
        elif not self.is_json:
            text = f"non-JSON {self.raw[:30]!r}"
        else:
            text = compact(shape(self.body))
        cell = f"{self.status} {text}"
        return cell if len(cell) <= width else cell[: width - 1] + "…"


def shape(value: Any) -> Any:
    """Replace values by their JSON types, keeping keys; strings are told apart as times/tokens."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        # The element shapes, once each: a list's length is data, not shape.
        unique: dict[str, Any] = {}
        for item in value:
            item_shape = shape(item)
            unique.setdefault(json.dumps(item_shape, sort_keys=True), item_shape)
        return [unique[key] for key in sorted(unique)]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if value is None:
        return "null"
    if TIME_RE.match(value):
        return "time"
    # Tokens: the prefix is fixed; what follows is a JWT in ESME (the spec calls it opaque).
    match = TOKEN_RE.match(value)
    if match is None:
        return "str"
    return f"{match.group(1)}:{'jwt' if JWT_RE.match(match.group(2)) else 'opaque'}"


def dig(value: Any, path: str) -> Any:
    """The value at a dotted path, or '(missing)'."""
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return "(missing)"
        value = value[key]
    return value


def compact_leaf(value: Any) -> str:
    """A key's suffix in compact(): a nested shape, '=kind' for a token, else nothing."""
    if isinstance(value, dict | list):
        return compact(value)
    return f"={value}" if isinstance(value, str) and ":" in value else ""


def compact(value: Any) -> str:
    """A shape in few characters: keys only (and token kinds), nested objects in braces."""
    if isinstance(value, dict):
        return "{" + ",".join(k + compact_leaf(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(compact(v) for v in value) + "]"
    return str(value)


def send(
    base_url: str,
    method: str,
    path: str,
    body: Any,
    authorization: str | None,
    timeout: float,
) -> Reply:
    """Send one request; body is JSON-encoded unless it is bytes (sent as is)."""
    parts = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=timeout
    )
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return Reply(
            response.status,
            (response.getheader("Content-Type") or "").split(";")[0].strip(),
            response.read(),
        )
    finally:
        connection.close()


@dataclass
class Context:
    """Per-target state for the cases: unique emails, participants signed up on demand."""

    target: Target
    run_id: str
    timeout: float
    tokens: dict[str, str] = field(default_factory=dict)

    def email(self, key: str) -> str:
        """An email unique to this run and key (repeated runs against one database don't clash)."""
        return f"conf-{self.run_id}-{key}@example.com"

    def url(self, service: str) -> str:
        """The base URL of 'organizer' or 'participant'."""
        return self.target.organizer_url if service == "organizer" else self.target.participant_url

    def sign_up(self, key: str) -> str:
        """Sign a participant up once per key; return its token."""
        if key not in self.tokens:
            reply = send(
                self.target.participant_url,
                "POST",
                "/auth/sign-up",
                signup_body(self.email(key)),
                None,
                self.timeout,
            )
            if reply.status != 201 or not isinstance(reply.body, dict) or "token" not in reply.body:
                raise Unusable(
                    f"{self.target.label}: set-up sign-up answered {reply.status} "
                    f"{reply.raw[:200]!r}"
                )
            self.tokens[key] = reply.body["token"]
        return self.tokens[key]

    def sign_up_only(self, key: str) -> None:
        """Set-up: participant `key` exists."""
        self.sign_up(key)

    def bearer(self, key: str) -> str:
        """The Authorization header of participant `key`."""
        return f"Bearer {self.sign_up(key)}"

    def organizer_bearer(self) -> str:
        """The Authorization header of the configured organizer (signed in once)."""
        if "organizer" not in self.tokens:
            body = {
                "email": self.target.organizer_email,
                "password": self.target.organizer_password,
            }
            reply = send(
                self.target.organizer_url, "POST", "/auth/sign-in", body, None, self.timeout
            )
            if reply.status != 200 or not isinstance(reply.body, dict):
                raise Unusable(f"{self.target.label}: set-up sign-in answered {reply.status}")
            # ESME refuses a token issued in the second of the user's timeSignOut: sign in again.
            if token_issued_at(reply.body["token"]) < iso_seconds(
                reply.body["user"]["timeSignOut"]
            ):
                time.sleep(1.05)
                reply = send(
                    self.target.organizer_url, "POST", "/auth/sign-in", body, None, self.timeout
                )
            self.tokens["organizer"] = reply.body["token"]
        return f"Bearer {self.tokens['organizer']}"

    def chat_request(self, key: str) -> None:
        """A first chat request for participant `key` (set-up of the 'twice' case)."""
        reply = send(
            self.target.participant_url,
            "POST",
            "/chat-requests",
            {"eventId": self.target.event_id, "description": "conformance set-up"},
            self.bearer(key),
            self.timeout,
        )
        if reply.status != 200:
            raise Unusable(
                f"{self.target.label}: set-up chat request answered {reply.status} "
                f"{reply.raw[:200]!r}"
            )


def iso_seconds(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def token_issued_at(token: str) -> float:
    """The iat claim of a `prefix:<JWT>` token; 0 for an opaque token (nothing to wait for)."""
    parts = token.split(":", 1)[-1].split(".")
    if len(parts) != 3:
        return 0.0
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    return float(json.loads(base64.urlsafe_b64decode(payload)).get("iat", 0))


def signup_body(
    email: str, password: str = GOOD_PASSWORD, confirm: str | None = None
) -> dict[str, str]:
    """A participant sign-up body."""
    return {
        "email": email,
        "password": password,
        "confirmPassword": password if confirm is None else confirm,
        "phoneNumber": "+48100200300",
    }


Body = Callable[[Context], Any]
Auth = Callable[[Context], "str | None"]


def no_auth(_context: Context) -> str | None:
    """No Authorization header."""
    return None


@dataclass(frozen=True)
class Case:
    """One request, sent to both targets."""

    name: str
    service: str
    method: str
    path: str
    body: Body
    auth: Auth = no_auth
    setup: Callable[[Context], None] | None = None
    # Dotted paths of a success body whose values the request determines (compared as values).
    values: tuple[str, ...] = ()


def chat_body(description: str, event_id: int | None = None) -> Body:
    """A chat-request body for the context's event (or event_id)."""
    return lambda c: {
        "eventId": c.target.event_id if event_id is None else event_id,
        "description": description,
    }


CASES: list[Case] = [
    # Organizer API: POST /auth/sign-in
    Case(
        "organizer sign-in: right password",
        "organizer",
        "POST",
        "/auth/sign-in",
        lambda c: {"email": c.target.organizer_email, "password": c.target.organizer_password},
        values=("user.role",),
    ),
    Case(
        "organizer sign-in: wrong password",
        "organizer",
        "POST",
        "/auth/sign-in",
        lambda c: {
            "email": c.target.organizer_email,
            "password": c.target.organizer_password + "x",
        },
    ),
    Case(
        "organizer sign-in: unknown email",
        "organizer",
        "POST",
        "/auth/sign-in",
        lambda c: {"email": c.email("nobody"), "password": "a-long-enough-password"},
    ),
    Case(
        "organizer sign-in: extra property",
        "organizer",
        "POST",
        "/auth/sign-in",
        lambda c: {
            "email": c.target.organizer_email,
            "password": c.target.organizer_password,
            "remember": True,
        },
    ),
    Case(
        "organizer sign-in: password under 16 chars",
        "organizer",
        "POST",
        "/auth/sign-in",
        lambda c: {"email": c.target.organizer_email, "password": "short"},
    ),
    Case("organizer sign-in: empty object", "organizer", "POST", "/auth/sign-in", lambda c: {}),
    Case(
        "organizer sign-in: password is a number",
        "organizer",
        "POST",
        "/auth/sign-in",
        lambda c: {"email": c.target.organizer_email, "password": 1234567890123456},
    ),
    Case(
        "organizer sign-in: password 129 chars",
        "organizer",
        "POST",
        "/auth/sign-in",
        lambda c: {"email": c.target.organizer_email, "password": "p" * 129},
    ),
    Case(
        "organizer sign-in: not an email",
        "organizer",
        "POST",
        "/auth/sign-in",
        lambda c: {"email": "organizer", "password": c.target.organizer_password},
    ),
    Case(
        "organizer sign-in: invalid JSON",
        "organizer",
        "POST",
        "/auth/sign-in",
        lambda c: b'{"email": ',
    ),
    Case("organizer: unknown path", "organizer", "GET", "/no-such-path", lambda c: None),
    # Organizer API: GET /profile (what the messenger calls for every organizer connection)
    Case(
        "organizer profile: good token",
        "organizer",
        "GET",
        "/profile",
        lambda c: None,
        lambda c: c.organizer_bearer(),
        values=("role",),
    ),
    Case(
        "organizer profile: bad token",
        "organizer",
        "GET",
        "/profile",
        lambda c: None,
        lambda c: "Bearer organizer:not.a.jwt",
    ),
    # Participant API: POST /auth/sign-up
    Case(
        "sign-up: good",
        "participant",
        "POST",
        "/auth/sign-up",
        lambda c: signup_body(c.email("good")),
        values=("user.email", "user.phoneNumber"),
    ),
    Case(
        "sign-up: duplicate email",
        "participant",
        "POST",
        "/auth/sign-up",
        lambda c: signup_body(c.email("duplicate")),
        setup=lambda c: c.sign_up_only("duplicate"),
    ),
    Case(
        "sign-up: bad email",
        "participant",
        "POST",
        "/auth/sign-up",
        lambda c: signup_body("not-an-email"),
    ),
    Case(
        "sign-up: password under 8 bytes",
        "participant",
        "POST",
        "/auth/sign-up",
        lambda c: signup_body(c.email("short"), "short"),
    ),
    Case(
        "sign-up: password mismatch",
        "participant",
        "POST",
        "/auth/sign-up",
        lambda c: signup_body(c.email("mismatch"), GOOD_PASSWORD, GOOD_PASSWORD + "x"),
    ),
    Case("sign-up: missing fields ({})", "participant", "POST", "/auth/sign-up", lambda c: {}),
    Case(
        "sign-up: missing confirmPassword",
        "participant",
        "POST",
        "/auth/sign-up",
        lambda c: {"email": c.email("noconfirm"), "password": GOOD_PASSWORD},
    ),
    Case("sign-up: invalid JSON", "participant", "POST", "/auth/sign-up", lambda c: b'{"email": '),
    Case(
        "sign-up: number where a string goes",
        "participant",
        "POST",
        "/auth/sign-up",
        lambda c: {**signup_body(c.email("number")), "password": 12345678},
    ),
    Case(
        "sign-up: RFC 5322 'Name <addr>' email",
        "participant",
        "POST",
        "/auth/sign-up",
        lambda c: signup_body(f"Conf Test <{c.email('named')}>"),
        values=("user.email",),
    ),
    Case(
        "sign-up: phoneNumber over 30 chars",
        "participant",
        "POST",
        "/auth/sign-up",
        lambda c: {**signup_body(c.email("longphone")), "phoneNumber": "+48" + "1" * 40},
    ),
    # Participant API: GET /profile (what the messenger calls for every participant connection)
    Case(
        "participant profile: good token",
        "participant",
        "GET",
        "/profile",
        lambda c: None,
        lambda c: c.bearer("profile"),
        values=("email", "phoneNumber"),
    ),
    Case("participant: unknown path", "participant", "GET", "/no-such-path", lambda c: None),
    Case("participant: GET /auth/sign-up", "participant", "GET", "/auth/sign-up", lambda c: None),
    # Participant API: POST /chat-requests
    Case(
        "chat request: good",
        "participant",
        "POST",
        "/chat-requests",
        chat_body("conformance"),
        lambda c: c.bearer("chat-good"),
    ),
    Case(
        "chat request: twice for one event",
        "participant",
        "POST",
        "/chat-requests",
        chat_body("conformance"),
        lambda c: c.bearer("chat-twice"),
        setup=lambda c: c.chat_request("chat-twice"),
    ),
    Case(
        "chat request: bad token",
        "participant",
        "POST",
        "/chat-requests",
        chat_body("conformance"),
        lambda c: "Bearer participant:not.a.jwt",
    ),
    Case(
        "chat request: organizer's prefix",
        "participant",
        "POST",
        "/chat-requests",
        chat_body("conformance"),
        lambda c: "Bearer organizer:" + c.sign_up("chat-prefix").split(":", 1)[1],
    ),
    Case(
        "chat request: no Authorization",
        "participant",
        "POST",
        "/chat-requests",
        chat_body("conformance"),
    ),
    Case(
        "chat request: 'Bearer' alone",
        "participant",
        "POST",
        "/chat-requests",
        chat_body("conformance"),
        lambda c: "Bearer",
    ),
    Case(
        "chat request: unknown event",
        "participant",
        "POST",
        "/chat-requests",
        chat_body("conformance", UNKNOWN_EVENT_ID),
        lambda c: c.bearer("chat-unknown"),
    ),
    Case(
        "chat request: description 2000 bytes",
        "participant",
        "POST",
        "/chat-requests",
        chat_body("d" * 2000),
        lambda c: c.bearer("chat-2000"),
    ),
    Case(
        "chat request: description 2001 bytes",
        "participant",
        "POST",
        "/chat-requests",
        chat_body("d" * 2001),
        lambda c: c.bearer("chat-2001"),
    ),
    Case(
        "chat request: 1001 chars = 2002 bytes",
        "participant",
        "POST",
        "/chat-requests",
        chat_body("é" * 1001),
        lambda c: c.bearer("chat-utf8"),
    ),
    Case(
        "chat request: invalid JSON",
        "participant",
        "POST",
        "/chat-requests",
        lambda c: b'{"eventId": ',
        lambda c: c.bearer("chat-json"),
    ),
    Case(
        "chat request: with lat/lng",
        "participant",
        "POST",
        "/chat-requests",
        lambda c: {"eventId": c.target.event_id, "description": "here", "lat": 52.1, "lng": 21.0},
        lambda c: c.bearer("chat-latlng"),
    ),
    Case(
        "chat request: no eventId",
        "participant",
        "POST",
        "/chat-requests",
        lambda c: {"description": "no event"},
        lambda c: c.bearer("chat-noevent"),
    ),
    Case(
        "chat request: eventId as a string",
        "participant",
        "POST",
        "/chat-requests",
        lambda c: {"eventId": str(c.target.event_id), "description": "string id"},
        lambda c: c.bearer("chat-stringid"),
    ),
]


@dataclass
class Outcome:
    """One case's replies from both targets."""

    case: Case
    real: Reply | None
    embedded: Reply | None
    error: str = ""

    @property
    def same(self) -> bool:
        """Equal status and equal comparable bodies."""
        if self.real is None or self.embedded is None:
            return False
        return self.real.status == self.embedded.status and self.real.comparable(
            self.case.values
        ) == self.embedded.comparable(self.case.values)


def run_case(case: Case, context: Context) -> Reply:
    """Set up and send one case to one target."""
    if case.setup is not None:
        case.setup(context)
    return send(
        context.url(case.service),
        case.method,
        case.path,
        case.body(context),
        case.auth(context),
        context.timeout,
    )


def run_all(real: Target, embedded: Target, timeout: float) -> list[Outcome]:
    """Send every case to both targets, in table order."""
    run_id = f"{int(time.time())}{secrets.token_hex(2)}"
    contexts = [Context(real, run_id, timeout), Context(embedded, run_id, timeout)]
    outcomes = []
    for case in CASES:
        replies: list[Reply | None] = []
        errors = []
        for context in contexts:
            try:
                replies.append(run_case(case, context))
            except (OSError, http.client.HTTPException, Unusable) as error:
                replies.append(None)
                errors.append(f"{context.target.label}: {error}")
        outcomes.append(Outcome(case, replies[0], replies[1], "; ".join(errors)))
    return outcomes


def print_report(outcomes: list[Outcome]) -> None:
    """The table, then the full bodies of every differing case."""
    name_width, cell_width = max(len(o.case.name) for o in outcomes), 46
    header = f"{'case':{name_width}}  {'real':{cell_width}}  {'embedded':{cell_width}}  verdict"
    print(header)
    print("-" * len(header))
    for outcome in outcomes:
        cells = [
            reply.summary(cell_width) if reply is not None else "(no answer)"
            for reply in (outcome.real, outcome.embedded)
        ]
        verdict = "same" if outcome.same else "DIFFERENT"
        print(
            f"{outcome.case.name:{name_width}}  "
            f"{cells[0]:{cell_width}}  {cells[1]:{cell_width}}  {verdict}"
        )
    differing = [o for o in outcomes if not o.same]
    for outcome in differing:
        print(f"\n== {outcome.case.name}: DIFFERENT")
        if outcome.error:
            print(f"   error: {outcome.error}")
        for label, reply in (("real", outcome.real), ("embedded", outcome.embedded)):
            if reply is None:
                continue
            shown = reply.comparable(outcome.case.values)
            print(
                f"   {label:8} {reply.status} {reply.content_type or '-'}  "
                f"{json.dumps(shown, ensure_ascii=False)}"
            )
    notes = [
        f"{o.case.name}: Content-Type real {o.real.content_type or '-'} "
        f"vs embedded {o.embedded.content_type or '-'}"
        for o in outcomes
        if o.real is not None
        and o.embedded is not None
        and o.real.content_type != o.embedded.content_type
    ]
    if notes:
        print("\nnotes (not compared):")
        for note in notes:
            print(f"   {note}")
    same = sum(o.same for o in outcomes)
    print(f"\n{same} of {len(outcomes)} cases the same, {len(outcomes) - same} DIFFERENT")


def outcome_record(outcome: Outcome) -> dict[str, Any]:
    """One case as JSON, for --json."""

    def reply_record(reply: Reply | None) -> dict[str, Any] | None:
        if reply is None:
            return None
        return {"status": reply.status, "content_type": reply.content_type, "body": reply.body}

    return {
        "case": outcome.case.name,
        "same": outcome.same,
        "real": reply_record(outcome.real),
        "embedded": reply_record(outcome.embedded),
        "error": outcome.error,
    }


@contextlib.contextmanager
def started(
    label: str, argv: list[str], ready_file: Path, timeout: float, log_path: Path
) -> Iterator[Path]:
    """Run argv with `--ready-file ready_file` until the block ends; yield ready_file once it
    exists (bounded by timeout)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*argv, "--ready-file", str(ready_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=PROJECT,
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready_file.exists():
            if process.poll() is not None:
                raise Unusable(
                    f"{label} exited with code {process.returncode} before it was ready "
                    f"(log: {log_path})"
                )
            if time.monotonic() > deadline:
                raise Unusable(f"{label} not ready within {timeout:.0f} s (log: {log_path})")
            time.sleep(0.2)
        yield ready_file
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    real = parser.add_mutually_exclusive_group(required=True)
    real.add_argument("--real", type=Path, metavar="CONFIG", help="config.json of the real APIs")
    real.add_argument("--start-real", metavar="ESME", help="start them with esme_real.py up "
                      "ESME: one string, e.g. '--organizer-api DIR --participant-api PATH "
                      "--participant-schema PATH'")
    embedded = parser.add_mutually_exclusive_group(required=True)
    embedded.add_argument(
        "--embedded", type=Path, metavar="CONFIG", help="config.json of the embedded target"
    )
    embedded.add_argument(
        "--start-embedded", action="store_true", help="start it with python3 -m esmeperf.target"
    )
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="per request, seconds (default %(default)s)"
    )
    parser.add_argument("--start-timeout", type=float, default=300.0,
                        help="per --start-*, seconds (default %(default)s)")
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the outcomes as JSON here"
    )
    return parser.parse_args()


def main() -> int:
    """Start what was asked for, run the cases, report."""
    args = parse_args()
    # SIGTERM as an exit, so that the `finally`s stop what we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="esme-conformance-")))
        try:
            real_path = args.real
            if args.start_real is not None:
                real_path = stack.enter_context(
                    started(
                        "esme_real.py up",
                        [sys.executable, str(HERE / "esme_real.py"), "up",
                         *shlex.split(args.start_real)],
                        scratch / "real.json",
                        args.start_timeout,
                        scratch / "esme-real.log",
                    )
                )
            embedded_path = args.embedded
            if args.start_embedded:
                embedded_path = stack.enter_context(
                    started(
                        "embedded target",
                        [
                            sys.executable,
                            "-m",
                            "esmeperf.target",
                            "--organizer-port",
                            "0",
                            "--participant-port",
                            "0",
                            "--messenger-port",
                            "0",
                        ],
                        scratch / "embedded.json",
                        args.start_timeout,
                        scratch / "embedded.log",
                    )
                )
            real = Target.load("real", real_path)
            embedded = Target.load("embedded", embedded_path)
            outcomes = run_all(real, embedded, args.timeout)
        except Unusable as error:
            print(f"conformance: error: {error}", file=sys.stderr)
            for log in sorted(scratch.glob("*.log")):
                print(f"--- {log.name} (last lines)", file=sys.stderr)
                print(
                    "\n".join(log.read_text(errors="replace").splitlines()[-15:]), file=sys.stderr
                )
            return 2
    print_report(outcomes)
    if args.json is not None:
        args.json.write_text(
            json.dumps([outcome_record(o) for o in outcomes], indent=2, ensure_ascii=False) + "\n"
        )
    return 0 if all(o.same for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
