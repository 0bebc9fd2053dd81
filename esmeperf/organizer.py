"""The organizer worker: start a chat every `sci` ms and read everything the server sends."""

from __future__ import annotations

import json
import logging
import time

from .api import Connection, RestClient
from .config import Credentials
from .context import Context
from .errors import ServerErrorFrame
from .pacing import run_paced

log = logging.getLogger("esmeperf")

START_CHAT = '{"type":"start_chat","payload":""}\n'
PROBLEM_PREFIX = "Problem description: "
REPLY_PREFIX = "reply: "
_USER_MESSAGE = '{"type":"user_message",'
_FROM_PARTICIPANT = '"fromOrganizer":0,'
_PROBLEM = '"content":"' + PROBLEM_PREFIX


class Organizer:
    """One organizer: signs in, connects, sends start_chat on a fixed grid, drains its socket."""

    def __init__(self, ctx: Context, index: int, creds: Credentials) -> None:
        self.ctx = ctx
        self.name = f"organizer-{index}"
        self.creds = creds
        self.token = ""
        self.time_started_ns = 0

    def sign_in(self) -> None:
        """Sign in before the run starts: a bad password is a clear error, not a nil panic."""
        rest = RestClient(self.ctx.settings.http_timeout)
        try:
            self.token = rest.sign_in(self.ctx.target.organizer_api_url, self.creds)
        finally:
            rest.close()

    def run(self) -> None:
        ctx = self.ctx
        self.time_started_ns = time.time_ns()
        conn = Connection.open(ctx.target.messenger_ws_url, self.token,
                               ctx.settings.handshake_timeout, newline=True)
        ctx.hold(conn, lambda: self._loop(conn))

    def _loop(self, conn: Connection) -> None:
        ctx = self.ctx

        def start_chat(now: float, late: float) -> None:
            ctx.log_ws(f"organizer connection {conn.local_addr}: sending start chat message")
            conn.send(START_CHAT)
            ctx.metrics.count("start_chat_sent")

        run_paced(ctx, conn, ctx.settings.sci / 1000, start_chat,
                  lambda frame: self._handle(conn, frame),
                  lambda skipped: ctx.metrics.count("start_chat_missed", skipped))

    def _handle(self, conn: Connection, frame: str) -> None:
        ctx = self.ctx
        if (not ctx.settings.reply and frame.startswith(_USER_MESSAGE)
                and _FROM_PARTICIPANT in frame and _PROBLEM not in frame):
            # A participant's message in Go's compact JSON: counted without a JSON parse.
            ctx.metrics.count("organizer_frames_user_message")
            ctx.metrics.organizer_received.add(int(time.time()))
            return
        kind, payload = conn.parse(frame)
        ctx.metrics.count(f"organizer_frames_{kind}")
        if kind == "user_message":
            if payload.get("fromOrganizer") == 0:
                content = payload.get("content", "")
                if not content.startswith(PROBLEM_PREFIX):
                    ctx.metrics.organizer_received.add(int(time.time()))
                    if ctx.settings.reply:
                        reply = json.dumps({"type": "send_message", "payload": {
                            "chatId": payload["chatId"], "message": REPLY_PREFIX + content}})
                        conn.send(reply + "\n")
                        ctx.metrics.count("replies_sent")
        elif kind == "new_chat":
            ctx.metrics.count("organizer_chats_started")
            ctx.metrics.count(f"chats_started_by_{self.name}")
        elif kind == "error" and not ctx.stop.is_set():
            text = payload.get("message") if isinstance(payload, dict) else payload
            raise ServerErrorFrame(f"organizer connection {conn.local_addr}: server error: {text}")
