"""SQLite persistence (WAL, synchronous=NORMAL): batched commits, checkpoints on a thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

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

# Column order of a message row, shared by the batch insert and the readers.
MESSAGE_COLUMNS = "id, chat_id, author_id, from_organizer, content, time_sent_ms, lat, lng"
CHAT_COLUMNS = ("id, agency_id, event_id, organizer_id, participant_id, ended, lat_start, "
                "lng_start, time_start_ms")

MessageRow = tuple[str, str, int, int, str, int, float | None, float | None]


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
            self._db.executemany(f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES "
                                 "(?, ?, ?, ?, ?, ?, ?, ?)", rows)
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

    # -- seed and load ---------------------------------------------------------------------
    def seed(self, organizers: list[tuple[str, str]], now_ms: int) -> None:
        """Agency 1 (approved), event 1 of agency 1, and organizers (email, hash) with role 2."""
        self._db.execute("INSERT OR IGNORE INTO agencies VALUES (1, 'esmeperf agency', 1)")
        self._db.execute("INSERT OR IGNORE INTO events VALUES (1, 1, 'esmeperf event', "
                         "'load test event', 'localhost', NULL, NULL, ?, ?)",
                         (now_ms, now_ms + 86_400_000))
        for n, (email, password_hash) in enumerate(organizers, 1):
            self._db.execute(
                "INSERT INTO organizers (email, password, first_name, last_name, phone, "
                "time_created_ms, role, agency_id) VALUES (?, ?, 'Organizer', ?, '+48100200300', "
                "?, 2, 1) ON CONFLICT(email) DO UPDATE SET password = excluded.password",
                (email, password_hash, str(n), now_ms))
        self._db.commit()

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read query after flushing pending writes."""
        self.flush()
        return self._db.execute(sql, params).fetchall()

    def count(self, table: str, where: str = "1") -> int:
        return int(self.rows(f"SELECT COUNT(*) FROM {table} WHERE {where}")[0][0])

    # -- writes ----------------------------------------------------------------------------
    def add_participant(self, email: str, password_hash: str, phone: str, created_ns: int) -> int:
        cur = self._write("INSERT INTO participants (email, password, phone, time_created_ns) "
                          "VALUES (?, ?, ?, ?)", (email, password_hash, phone, created_ns))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def add_lock(self, event_id: int, user_id: int) -> bool:
        """Insert the chat-request lock; False if it already exists."""
        cur = self._write("INSERT OR IGNORE INTO chat_request_locks VALUES (?, ?)",
                          (event_id, user_id))
        return cur.rowcount == 1

    def delete_lock(self, event_id: int, user_id: int) -> None:
        self._write("DELETE FROM chat_request_locks WHERE event_id = ? AND user_id = ?",
                    (event_id, user_id))

    def add_chat_request(self, participant_id: int, agency_id: int, event_id: int,
                         description: str, lat: float | None, lng: float | None) -> None:
        self._write("INSERT INTO chat_requests (participant_id, agency_id, event_id, description,"
                    " lat, lng) VALUES (?, ?, ?, ?, ?, ?)",
                    (participant_id, agency_id, event_id, description, lat, lng))

    def add_chat(self, row: tuple[Any, ...]) -> None:
        self._write(f"INSERT INTO chats ({CHAT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def end_chat(self, chat_id: str) -> None:
        self._write("UPDATE chats SET ended = 1 WHERE id = ?", (chat_id,))

    def add_message(self, row: MessageRow) -> None:
        """Queue a message row for the next batched insert."""
        self._pending.append(row)
        if not self._dirty:
            self._touch()

    def add_description(self, row: MessageRow) -> None:
        """Store a problem-description message at once, flagged so /stats can tell it apart."""
        self._write(f"INSERT INTO messages ({MESSAGE_COLUMNS}, description) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, 1)", row)

    def messages(self, chat_id: str) -> list[tuple[Any, ...]]:
        return self.rows(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? "
                         "ORDER BY rowid", (chat_id,))
