"""The names of what a run measures, its counters and its latencies, each one name from the
recorder to the summary key, the .hlog tag and the Prometheus metric (no dependencies: result
readers import them too)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Count(enum.StrEnum):
    """The run-wide counters; their values are the keys of the summary's `counts`."""

    PARTICIPANTS_STARTED = "participants_started"
    CREATED_PARTICIPANTS = "created_participants_count"  # the Go test's name
    CHATS = "chats_count"  # the Go test's name
    CONNECTIONS_OPEN = "connections_open"
    START_CHAT_SENT = "start_chat_sent"
    START_CHAT_MISSED = "start_chat_missed"
    ORGANIZER_CHATS_STARTED = "organizer_chats_started"
    REPLIES_SENT = "replies_sent"
    REPLIES_RECEIVED = "replies_received"
    ECHOES_SHARING_A_READ = "echoes_sharing_a_read"
    CHATS_FOUND_BY_PUSH = "chats_found_by_push"
    CHATS_FOUND_BY_POLL = "chats_found_by_poll"


class CountFamily(enum.StrEnum):
    """Counters keyed by what the server sent or who did it: `<family>_<key>` in `counts`."""

    ORGANIZER_FRAMES = "organizer_frames"  # frames an organizer read, by type
    PARTICIPANT_FRAMES = "participant_frames"  # frames participants read, by type
    CHATS_STARTED_BY = "chats_started_by"  # chats each organizer started


@dataclass(frozen=True)
class Latency:
    """One latency a run measures, under one name everywhere: its Metrics attribute, its key
    in the summary's `latency` and its .hlog tag are `key`; `prometheus` names its histogram
    (esmeperf_<prometheus>_seconds, None: not served), `label` its row in the table."""

    key: str
    label: str
    prometheus: str | None
    help: str
    per_second: bool = True  # recorded in the second it happened (else the clock's, later)
    whose: str = "target + network"  # whose time it is, in a few words (the table's column)


LATENCIES = (
    Latency("message_rtt", "round trip", "message_round_trip",
            "Participant message sent to its echo received (the kernel's receive time where "
            "the platform stamps reads: the generator's wake-up is not in it)"),
    # Each echo from the moment its message was due on the -smi grid (its round trip plus its
    # send lateness), each send slot skipped from its due time to when it was given up, and
    # each unconfirmed message from its due time to its participant's end: what a participant
    # lived through, coordinated omission corrected (wrk2), by arrival second.
    Latency("message_rtt_from_intended", "rtt from intended", "message_round_trip_from_intended",
            "A participant message's due time on the -smi grid to its echo received (a skipped "
            "slot: to when it was given up): the round trip plus the send lateness",
            whose="target + generator"),
    Latency("send_lateness", "send lateness", "send_lateness",
            "How late each message left against its -smi schedule: the generator's own timer "
            "and scheduling error, not the target's", whose="generator"),
    Latency("generator_lag", "generator lag", "generator_lag",
            "How late the generator's threads ran after they were due: a probe that sleeps "
            "10 ms at a time and measures its oversleep", whose="generator"),
    Latency("arrival_lateness", "arrival lateness", "arrival_lateness",
            "A participant's slot on the arrival schedule to its sign-up request",
            whose="generator"),
    Latency("sign_up", "sign-up", "sign_up", "Participant sign-up request (REST)",
            per_second=False),
    Latency("chat_request", "chat request", None, "Participant chat request (REST)",
            per_second=False),
    Latency("ws_handshake", "handshake", "ws_handshake", "Participant WebSocket handshake",
            per_second=False),
    Latency("arrival_to_chat", "arrival to chat", None,
            "A participant's arrival to its chat id known", per_second=False,
            whose="target + -sci pacing"),
    Latency("organizer_reply", "organizer reply", None,
            "Participant message sent to the organizer's reply received (--reply)"),
    # Each message never confirmed, at the age it had when its participant ended: the round
    # trips it would have had at least (a frozen target can't hide behind a low p99). In the
    # summary only as part of message_rtt_with_unconfirmed.
    Latency("unconfirmed", "unconfirmed", None, "Unconfirmed messages' ages at the end",
            per_second=False),
)
# The summary's one latency that is two recorders summarised as one distribution.
# "rtt + unconfirmed" would read as a sum: the row is the round trips with every message never
# echoed counted at its age when its participant ended.
WITH_UNCONFIRMED = Latency("message_rtt_with_unconfirmed", "rtt incl. unanswered", None,
                           "The round trips and the unconfirmed messages' ages together")
