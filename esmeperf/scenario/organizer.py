"""The organizer worker: start a chat every `sci` ms and read everything the server sends."""

from __future__ import annotations

import logging
import math
import time

from ..config import BATCH_MAX_MS, Credentials
from ..errors import ServerErrorFrame
from ..measure.names import Count, CountFamily
from ..transport import protocol
from ..transport.connection import Connection
from ..transport.rest import RestClient
from .context import Context
from .pacing import run_paced

log = logging.getLogger("esmeperf")


START_CHAT_ANSWERS = frozenset(("new_chat", "info", "error"))


class Organizer:
    """One organizer: signs in, connects, sends start_chat on a fixed grid, drains its socket."""

    def __init__(self, ctx: Context, index: int, creds: Credentials) -> None:
        self.ctx = ctx
        self.index = index
        self.name = f"organizer-{index}"
        self.creds = creds
        self.token = ""
        self.time_started_ns = 0
        # Send time of the first start_chat since the target last answered one (0: none
        # waiting). Not a queue of every start_chat: a target that drops frames to a slow
        # reader loses some answers, and it has not stalled while others still come.
        self._waiting_since = 0
        self.conn: Connection | None = None  # while it runs: the stall check looks at it

    def sign_in(self) -> None:
        """Sign in before the run starts: a bad password is a clear error, not a nil panic."""
        with RestClient(self.ctx.settings.http_timeout) as rest:
            self.token = rest.sign_in(self.ctx.target.organizer_api_url, self.creds)

    def run(self) -> None:
        ctx = self.ctx
        self.time_started_ns = time.time_ns()
        conn = Connection.open(ctx.target.messenger_ws_url, self.token,
                               ctx.settings.handshake_timeout, newline=True)
        ctx.hold(conn, self._loop)

    def _loop(self, conn: Connection) -> None:
        ctx = self.ctx

        def start_chat(now: float, late: float) -> None:
            ctx.log_ws(f"organizer connection {conn.local_addr}: sending start chat message")
            conn.send(protocol.START_CHAT)
            # Once written (this thread handles the answer, so it cannot come first): a thread
            # kept from the GIL before its write has not asked the target anything yet.
            if not self._waiting_since:
                self._waiting_since = time.time_ns()
            ctx.metrics.count(Count.START_CHAT_SENT)

        # Frames are only counted here (with --reply they are answered, and wait for nobody):
        # read them once per start_chat interval, not one wake-up per frame. At -smi 100 and
        # a thousand participants that is 100 wake-ups a second instead of 10,000.
        conn.batch_reads(ctx.settings.sci <= BATCH_MAX_MS and not ctx.settings.reply)
        self.conn = conn
        ctx.stalls.add(self)
        interval = ctx.settings.sci / 1000
        try:
            run_paced(ctx, conn, interval, start_chat,
                      lambda frame: self._handle(conn, frame),
                      lambda n, _: ctx.metrics.count(Count.START_CHAT_MISSED, n),
                      start=self._start(interval, ctx.settings.organizers))
        finally:
            ctx.stalls.discard(self)
            self.conn = None

    def _start(self, interval: float, organizers: int) -> float | None:
        """Where this organizer's grid starts (time.monotonic(); None: now). N organizers'
        grids are staggered by sci/N on one grid, the process's monotonic clock cut into
        intervals: together they ask every sci/N, and each is next in line as often as the
        others. Staggered from each one's own start instead, the stagger was only as good as
        their starts were apart: two that connected a whole interval apart asked together, and
        one of them started every chat (seen with --portable, whose receive deadlines the
        kernel rounds to one tick)."""
        if organizers == 1:
            return None  # as the Go test: the first start_chat one interval after connecting
        return (math.ceil(time.monotonic() / interval) * interval
                + interval * (self.index - 1) / organizers)

    def oldest_unanswered(self) -> tuple[int, str] | None:
        """When the target was last left without answering a start_chat (the stall check)."""
        since = self._waiting_since
        return (since, "start_chat") if since else None

    def connection(self) -> Connection | None:
        return self.conn

    def _handle(self, conn: Connection, frame: str) -> None:
        ctx = self.ctx
        if not ctx.settings.reply and protocol.is_from_participant(frame):
            # Counted without a JSON parse; --reply needs the chat id, so it parses.
            ctx.metrics.count_of(CountFamily.ORGANIZER_FRAMES, "user_message")
            ctx.metrics.organizer_received.add((conn.rx_ns or time.time_ns()) // 1_000_000_000)
            return
        kind, payload = protocol.parse(frame, conn.local_addr)
        ctx.metrics.count_of(CountFamily.ORGANIZER_FRAMES, kind)
        if kind in START_CHAT_ANSWERS:
            self._waiting_since = 0
        if protocol.from_participant(kind, payload):
            ctx.metrics.organizer_received.add((conn.rx_ns or time.time_ns()) // 1_000_000_000)
            if ctx.settings.reply:
                content = protocol.REPLY_PREFIX + payload.get("content", "")
                conn.send(protocol.send_message(payload["chatId"], content))
                ctx.metrics.count(Count.REPLIES_SENT)
        elif kind == "new_chat":
            ctx.metrics.count(Count.ORGANIZER_CHATS_STARTED)
            ctx.metrics.count_of(CountFamily.CHATS_STARTED_BY, self.name)
        elif kind == "error" and not ctx.stop.is_set():
            text = payload.get("message") if isinstance(payload, dict) else payload
            raise ServerErrorFrame(f"organizer connection {conn.local_addr}: server error: {text}")
