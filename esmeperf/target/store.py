"""SQLite persistence (WAL, synchronous=NORMAL): batched commits, checkpoints on a thread.

Every SQL statement of the target is in this module; the hub and the APIs call `Store` methods.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any, NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS agencies (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
    approved INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, agency_id INTEGER NOT NULL,
    name TEXT NOT NULL, description TEXT NOT NULL, address TEXT NOT NULL, lat REAL, lng REAL,
    time_start_ms INTEGER NOT NULL, time_end_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS organizers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL, first_name TEXT NOT NULL, last_name TEXT NOT NULL,
    phone TEXT NOT NULL, time_created_ms INTEGER NOT NULL, role INTEGER NOT NULL,
    agency_id INTEGER);
CREATE TABLE IF NOT EXISTS participants (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL, phone TEXT NOT NULL, time_created_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chat_request_locks (event_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL, PRIMARY KEY (event_id, user_id));
CREATE TABLE IF NOT EXISTS chat_requests (id INTEGER PRIMARY KEY, participant_id INTEGER NOT NULL,
    agency_id INTEGER NOT NULL, event_id INTEGER NOT NULL, description TEXT NOT NULL,
    lat REAL, lng REAL);
CREATE TABLE IF NOT EXISTS chats (id TEXT PRIMARY KEY, agency_id INTEGER NOT NULL,
    event_id INTEGER NOT NULL, organizer_id INTEGER NOT NULL, participant_id INTEGER NOT NULL,
    ended INTEGER NOT NULL, lat_start REAL, lng_start REAL, time_start_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (id TEXT NOT NULL, chat_id TEXT NOT NULL,
    author_id INTEGER NOT NULL, from_organizer INTEGER NOT NULL, content TEXT NOT NULL,
    time_sent_ms INTEGER NOT NULL, lat REAL, lng REAL,
    description INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS messages_chat ON messages (chat_id);
"""

# Column order of a message row and of a chat row: the inserts and the readers share them.
# Every statement below is a constant string with `?` placeholders, built once at import, so the
# sqlite3 module's statement cache (keyed by the SQL text) reuses one prepared statement per
# query; no SQL is formatted per call.
MESSAGE_COLUMNS = "id, chat_id, author_id, from_organizer, content, time_sent_ms, lat, lng"
CHAT_COLUMNS = ("id, agency_id, event_id, organizer_id, participant_id, ended, lat_start, "
                "lng_start, time_start_ms")

MessageRow = tuple[str, str, int, int, str, int, float | None, float | None]
# id, agency_id, event_id, organizer_id, participant_id, ended, lat_start, lng_start, start ms
ChatRow = tuple[str, int, int, int, int, int, float | None, float | None, int]
# id, email, password, first_name, last_name, phone, time_created_ms, role, agency_id
OrganizerRow = tuple[int, str, str, str, str, str, int, int, int | None]
# id, email, password, phone, time_created_ns
ParticipantRow = tuple[int, str, str, str, int]
# id, name, description, address, lat, lng, time_start_ms, time_end_ms, agency_id
EventRow = tuple[int, str, str, str, float | None, float | None, int, int, int]

# -- seed --------------------------------------------------------------------------------------
_SEED_AGENCY = "INSERT OR IGNORE INTO agencies VALUES (1, 'esmeperf agency', 1)"
_SEED_EVENT = ("INSERT OR IGNORE INTO events VALUES (1, 1, 'esmeperf event', "
               "'load test event', 'localhost', NULL, NULL, ?, ?)")
_SEED_ORGANIZER = ("INSERT INTO organizers (email, password, first_name, last_name, phone, "
                   "time_created_ms, role, agency_id) VALUES (?, ?, 'Organizer', ?, "
                   "'+48100200300', ?, 2, 1) "
                   "ON CONFLICT(email) DO UPDATE SET password = excluded.password")

# -- writes (the hub's per-message and per-chat statements) -------------------------------------
_INSERT_PARTICIPANT = ("INSERT INTO participants (email, password, phone, time_created_ns) "
                       "VALUES (?, ?, ?, ?)")
_INSERT_LOCK = "INSERT OR IGNORE INTO chat_request_locks VALUES (?, ?)"
_DELETE_LOCK = "DELETE FROM chat_request_locks WHERE event_id = ? AND user_id = ?"
_INSERT_CHAT_REQUEST = ("INSERT INTO chat_requests (participant_id, agency_id, event_id, "
                        "description, lat, lng) VALUES (?, ?, ?, ?, ?, ?)")
_INSERT_CHAT = ("INSERT INTO chats (" + CHAT_COLUMNS + ") "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
_END_CHAT = "UPDATE chats SET ended = 1 WHERE id = ?"
_INSERT_MESSAGE = ("INSERT INTO messages (" + MESSAGE_COLUMNS + ") "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_DESCRIPTION = ("INSERT INTO messages (" + MESSAGE_COLUMNS + ", description) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)")

# -- reads -------------------------------------------------------------------------------------
_SELECT_ORGANIZERS = ("SELECT id, email, password, first_name, last_name, phone, "
                      "time_created_ms, role, agency_id FROM organizers")
_SELECT_PARTICIPANTS = "SELECT id, email, password, phone, time_created_ns FROM participants"
_SELECT_APPROVED_EVENTS = ("SELECT e.id, e.agency_id FROM events e "
                           "JOIN agencies a ON a.id = e.agency_id WHERE a.approved = 1")
_SELECT_EVENT = ("SELECT id, name, description, address, lat, lng, time_start_ms, time_end_ms, "
                 "agency_id FROM events WHERE id = ?")
_SELECT_ACTIVE_CHATS = ("SELECT " + CHAT_COLUMNS + " FROM chats WHERE ended = 0 "
                        "ORDER BY time_start_ms, rowid")
_SELECT_ENDED_CHATS_OF_AGENCY = ("SELECT " + CHAT_COLUMNS + " FROM chats "
                                 "WHERE ended = 1 AND agency_id = ? "
                                 "ORDER BY time_start_ms DESC, rowid DESC")
_SELECT_ENDED_CHATS_OF_PARTICIPANT = ("SELECT " + CHAT_COLUMNS + " FROM chats "
                                      "WHERE ended = 1 AND participant_id = ? "
                                      "ORDER BY time_start_ms DESC, rowid DESC")
_AGENCY_HAS_CHAT = "SELECT 1 FROM chats WHERE id = ? AND agency_id = ?"
_PARTICIPANT_HAS_CHAT = "SELECT 1 FROM chats WHERE id = ? AND participant_id = ?"
_SELECT_MESSAGES = ("SELECT " + MESSAGE_COLUMNS + " FROM messages WHERE chat_id = ? "
                    "ORDER BY rowid")
_COUNT_CHATS = "SELECT COUNT(*) FROM chats"
_COUNT_CHAT_REQUESTS = "SELECT COUNT(*) FROM chat_requests"
_COUNT_PARTICIPANT_MESSAGES = ("SELECT COUNT(*) FROM messages "
                               "WHERE from_organizer = 0 AND description = 0")
_COUNT_ORGANIZER_MESSAGES = "SELECT COUNT(*) FROM messages WHERE from_organizer = 1"
_COUNT_DESCRIPTION_MESSAGES = "SELECT COUNT(*) FROM messages WHERE description = 1"


class StoredCounts(NamedTuple):
    """Row counts the hub's counters start from after a restart on --db."""

    chats: int
    chat_requests: int
    participant_messages: int
    organizer_messages: int
    description_messages: int


class Store:
    """One SQLite connection used only from the event-loop thread.

    Writes are executed immediately but committed in batches: message rows wait in a list and
    are inserted with one executemany per flush, at most `flush_interval` seconds after the
    first pending write, so a burst of thousands of messages costs one commit.
    """

    def __init__(self, path: str, flush_interval: float = 0.05) -> None:
        self._db = sqlite3.connect(path, isolation_level="DEFERRED")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.commit()
        # Checkpoints copy the WAL into the database and fsync; on a busy disk that can stall
        # for seconds, so the loop's commits never checkpoint and a thread does it instead.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(path,),
                                              name="sqlite-checkpoint")
        self._checkpointer.start()
        self._pending: list[MessageRow] = []
        self._dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self._interval = flush_interval

    # -- batching --------------------------------------------------------------------------
    def _touch(self) -> None:
        self._dirty = True
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def flush(self) -> None:
        """Insert pending messages and commit everything written so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            rows, self._pending = self._pending, []
            self._db.executemany(_INSERT_MESSAGE, rows)
        if self._dirty:
            self._db.commit()
            self._dirty = False

    def _checkpoint_loop(self, path: str) -> None:
        """Every second, a PASSIVE checkpoint (never blocks the writer) on its own connection."""
        db = sqlite3.connect(path, check_same_thread=False)
        try:
            while not self._stop.wait(1.0):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # busy or locked: the next round retries; the WAL only grows meanwhile
        finally:
            db.close()

    def close(self) -> None:
        self.flush()
        self._stop.set()
        self._checkpointer.join()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        cur = self._db.execute(sql, params)
        self._touch()
        return cur

    # -- seed ------------------------------------------------------------------------------
    def seed(self, organizers: list[tuple[str, str]], now_ms: int) -> None:
        """Agency 1 (approved), event 1 of agency 1, and organizers (email, hash) with role 2."""
        self._db.execute(_SEED_AGENCY)
        self._db.execute(_SEED_EVENT, (now_ms, now_ms + 86_400_000))
        for n, (email, password_hash) in enumerate(organizers, 1):
            self._db.execute(_SEED_ORGANIZER, (email, password_hash, str(n), now_ms))
        self._db.commit()

    # -- reads -----------------------------------------------------------------------------
    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one of the constant read statements above after flushing pending writes."""
        self.flush()
        return self._db.execute(sql, params).fetchall()

    def _count(self, sql: str) -> int:
        return int(self._read(sql)[0][0])

    def organizers(self) -> list[OrganizerRow]:
        return self._read(_SELECT_ORGANIZERS)

    def participants(self) -> list[ParticipantRow]:
        return self._read(_SELECT_PARTICIPANTS)

    def approved_events(self) -> list[tuple[int, int]]:
        """(event id, agency id) of every event whose agency is approved."""
        return self._read(_SELECT_APPROVED_EVENTS)

    def event(self, event_id: int) -> EventRow | None:
        rows = self._read(_SELECT_EVENT, (event_id,))
        return rows[0] if rows else None

    def active_chats(self) -> list[ChatRow]:
        """Chats not ended, oldest first."""
        return self._read(_SELECT_ACTIVE_CHATS)

    def ended_chats_of_agency(self, agency_id: int) -> list[ChatRow]:
        """Ended chats of an agency, newest first."""
        return self._read(_SELECT_ENDED_CHATS_OF_AGENCY, (agency_id,))

    def ended_chats_of_participant(self, participant_id: int) -> list[ChatRow]:
        """Ended chats of a participant, newest first."""
        return self._read(_SELECT_ENDED_CHATS_OF_PARTICIPANT, (participant_id,))

    def agency_has_chat(self, chat_id: str, agency_id: int | None) -> bool:
        """Whether the chat (active or ended) belongs to the agency; never for agency None."""
        return bool(self._read(_AGENCY_HAS_CHAT, (chat_id, agency_id)))

    def participant_has_chat(self, chat_id: str, participant_id: int) -> bool:
        """Whether the chat (active or ended) is the participant's."""
        return bool(self._read(_PARTICIPANT_HAS_CHAT, (chat_id, participant_id)))

    def messages(self, chat_id: str) -> list[MessageRow]:
        """A chat's messages (descriptions included) in the order they were stored."""
        return self._read(_SELECT_MESSAGES, (chat_id,))

    def counts(self) -> StoredCounts:
        return StoredCounts(
            chats=self._count(_COUNT_CHATS),
            chat_requests=self._count(_COUNT_CHAT_REQUESTS),
            participant_messages=self._count(_COUNT_PARTICIPANT_MESSAGES),
            organizer_messages=self._count(_COUNT_ORGANIZER_MESSAGES),
            description_messages=self._count(_COUNT_DESCRIPTION_MESSAGES))

    # -- writes ----------------------------------------------------------------------------
    def add_participant(self, email: str, password_hash: str, phone: str, created_ns: int) -> int:
        cur = self._write(_INSERT_PARTICIPANT, (email, password_hash, phone, created_ns))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def add_lock(self, event_id: int, user_id: int) -> bool:
        """Insert the chat-request lock; False if it already exists."""
        cur = self._write(_INSERT_LOCK, (event_id, user_id))
        return cur.rowcount == 1

    def delete_lock(self, event_id: int, user_id: int) -> None:
        self._write(_DELETE_LOCK, (event_id, user_id))

    def add_chat_request(self, participant_id: int, agency_id: int, event_id: int,
                         description: str, lat: float | None, lng: float | None) -> None:
        self._write(_INSERT_CHAT_REQUEST,
                    (participant_id, agency_id, event_id, description, lat, lng))

    def add_chat(self, row: ChatRow) -> None:
        self._write(_INSERT_CHAT, row)

    def end_chat(self, chat_id: str) -> None:
        self._write(_END_CHAT, (chat_id,))

    def add_message(self, row: MessageRow) -> None:
        """Queue a message row for the next batched insert."""
        self._pending.append(row)
        if not self._dirty:
            self._touch()

    def add_description(self, row: MessageRow) -> None:
        """Store a problem-description message at once, flagged so /stats can tell it apart."""
        self._write(_INSERT_DESCRIPTION, row)
