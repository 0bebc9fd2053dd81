"""The spawner and the participant worker: sign up, ask for help, chat on a fixed schedule."""

from __future__ import annotations

import time

from ..config import BATCH_MAX_MS
from ..errors import ChatWaitTimeout, ServerErrorFrame
from ..measure.names import Count, CountFamily
from ..measure.schedule import schedule_of, take
from ..system import threadstack
from ..transport import protocol
from ..transport.connection import Connection
from .context import Context
from .pacing import run_paced

MAX_CHAT_POLLS = 10  # the Go test's retry limit in getChatId
# A thread blocked in recv() holds a buffer of this size for the whole wait, and thousands
# wait at once: small by default, larger once reads are batched. A participant's frames are
# 230-240 bytes against the embedded target (an echo, new_chat, chats); a larger one takes a
# second read.
PARTICIPANT_RECV_SIZE = 512


def echo_times(sent_ns: int, late_ns: int, received_ns: int) -> tuple[float, float]:
    """An echo's round trip, and its time from when its message was due (the round trip plus
    the send's lateness against the -smi grid), in seconds."""
    rtt_ns = received_ns - sent_ns
    return rtt_ns / 1e9, (rtt_ns + late_ns) / 1e9


class Spawner:
    """Starts participant n at its time on the schedule (-cpi's grid or --stages), open loop: a
    slow sign-up delays no one else.

    With shards, spawner i of N starts the participants n = i+1, i+1+N, ... on the same grid,
    whose origin `start_wall` (Unix time) the parent chose.
    """

    def __init__(self, ctx: Context, offset: int = 0, stride: int = 1,
                 start_wall: float | None = None) -> None:
        self.ctx = ctx
        self.offset, self.stride, self.start_wall = offset, stride, start_wall
        self.time_started_ns = 0

    def run(self) -> None:
        ctx = self.ctx
        self.time_started_ns = time.time_ns()
        limit = ctx.settings.max_participants
        start, start_wall = time.monotonic(), time.time()
        if self.start_wall is not None:
            start -= start_wall - self.start_wall
            start_wall = self.start_wall
        surge = ctx.surge
        if surge is not None:
            surge.origin_wall = start_wall
        for number, offset in take(schedule_of(ctx.settings).offsets(), self.offset + 1,
                                   self.stride):
            if limit is not None and number > limit:
                return
            due = start + offset
            if ctx.stop.wait(max(0.0, due - time.monotonic())):
                return
            worker = Participant(ctx, number, intended=due)
            if surge is not None:
                worker.cohort = surge.window.part(offset)
                surge.arrived(worker.cohort)
            ctx.start_thread(f"participant-{number}", worker.run)
            ctx.metrics.count(Count.PARTICIPANTS_STARTED)


class Participant:
    """One participant: REST sign-up and chat request, then one WebSocket read and written here."""

    def __init__(self, ctx: Context, number: int, intended: float | None = None) -> None:
        self.ctx = ctx
        self.number = number
        self.intended = intended  # monotonic time of its slot on the arrival grid
        self.name = f"participant-{number}"
        self.arrival = time.monotonic()
        self.user_id = 0
        # message number -> (send time in Unix ns, its lateness against the grid in ns)
        self.pending: dict[int, tuple[int, int]] = {}
        self.awaiting_reply: dict[int, int] = {}  # echoed, organizer's reply not seen yet
        self.last_echo_read = -1  # which read of the socket brought the last echo
        self.confirmed_sent_ns = 0  # send time of the newest message echoed so far
        # The newest message number whose send returned: a message timed but not yet sent (its
        # thread waiting for the GIL in between) is nobody's answer to wait for.
        self.sent_through = 0
        self.cohort = 0  # with a surge window: 0, 1, 2 = arrived before, during, after it
        self.surge = ctx.surge  # its per-cohort figures (surge.py), or None: read once
        self.conn: Connection | None = None  # while it chats: the stall check looks at it
        # The conversation's state, here rather than in closures: a thousand participants'
        # closures were 25 cells and functions each, a kilobyte or two, and as many more
        # objects for every garbage collection to walk.
        self._head = self._prefix = self._marker = ""

    def run(self) -> None:
        """Arrive (sign up, ask for help, connect), then chat until the stop: one thread.

        The arrival's deep calls (requests, the handshake) leave pages of the interpreter's
        frame stack touched that the conversation, a few frames deep, never uses again: they
        are given back before it starts (system/threadstack.py), so thousands of participants
        do not keep them for nothing.
        """
        ctx = self.ctx
        token = self._register()
        if ctx.stop.is_set() or ctx.settings.rest_only:
            return
        started = time.monotonic()
        conn = Connection.open(ctx.target.messenger_ws_url, token,
                               ctx.settings.handshake_timeout, newline=False,
                               recv_size=PARTICIPANT_RECV_SIZE)
        ctx.metrics.ws_handshake.record(0, time.monotonic() - started)
        threadstack.shed()
        ctx.hold(conn, self._converse)

    def _converse(self, conn: Connection) -> None:
        """Find the chat, then chat until the stop."""
        chat_id = self._wait_for_chat(conn)
        if chat_id is None:
            return
        self.ctx.metrics.count(Count.CHATS)
        waited = time.monotonic() - self.arrival
        self.ctx.metrics.arrival_to_chat.record(0, waited)
        if self.surge is not None:
            self.surge.time_to_chat[self.cohort].record(0, waited)
        self._chat(conn, chat_id)

    def _register(self) -> str:
        """Sign up and file the chat request, as the Go test's manager does."""
        ctx = self.ctx
        base = ctx.target.participant_api_url
        rest = ctx.rest  # one keep-alive pool for all participants, as the Go test's client
        tag = f"{ctx.email_tag}_" if ctx.email_tag else ""
        email = f"participant_{ctx.stamp}_{tag}{self.number}@performance.com"
        started = time.monotonic()
        second = int(time.time())
        ctx.metrics.arrivals.add(second)
        if self.intended is not None:  # how far behind the grid this arrival starts
            ctx.metrics.arrival_lateness.record(second, max(0.0, started - self.intended))
        self.user_id, token = rest.sign_up(base, email)
        middle = time.monotonic()
        ctx.metrics.sign_up.record(0, middle - started)
        if ctx.stop.is_set():  # no help request after the stop
            return token
        rest.chat_request(base, token, ctx.target.event_id)
        ctx.metrics.chat_request.record(0, time.monotonic() - middle)
        ctx.metrics.count(Count.CREATED_PARTICIPANTS)
        return token

    def _echo(self, conn: Connection, number: int) -> None:
        """The server echoed our message `number`: delivered, with its round trip."""
        times = self.pending.pop(number, None)
        if times is None:
            return
        sent_ns, late_ns = times
        self.confirmed_sent_ns = max(self.confirmed_sent_ns, sent_ns)
        metrics = self.ctx.metrics
        received_ns = conn.rx_ns or time.time_ns()
        if conn.rx_ns and conn.reads == self.last_echo_read:
            # Echoes slower than an interval can share one read, and its one kernel timestamp
            # (the last packet's) then stands for both: the earlier one's round trip is an
            # upper bound. Counted, not hidden.
            metrics.count(Count.ECHOES_SHARING_A_READ)
        self.last_echo_read = conn.reads
        second = received_ns // 1_000_000_000
        rtt, from_intended = echo_times(sent_ns, late_ns, received_ns)
        metrics.delivered.add(second)
        metrics.message_rtt.record(second, rtt)
        metrics.message_rtt_from_intended.record(second, from_intended)
        surge = self.surge
        if surge is not None:
            surge.delivered(self.cohort, surge.phase_ns(sent_ns), rtt)
        if self.ctx.settings.reply:
            self.awaiting_reply[number] = sent_ns

    def _wait_for_chat(self, conn: Connection) -> str | None:
        """Take the `new_chat` push; poll `get_chats` (at most 10, smi apart) as a fallback."""
        ctx = self.ctx
        interval = ctx.settings.smi / 1000
        deadline = time.monotonic() + ctx.settings.chat_timeout
        polls, next_poll = 0, time.monotonic()
        while not ctx.stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                raise ChatWaitTimeout(
                    f"connection {conn.local_addr}: error getting chat id: no chat within "
                    f"{ctx.settings.chat_timeout:g}s ({polls} get_chats polls answered empty)")
            if polls < MAX_CHAT_POLLS and now >= next_poll:
                conn.send(protocol.GET_CHATS)
                polls += 1
                next_poll = now + interval
            wake = min(deadline, next_poll) if polls < MAX_CHAT_POLLS else deadline
            frame = conn.recv_until(wake)
            if frame is None:
                continue
            kind, payload = protocol.parse(frame, conn.local_addr)
            ctx.metrics.count_of(CountFamily.PARTICIPANT_FRAMES, kind)
            if kind == "new_chat" and payload.get("participantId") == self.user_id:
                ctx.metrics.count(Count.CHATS_FOUND_BY_PUSH)
                return str(payload["id"])
            if kind == "chats" and payload.get("chats"):
                ctx.metrics.count(Count.CHATS_FOUND_BY_POLL)
                return str(payload["chats"][0]["id"])
            if kind == "error":
                raise ServerErrorFrame(
                    f"connection {conn.local_addr}: server error: {payload.get('message')}")
        return None

    def _chat(self, conn: Connection, chat_id: str) -> None:
        """Send message n at chat start + n x smi; read every frame in between."""
        ctx = self.ctx
        metrics = ctx.metrics
        self._prefix = protocol.message_prefix(conn.local_addr)
        self._head = protocol.numbered_head(chat_id, self._prefix)
        self._marker = protocol.echo_marker(self._prefix)
        # Wake once per message, not twice (Connection.batch_reads), when that delays nothing
        # by more than BATCH_MAX_MS: errors and the stop are seen at the next send. Not with
        # --reply: echo and reply both arrive between two sends, one timestamp can't tell them.
        conn.batch_reads(ctx.settings.smi <= BATCH_MAX_MS and not ctx.settings.reply)
        self.conn = conn
        ctx.stalls.add(self)
        try:
            run_paced(ctx, conn, ctx.settings.smi / 1000, self._send, self._handle, self._skip)
        finally:
            ctx.stalls.discard(self)
            self.conn = None
            ended_ns = time.time_ns()
            second = ended_ns // 1_000_000_000
            for sent_ns, late_ns in self.pending.values():
                age_ns = ended_ns - sent_ns
                metrics.unconfirmed.record(0, age_ns / 1e9)
                metrics.message_rtt_from_intended.record(second, (age_ns + late_ns) / 1e9)

    def _send(self, now: float, late: float) -> None:
        """Send the next message, `late` seconds after its slot (run_paced's on_due)."""
        ctx, conn = self.ctx, self.conn
        assert conn is not None
        number = self.sent_through + 1
        if ctx.settings.log_ws:
            ctx.log_ws(self._prefix + str(number))
        sent_ns = time.time_ns()
        self.pending[number] = (sent_ns, int(late * 1e9))
        conn.send(f"{self._head}{number}{protocol.SEND_MESSAGE_TAIL}")
        self.sent_through = number
        second = sent_ns // 1_000_000_000
        metrics = ctx.metrics
        metrics.sent.add(second)
        metrics.send_lateness.record(second, late)
        surge = self.surge
        if surge is not None:
            surge.sent(self.cohort, surge.phase_ns(sent_ns), late)

    def _skip(self, skipped: int, late: float) -> None:
        """Slots given up (run_paced's on_skip): each from its due time to now, when it is."""
        metrics = self.ctx.metrics
        interval = self.ctx.settings.smi / 1000
        second = int(time.time())
        metrics.missed.add(second, skipped)
        for j in range(skipped):
            metrics.message_rtt_from_intended.record(second, late - j * interval)

    def oldest_unanswered(self) -> tuple[int, str] | None:
        """The oldest message sent since the target last echoed one (the stall check).

        Older unechoed messages are lost, not a stall: the target still answers (it may drop
        frames to a slow reader); they count as unconfirmed at the end. Messages go into
        `pending` in order; copying it is one C call, atomic under the GIL.
        """
        floor, sent = self.confirmed_sent_ns, self.sent_through
        for number, (sent_ns, _) in list(self.pending.items()):
            if number > sent:
                return None  # timed, not yet written: its thread has not run since
            if sent_ns > floor:
                return sent_ns, f"message number {number}"
        return None

    def connection(self) -> Connection | None:
        """The WebSocket it chats on (the stall check looks at what waits in it)."""
        return self.conn

    def _handle(self, frame: str) -> None:
        """A frame that came while chatting (run_paced's on_frame)."""
        ctx, conn, prefix = self.ctx, self.conn, self._prefix
        assert conn is not None
        if ctx.settings.log_ws:
            ctx.log_ws(f"connection {conn.local_addr}: received message: {frame.rstrip()}")
        number = protocol.find_echo(frame, self._marker)  # the echo without a JSON parse
        if number is not None:
            self._echo(conn, number)
            return
        kind, payload = protocol.parse(frame, conn.local_addr)
        number = protocol.echo_number(kind, payload, prefix)
        if number is not None:
            self._echo(conn, number)
            return
        number = protocol.reply_number(kind, payload, protocol.REPLY_PREFIX + prefix)
        if number is not None:
            ctx.metrics.count(Count.REPLIES_RECEIVED)
            # Participant send -> organizer reply received: the full round trip via the
            # organizer, on one clock.
            sent_ns = self.awaiting_reply.pop(number, None)
            if sent_ns is not None:
                now_ns = time.time_ns()
                ctx.metrics.organizer_reply.record(now_ns // 1_000_000_000,
                                                 (now_ns - sent_ns) / 1e9)
            return
        ctx.metrics.count_of(CountFamily.PARTICIPANT_FRAMES, kind)
        if kind == "error" and not ctx.stop.is_set():
            raise ServerErrorFrame(
                f"connection {conn.local_addr}: server error: {payload.get('message')}")
