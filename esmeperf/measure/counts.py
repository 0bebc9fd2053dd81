"""The names of a run's counters (no dependencies: result readers import them too)."""

from __future__ import annotations

import enum


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
