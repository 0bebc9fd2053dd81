"""SQLite persistence (WAL, synchronous=NORMAL); messages batched on a writer thread."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor
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
    time_sent_ms INTEGER NOT NULL, lat REAL, lng REAL);
CREATE INDEX IF NOT EXISTS messages_chat ON messages (chat_id);
"""

# Column order of a message row, shared by the batch insert and the readers.
MESSAGE_COLUMNS = "id, chat_id, author_id, from_organizer, content, time_sent_ms, lat, lng"
CHAT_COLUMNS = ("id, agency_id, event_id, organizer_id, participant_id, ended, lat_start, "
                "lng_start, time_start_ms")

MessageRow = tuple[str, str, int, int, str, int, float | None, float | None]


class Store:
    """SQLite persistence for the event-loop thread, with message inserts on a writer thread.

    Two connections to the same WAL database:
    - the loop's own connection, in autocommit mode, for the rare writes (participants, chats,
      locks, requests) and for reads;
    - a writer thread's connection for messages. Rows wait in a list and go to the writer as one
      executemany + commit at most `flush_interval` seconds after the first pending row.
      sqlite3 releases the GIL while SQLite works, so this runs beside the event loop.

    `flush()` hands over pending rows and waits for the writer, so reads after it see everything.
    """

    def __init__(self, path: str, flush_interval: float = 0.05) -> None:
        self._path = path
        self._db = self._connect()
        self._db.executescript(SCHEMA)
        self._pending: list[MessageRow] = []
        self._timer: asyncio.TimerHandle | None = None
        self._interval = flush_interval
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer",
                                          initializer=self._open_writer)
        self._writer_db: sqlite3.Connection | None = None
        self._inflight: Future[None] | None = None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=10000")  # the two connections take turns writing
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _open_writer(self) -> None:
        self._writer_db = self._connect()

    def _insert(self, rows: list[MessageRow]) -> None:
        """Runs on the writer thread: one transaction per batch."""
        db = self._writer_db
        assert db is not None
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")

    def _hand_over(self) -> None:
        """Give pending rows to the writer thread without waiting (the timer callback)."""
        self._timer = None
        if self._pending:
            rows, self._pending = self._pending, []
            self._inflight = self._writer.submit(self._insert, rows)

    def flush(self) -> None:
        """Make every message written so far visible to reads; blocks until the writer is done."""
        if self._timer is not None:
            self._timer.cancel()
        self._hand_over()
        if self._inflight is not None:
            self._inflight.result()  # the executor runs batches in order: the last covers all
            self._inflight = None

    def close(self) -> None:
        self.flush()
        self._writer.submit(self._close_writer).result()
        self._writer.shutdown()
        self._db.close()

    def _close_writer(self) -> None:
        if self._writer_db is not None:
            self._writer_db.close()

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    # -- seed and load ---------------------------------------------------------------------
    def seed(self, organizers: list[tuple[str, str]], now_ms: int) -> None:
        """Agency 1 (approved), event 1 of agency 1, and organizers (email, hash) with role 2."""
        self._db.execute("INSERT OR IGNORE INTO agencies VALUES (1, 'esmeperf agency', 1)")
        self._db.execute("INSERT OR IGNORE INTO events VALUES (1, 1, 'esmeperf event', "
                         "'load test event', 'localhost', NULL, NULL, ?, ?)",
                         (now_ms, now_ms + 86_400_000))
        self._db.execute("BEGIN")
        for n, (email, password_hash) in enumerate(organizers, 1):
            self._db.execute(
                "INSERT INTO organizers (email, password, first_name, last_name, phone, "
                "time_created_ms, role, agency_id) VALUES (?, ?, 'Organizer', ?, '+48100200300', "
                "?, 2, 1) ON CONFLICT(email) DO UPDATE SET password = excluded.password",
                (email, password_hash, str(n), now_ms))
        self._db.execute("COMMIT")

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
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._hand_over)

    def messages(self, chat_id: str) -> list[tuple[Any, ...]]:
        return self.rows(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? "
                         "ORDER BY rowid", (chat_id,))
