"""Chat sessions and their messages, kept in one SQLite file.

This module owns the database: its schema and append-only migrations, the session-id
rules, and every query. A session is created by its first turn; each turn is a user
message and an assistant message written together in one transaction, so a session
never holds half a turn. Nothing here knows about MCP, HTTP or Ollama.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self, cast

from mcp_ollama.errors import InvalidSessionId, SessionNotFound, StoreError

__all__ = [
    "SESSION_ID_PATTERN",
    "ChatStore",
    "JobRecord",
    "SessionInfo",
    "StoredMessage",
    "derive_title",
    "new_session_id",
    "validate_session_id",
]

SESSION_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_SESSION_ID_RE = re.compile(SESSION_ID_PATTERN)
# Every character a valid id may contain sorts below this one (the largest is "z"),
# so ids starting with p are exactly those in the range [p, p + _ABOVE_ID_CHARS).
_ABOVE_ID_CHARS = "\x7f"

TITLE_MAX_CHARS = 60

# Fixed width, UTC, microseconds: these strings sort the same way the instants do.
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def validate_session_id(value: str) -> str:
    """Return ``value`` if it is a well-formed session id, else raise ``InvalidSessionId``.

    Ids are 1-64 characters from ASCII letters, digits, ``-`` and ``_``: nothing that
    could act as a path separator, a parent reference, a NUL or SQL syntax.
    """
    if not isinstance(value, str):
        raise InvalidSessionId(repr(value))
    if _SESSION_ID_RE.fullmatch(value) is None:
        raise InvalidSessionId(value)
    return value


def new_session_id() -> str:
    """A fresh random session id (32 lowercase hex digits)."""
    return uuid.uuid4().hex


def derive_title(user_message: str) -> str:
    """A session's title: its first user message, whitespace collapsed, at most 60 characters."""
    text = " ".join(user_message.split())
    if len(text) <= TITLE_MAX_CHARS:
        return text
    return text[: TITLE_MAX_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message of a stored transcript."""

    role: str
    """``"user"`` or ``"assistant"``."""
    content: str
    created_at: datetime
    """When the message was stored (timezone-aware, UTC)."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session's summary, without its messages."""

    id: str
    title: str
    """The first user message, shortened; empty after ``clear_session`` until the next turn."""
    model: str
    """The model that answered the most recent turn."""
    created_at: datetime
    updated_at: datetime
    """The last time a turn was added or the session was cleared."""
    turn_count: int
    message_count: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A generation's record: one that outlived its request, or an MCP task."""

    id: str
    session_id: str
    model: str
    status: str
    """``running``, ``complete``, ``failed``, ``cancelled`` or ``interrupted``."""
    owner: str
    """The server process that runs (or ran) it."""
    started_at: datetime
    heartbeat_at: datetime
    requester: str | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    detail: str | None = None
    result: str | None = None


def _now() -> str:
    return _format_time(datetime.now(UTC))


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


# --- migrations -------------------------------------------------------------------------
# Append-only. A migration that has shipped is never edited or removed: databases in the
# wild have recorded its name in _migrations and will not run it again. Fix mistakes with
# a new migration. Each runs in its own transaction (SQLite DDL is transactional).


def m001_create_sessions_and_messages(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            model TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            turn_count INTEGER NOT NULL DEFAULT 0 CHECK (turn_count >= 0)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            turn INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            created_at TEXT NOT NULL,
            meta TEXT /* JSON: model, token counts, timings */
        )
        """
    )
    # Serves the transcript reads, the "last N turns" window (a reverse scan) and the
    # ON DELETE CASCADE lookup.
    conn.execute("CREATE INDEX idx_messages_session_id ON messages(session_id, id)")
    # Serves list_sessions' keyset pagination and session_ids' newest-first order.
    conn.execute("CREATE INDEX idx_sessions_updated_at ON sessions(updated_at DESC, id DESC)")


def m002_create_jobs(conn: sqlite3.Connection) -> None:
    # A generation that outlived the request that started it, or ran as an MCP task. A turn's
    # messages and its job's 'complete' are written in one transaction.
    conn.execute(
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            model TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('running', 'complete', 'failed', 'cancelled', 'interrupted')),
            owner TEXT NOT NULL,          /* the server process that runs it */
            requester TEXT,               /* the MCP connection whose task it is; NULL: no task */
            started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,   /* the owner refreshes this while it runs */
            finished_at TEXT,
            expires_at TEXT,              /* a task's end of life (its ttl); NULL: no task */
            detail TEXT,                  /* why it failed, or was cancelled or interrupted */
            result TEXT                   /* a task's tool result, as JSON */
        )
        """
    )
    conn.execute("CREATE INDEX idx_jobs_session_id ON jobs(session_id, started_at DESC)")


def m003_create_session_leases(conn: sqlite3.Connection) -> None:
    # Who is writing a turn of a session right now, so that two processes on one database
    # (two hosts) take a session's turns one after the other, each seeing the one before.
    conn.execute(
        """
        CREATE TABLE session_leases (
            session_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,          /* the server process writing a turn */
            expires_at TEXT NOT NULL      /* renewed while it writes; a dead owner's lease lapses */
        )
        """
    )


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    m001_create_sessions_and_messages,
    m002_create_jobs,
    m003_create_session_leases,
)


# --- the store --------------------------------------------------------------------------

_SESSION_COLUMNS = """
    s.id, s.title, s.model, s.created_at, s.updated_at, s.turn_count,
    (SELECT count(*) FROM messages AS m WHERE m.session_id = s.id)
"""

_Row = tuple[Any, ...]

_JOB_COLUMNS = (
    "id, session_id, model, status, owner, started_at, heartbeat_at, requester, finished_at,"
    " expires_at, detail, result"
)


def _recent(conn: sqlite3.Connection, session_id: str, max_turns: int) -> list[StoredMessage]:
    if max_turns == 0:
        return []  # LIMIT 0 would do, but a negative LIMIT means "no limit" in SQLite
    # Every turn is exactly two messages (written in one transaction), so the last
    # 2 * max_turns rows are the last max_turns turns. Read backwards along the index.
    rows = conn.execute(
        """
        SELECT role, content, created_at FROM (
            SELECT id, role, content, created_at FROM messages
            WHERE session_id = ? ORDER BY id DESC LIMIT ?
        ) ORDER BY id
        """,
        (session_id, 2 * max_turns),
    ).fetchall()
    return [_message_from_row(row) for row in rows]


def _job_from_row(row: _Row) -> JobRecord:
    def when(text: str | None) -> datetime | None:
        return _parse_time(text) if text else None

    return JobRecord(
        id=row[0],
        session_id=row[1],
        model=row[2],
        status=row[3],
        owner=row[4],
        started_at=_parse_time(row[5]),
        heartbeat_at=_parse_time(row[6]),
        requester=row[7],
        finished_at=when(row[8]),
        expires_at=when(row[9]),
        detail=row[10],
        result=row[11],
    )


def _session_from_row(row: _Row) -> SessionInfo:
    return SessionInfo(
        id=row[0],
        title=row[1],
        model=row[2],
        created_at=_parse_time(row[3]),
        updated_at=_parse_time(row[4]),
        turn_count=int(row[5]),
        message_count=int(row[6]),
    )


def _message_from_row(row: _Row) -> StoredMessage:
    return StoredMessage(role=row[0], content=row[1], created_at=_parse_time(row[2]))


def _encode_cursor(updated_at: str, session_id: str) -> str:
    raw = json.dumps([updated_at, session_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        if not isinstance(cursor, str) or not cursor.isascii():
            raise ValueError
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        decoded = json.loads(raw)
        if not (isinstance(decoded, list) and len(decoded) == 2):
            raise ValueError
        updated_at, session_id = decoded
        if not isinstance(updated_at, str):
            raise ValueError
        _parse_time(updated_at)
        validate_session_id(session_id)
    except (ValueError, binascii.Error, UnicodeDecodeError, InvalidSessionId):
        raise ValueError("invalid cursor") from None
    return updated_at, session_id


class ChatStore:
    """Chat sessions in SQLite. Make one with ``ChatStore.open(path)``; close it when done.

    Every method takes the store's lock, so one store may be shared between threads.
    Several processes may open the same file: writes are serialised by SQLite's own
    locking (``BEGIN IMMEDIATE`` plus a busy timeout).
    """

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        """Wrap an open, migrated connection. Use ``ChatStore.open`` instead."""
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> ChatStore:
        """Open (creating if needed) the database at ``path`` and bring its schema up to date.

        ``":memory:"`` gives a private, throwaway database. A new file and any directories
        created for it are readable by their owner only; an existing file keeps its mode.
        A file that is not ours (another application's database, not a database at all) or
        that a newer version wrote is refused with ``StoreError`` and left exactly as it was;
        so is any other failure to open, with its cause and fix.
        """
        path_text = os.fspath(path)
        try:
            if path_text == ":memory:":
                conn = cls._connect(path_text)
            else:
                # umask is process-wide: another thread creating files during this window
                # would also get owner-only modes, which errs on the safe side.
                previous_umask = os.umask(0o077)
                try:
                    Path(path_text).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    # Create the file ourselves so it is 0600 before SQLite writes a byte.
                    # SQLite gives the -wal and -shm files it makes the database file's mode.
                    # Python's os.open is non-inheritable already (PEP 446), on Windows too, where
                    # os.O_CLOEXEC does not exist; the mode is ignored there (ACLs apply).
                    fd = os.open(path_text, os.O_RDWR | os.O_CREAT, 0o600)
                    os.close(fd)
                    conn = cls._connect(path_text)
                finally:
                    os.umask(previous_umask)
        except sqlite3.Error as exc:
            raise StoreError(path_text, describe_sqlite_error(exc, path_text)) from exc
        except OSError as exc:
            raise StoreError(path_text, describe_os_error(exc, path_text)) from exc
        return cls(conn, path_text)

    @classmethod
    def unavailable(cls, path: str, error: StoreError) -> ChatStore:
        """A store that could not be opened: every call raises ``error``, so each tool can explain."""
        return cls(cast(sqlite3.Connection, _Unavailable(error)), path)

    @staticmethod
    def _connect(path: str) -> sqlite3.Connection:
        # isolation_level=None: the sqlite3 module never opens transactions behind our
        # back; we say BEGIN IMMEDIATE / COMMIT ourselves. check_same_thread=False because
        # the store's own lock serialises use across threads.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            # busy_timeout first, so the journal-mode switch and migrations wait for
            # another process instead of failing with "database is locked".
            conn.execute("PRAGMA busy_timeout = 5000")
            _refuse_foreign(conn, path)  # before anything writes: a file not ours stays as it was
            conn.execute("PRAGMA journal_mode = WAL")
            # In WAL mode, synchronous=NORMAL never corrupts the database and never loses
            # a committed transaction when the process crashes; only a power loss or OS
            # crash may roll back the last few commits. That is the right trade for chat.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close the database. Safe to call twice."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """SQLite's failures as ``StoreError``, saying what happened and what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(self.path, describe_sqlite_error(exc, self.path)) from exc

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """Hold the lock and run the block in one transaction; roll back if it raises."""
        with self._lock:
            conn = self._conn
            conn.execute(begin)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # --- reads ----------------------------------------------------------------------

    def get_session(self, session_id: str) -> SessionInfo | None:
        """The session's summary, or None if there is no such session."""
        validate_session_id(session_id)
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions AS s WHERE s.id = ?", (session_id,)
            ).fetchone()
        return None if row is None else _session_from_row(row)

    def list_sessions(
        self, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[SessionInfo], str | None]:
        """One page of sessions, most recently active first, and the cursor for the next page.

        The cursor is opaque; pass back what the previous call returned. It is None when
        there are no more sessions. Sessions created between pages show up only on a new
        first page; a session updated between pages may move to an earlier page.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = f"SELECT {_SESSION_COLUMNS} FROM sessions AS s"
        params: tuple[object, ...] = ()
        if cursor is not None:
            # Keyset pagination: seek straight to the last row seen in the index,
            # so page 1000 costs the same as page 1 (OFFSET would scan the skipped rows).
            query += " WHERE (s.updated_at, s.id) < (?, ?)"
            params = _decode_cursor(cursor)
        query += " ORDER BY s.updated_at DESC, s.id DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(query, (*params, limit + 1)).fetchall()
        sessions = [_session_from_row(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = _encode_cursor(str(last[4]), str(last[0]))
        return sessions, next_cursor

    def recent_messages(self, session_id: str, max_turns: int) -> list[StoredMessage]:
        """The last ``max_turns`` turns in chronological order; empty for an unknown session."""
        validate_session_id(session_id)
        if max_turns < 0:
            raise ValueError("max_turns must not be negative")
        if max_turns == 0:
            return []  # LIMIT 0 would do, but a negative LIMIT means "no limit" in SQLite
        with self._lock:
            return _recent(self._conn, session_id, max_turns)

    def begin_turn(
        self, session_id: str, owner: str, max_turns: int, lease_seconds: float
    ) -> list[StoredMessage] | None:
        """Take ``session_id``'s lease for ``owner`` and read its last ``max_turns`` turns: one transaction.

        ``None`` while another live process holds the lease: it is writing a turn of this
        session, and the next turn must see it. The lease ends with the turn
        (``append_turn(..., lease_owner=owner)`` or ``release_lease``), or ``lease_seconds``
        after its last renewal if its owner died.
        """
        validate_session_id(session_id)
        now = datetime.now(UTC)
        with self._translate_errors(), self._transaction() as conn:
            row = conn.execute(
                "SELECT owner, expires_at FROM session_leases WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is not None and row[0] != owner and _parse_time(row[1]) > now:
                return None
            conn.execute(
                "INSERT OR REPLACE INTO session_leases (session_id, owner, expires_at) VALUES (?, ?, ?)",
                (session_id, owner, _format_time(now + timedelta(seconds=lease_seconds))),
            )
            return _recent(conn, session_id, max(max_turns, 0))

    def release_lease(self, session_id: str, owner: str) -> None:
        """End ``owner``'s lease on ``session_id`` (a turn that failed or was cancelled)."""
        with self._translate_errors(), self._transaction() as conn:
            conn.execute("DELETE FROM session_leases WHERE session_id = ? AND owner = ?", (session_id, owner))

    def renew_leases(self, owner: str, lease_seconds: float) -> None:
        """Push back the end of every lease ``owner`` holds: it is alive and still writing."""
        until = _format_time(datetime.now(UTC) + timedelta(seconds=lease_seconds))
        with self._translate_errors(), self._transaction() as conn:
            conn.execute("UPDATE session_leases SET expires_at = ? WHERE owner = ?", (until, owner))

    def messages(self, session_id: str) -> list[StoredMessage]:
        """The whole transcript in chronological order.

        Raises ``SessionNotFound`` if there is no such session (a cleared session is
        found, with no messages).
        """
        validate_session_id(session_id)
        with self._transaction("BEGIN") as conn:
            exists = conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
            rows = conn.execute(
                "SELECT role, content, created_at FROM messages WHERE session_id = ? ORDER BY id",
                (session_id,),
            ).fetchall()
        if exists is None:
            raise SessionNotFound(session_id)
        return [_message_from_row(row) for row in rows]

    def session_ids(self, prefix: str = "", limit: int = 100) -> list[str]:
        """Ids starting with ``prefix`` (matched literally), most recently active first."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if prefix == "":
            query = "SELECT id FROM sessions ORDER BY updated_at DESC, id DESC LIMIT ?"
            params: tuple[object, ...] = (limit,)
        else:
            if not isinstance(prefix, str) or _SESSION_ID_RE.fullmatch(prefix) is None:
                return []  # no valid id can start with it
            # A range on the primary key, not LIKE: no wildcards to escape, and
            # case-sensitive like the ids themselves.
            query = (
                "SELECT id FROM sessions WHERE id >= ? AND id < ? ORDER BY updated_at DESC, id DESC LIMIT ?"
            )
            params = (prefix, prefix + _ABOVE_ID_CHARS, limit)
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return [str(row[0]) for row in rows]

    def count_sessions(self) -> int:
        """How many sessions are stored."""
        with self._lock:
            row = self._conn.execute("SELECT count(*) FROM sessions").fetchone()
        return int(row[0])

    # --- writes ---------------------------------------------------------------------

    def append_turn(
        self,
        session_id: str,
        *,
        model: str,
        user: str,
        assistant: str,
        meta: Mapping[str, object] | None = None,
        job_id: str | None = None,
        lease_owner: str | None = None,
    ) -> bool:
        """Store one turn (the user's message and the answer) atomically.

        Creates the session if it does not exist, titled after ``user``. ``meta`` (token
        counts, timings) is stored as JSON with the assistant message, along with
        ``model``. A recorded job ``job_id`` is marked complete, and ``lease_owner``'s lease on
        the session ends, in the same transaction.
        Returns True if this call created the session. Either the whole turn is written
        or, if anything fails, nothing is.
        """
        validate_session_id(session_id)
        # Serialise before the transaction: a value JSON cannot hold fails here, early.
        meta_json = json.dumps({"model": model, **(meta or {})}, ensure_ascii=False)
        now = _now()
        with self._translate_errors(), self._transaction() as conn:
            row = conn.execute(
                "SELECT turn_count, title FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            created = row is None
            if created:
                conn.execute(
                    "INSERT INTO sessions (id, title, model, created_at, updated_at, turn_count)"
                    " VALUES (?, ?, ?, ?, ?, 0)",
                    (session_id, derive_title(user), model, now, now),
                )
                turn = 1
            else:
                turn = int(row[0]) + 1
            self._insert_message(conn, session_id, turn, "user", user, now, None)
            self._insert_message(conn, session_id, turn, "assistant", assistant, now, meta_json)
            conn.execute(
                """
                UPDATE sessions
                SET turn_count = ?, updated_at = ?, model = ?,
                    title = CASE WHEN title = '' THEN ? ELSE title END
                WHERE id = ?
                """,
                (turn, now, model, derive_title(user), session_id),
            )
            if job_id is not None:
                conn.execute(
                    "UPDATE jobs SET status = 'complete', finished_at = ?, heartbeat_at = ? WHERE id = ?",
                    (now, now, job_id),
                )
            if lease_owner is not None:
                conn.execute(
                    "DELETE FROM session_leases WHERE session_id = ? AND owner = ?", (session_id, lease_owner)
                )
        return created

    @staticmethod
    def _insert_message(
        conn: sqlite3.Connection,
        session_id: str,
        turn: int,
        role: str,
        content: str,
        created_at: str,
        meta_json: str | None,
    ) -> None:
        conn.execute(
            "INSERT INTO messages (session_id, turn, role, content, created_at, meta)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (session_id, turn, role, content, created_at, meta_json),
        )

    def remove_last_turn(self, session_id: str, *, drop_session: bool) -> None:
        """Take back the session's newest turn, and the session too when ``drop_session`` (it made it).

        For a turn committed while the host cancelled the request: nobody was told of it.
        """
        validate_session_id(session_id)
        with self._translate_errors(), self._transaction() as conn:
            row = conn.execute("SELECT turn_count FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None or int(row[0]) == 0:
                return
            turn = int(row[0])
            conn.execute("DELETE FROM messages WHERE session_id = ? AND turn = ?", (session_id, turn))
            if drop_session:
                conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            else:
                conn.execute(
                    "UPDATE sessions SET turn_count = ?, updated_at = ? WHERE id = ?",
                    (turn - 1, _now(), session_id),
                )

    def delete_session(self, session_id: str) -> bool:
        """Delete the session and its messages. False if there was no such session."""
        validate_session_id(session_id)
        with self._transaction() as conn:
            cur = conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        return cur.rowcount > 0

    def clear_session(self, session_id: str) -> bool:
        """Drop the session's messages but keep the session. False if there was no such session.

        The turn count goes back to 0 and the title is emptied; the next turn titles it anew.
        """
        validate_session_id(session_id)
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE sessions SET turn_count = 0, title = '', updated_at = ? WHERE id = ?",
                (_now(), session_id),
            )
            if cur.rowcount == 0:
                return False
            conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
        return True

    # --- jobs -----------------------------------------------------------------------

    def record_job(self, job: JobRecord) -> None:
        """Write (or overwrite) a job's record."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO jobs (id, session_id, model, status, owner, requester, started_at,"
                " heartbeat_at, finished_at, expires_at, detail, result)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.session_id,
                    job.model,
                    job.status,
                    job.owner,
                    job.requester,
                    _format_time(job.started_at),
                    _format_time(job.heartbeat_at),
                    _format_time(job.finished_at) if job.finished_at else None,
                    _format_time(job.expires_at) if job.expires_at else None,
                    job.detail,
                    job.result,
                ),
            )

    def finish_job(
        self, job_id: str, status: str, detail: str | None = None, result: str | None = None
    ) -> None:
        """Close a running job's record as ``status``; a finished record is left as it is."""
        now = _now()
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, detail = ?, result = coalesce(?, result), finished_at = ?,"
                " heartbeat_at = ? WHERE id = ? AND status = 'running'",
                (status, detail, result, now, now, job_id),
            )

    def set_job_result(self, job_id: str, result: str) -> None:
        """Keep a finished task's tool result (JSON) with its record."""
        with self._transaction() as conn:
            conn.execute("UPDATE jobs SET result = ? WHERE id = ?", (result, job_id))

    def touch_jobs(self, owner: str) -> None:
        """Refresh the heartbeat of every job ``owner`` is running: it is alive."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET heartbeat_at = ? WHERE owner = ? AND status = 'running'", (_now(), owner)
            )

    def latest_job(self, session_id: str) -> JobRecord | None:
        """The most recently started recorded job of ``session_id``."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE session_id = ? ORDER BY started_at DESC LIMIT 1",
                (session_id,),
            ).fetchone()
        return None if row is None else _job_from_row(row)

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job_from_row(row)

    def last_answer(self, session_id: str) -> tuple[StoredMessage, dict[str, Any]] | None:
        """The session's newest assistant message and its meta (model, token counts)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT role, content, created_at, meta FROM messages"
                " WHERE session_id = ? AND role = 'assistant' ORDER BY id DESC LIMIT 1",
                (session_id,),
            ).fetchone()
        if row is None:
            return None
        try:
            meta = json.loads(row[3]) if row[3] else {}
        except ValueError:
            meta = {}
        return _message_from_row(row[:3]), meta if isinstance(meta, dict) else {}

    def list_tasks(
        self, requester: str, limit: int = 50, cursor: str | None = None, now: datetime | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """One page of ``requester``'s task records not yet expired, oldest first, and the next cursor.

        Running records are listed even past their expiry (they end first). The cursor is
        opaque, as for ``list_sessions``; ``ValueError`` for one this store did not make.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = (
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE requester = ?"
            " AND (expires_at IS NULL OR expires_at >= ? OR status = 'running')"
        )
        params: tuple[object, ...] = (requester, _format_time(now or datetime.now(UTC)))
        if cursor is not None:
            query += " AND (started_at, id) > (?, ?)"
            params += _decode_cursor(cursor)
        query += " ORDER BY started_at, id LIMIT ?"
        with self._lock:
            rows = self._conn.execute(query, (*params, limit + 1)).fetchall()
        records = [_job_from_row(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = _encode_cursor(str(last[5]), str(last[0]))
        return records, next_cursor

    def delete_expired_jobs(self, now: datetime | None = None) -> int:
        """Forget task records whose time to live has passed; returns how many."""
        moment = _format_time(now or datetime.now(UTC))
        with self._transaction() as conn:
            cur = conn.execute(
                "DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at < ? AND status != 'running'",
                (moment,),
            )
        return cur.rowcount


def inspect_database(path: str) -> tuple[bool, str]:
    """Whether the server could use the database at ``path``, and why, without changing anything.

    Creates no directory and no file, writes nothing: a missing file is fine where it could
    be created; an existing one is opened read-only and checked as ``ChatStore.open`` would.
    """
    target = Path(path)
    if not target.exists():
        ancestor = target.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            return False, f"{ancestor} is a file, so {path} cannot be created. Choose another path with --db."
        if not os.access(ancestor, os.W_OK):
            return (
                False,
                f"{ancestor} is not writable (read-only?), so {path} cannot be created. "
                "Fix its permissions, or use another --db.",
            )
        return True, f"{path} does not exist yet; it will be created at the first chat (in {ancestor})"
    if target.is_dir():
        return False, f"{path} is a directory. Point --db / MCP_OLLAMA_DB at a file."
    try:
        conn = sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True)
        try:
            _refuse_foreign(conn, path)
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            count = conn.execute("SELECT count(*) FROM sessions").fetchone()[0] if "sessions" in tables else 0
        finally:
            conn.close()
    except StoreError as exc:
        return False, exc.cause
    except sqlite3.Error as exc:
        return False, describe_sqlite_error(exc, path)
    if not os.access(target, os.W_OK) or not os.access(target.parent, os.W_OK):
        return (
            False,
            f"{path} is read-only: sessions can be read but not saved. "
            "Fix its permissions, or use another --db.",
        )
    return True, f"{path} is a healthy mcp-ollama database ({count} sessions), writable"


class _Unavailable:
    """Stands in for the connection of a store that could not be opened."""

    in_transaction = False

    def __init__(self, error: StoreError) -> None:
        self._error = error

    def execute(self, *args: object) -> NoReturn:
        raise self._error

    def close(self) -> None:
        pass


_FIRST_MIGRATION = "m001_create_sessions_and_messages"


def _refuse_foreign(conn: sqlite3.Connection, path: str) -> None:
    """Raise ``StoreError`` unless the database is empty or ours, and no newer than this code; reads only."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    applied: set[str] = set()
    if "_migrations" in tables:
        applied = {str(name) for (name,) in conn.execute("SELECT name FROM _migrations")}
    # Empty, or only our bookkeeping so far (another process may be creating it right now).
    fresh = tables <= {"_migrations", "sqlite_sequence"} and applied <= {m.__name__ for m in MIGRATIONS}
    if fresh:
        return
    if _FIRST_MIGRATION not in applied:
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise StoreError(
            path,
            f"it is another application's database (tables: {shown}); mcp-ollama left it untouched. "
            "Choose another file with --db / MCP_OLLAMA_DB.",
        )
    unknown = sorted(applied - {m.__name__ for m in MIGRATIONS})
    if unknown:
        raise StoreError(
            path,
            f"a newer version of mcp-ollama has changed it (migrations {', '.join(unknown)} are unknown "
            "to this version), so this version will not write to it. Upgrade mcp-ollama, or choose "
            "another file with --db / MCP_OLLAMA_DB.",
        )


def describe_os_error(exc: OSError, path: str) -> str:
    """One sentence for a person: why the database file or its directory could not be made."""
    where = Path(path).parent
    reason = exc.strerror or str(exc)
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"{reason}: {where} is not writable (read-only?). Make it writable, or use another file (--db)."
        )
    if exc.errno == errno.ENOSPC:
        return f"the disk is full ({reason}). Free some space on the disk holding {where}."
    if isinstance(exc, NotADirectoryError | FileExistsError):
        return (
            f"{reason}: a file stands where a directory of {path} should be. Choose another path with --db."
        )
    return f"{reason}. Check {where}, or choose another file with --db / MCP_OLLAMA_DB."


def describe_sqlite_error(exc: sqlite3.Error, path: str) -> str:
    """One sentence for a person: what SQLite's error means here, and the fix."""
    text = str(exc)
    lowered = text.lower()
    where = Path(path).parent
    if "locked" in lowered or "busy" in lowered:
        return (
            f"another program held it locked for longer than 5 s ({text}). Close the program "
            "using it (a database browser, another server) and try again."
        )
    if "full" in lowered:
        return f"the disk is full ({text}). Free some space on the disk holding {where}."
    if "readonly" in lowered or "read-only" in lowered:
        return f"it is read-only ({text}). Make {path} and {where} writable, or choose another file (--db)."
    if "not a database" in lowered or "malformed" in lowered:
        return (
            f"the file is not a healthy SQLite database ({text}). Move it aside, or choose another "
            "file with --db / MCP_OLLAMA_DB."
        )
    if "unable to open" in lowered:
        return f"it cannot be opened ({text}). Check that {where} exists and is writable, or use --db."
    return f"{text}. Run `mcp-ollama doctor` to check the database."


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply, in order, every migration not yet recorded in ``_migrations``."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for migration in MIGRATIONS:
        name = migration.__name__
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Checked inside the write transaction: another process opening the same
            # new file at the same moment waits here, then sees the migration as done.
            done = conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone()
            if done is None:
                migration(conn)
                conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, _now()))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
