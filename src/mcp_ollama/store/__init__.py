"""Chat sessions and their messages, kept in one SQLite file (or, shared, in PostgreSQL: ``postgres/``).

This package owns the database: ``records`` (ids, titles, rows as records; job records in
``job_records``),
``migrations`` (the schema, append-only, and the check that a file is ours),
``sessions`` and ``jobs`` (every query), ``diagnose`` (what went wrong, in a
sentence), ``base`` (the connection and its transactions). A session is created by
its first turn; each turn is a user message and an assistant message written
together in one transaction, so a session never holds half a turn. Nothing here
knows about MCP, HTTP or Ollama. ``protocol.Store`` is what the code above relies on; both
stores satisfy it, and ``opening.open_store(settings)`` picks one.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import cast

from ..errors import StoreError
from .base import BUSY_TIMEOUT_MS, NOT_NOW, NotNow, _Unavailable
from .clients import ClientQueries
from .diagnose import describe_os_error, describe_sqlite_error, inspect_database
from .job_records import JobProgress, JobRecord
from .jobs import JobQueries
from .migrations import MIGRATIONS, _migrate, _refuse_foreign
from .opening import open_store, unavailable_store, uses_postgres
from .protocol import Change, Store
from .records import (
    LOCAL,
    PRINCIPAL_PATTERN,
    SESSION_ID_PATTERN,
    ImageNote,
    SessionInfo,
    StoredMessage,
    derive_title,
    new_session_id,
    session_key,
    validate_session_id,
)
from .session_edits import SessionEdits
from .sessions import SessionQueries

__all__ = [
    "LOCAL",
    "MIGRATIONS",
    "NOT_NOW",
    "PRINCIPAL_PATTERN",
    "SESSION_ID_PATTERN",
    "Change",
    "ChatStore",
    "ImageNote",
    "JobProgress",
    "JobRecord",
    "NotNow",
    "SessionInfo",
    "Store",
    "StoredMessage",
    "derive_title",
    "describe_sqlite_error",
    "inspect_database",
    "new_session_id",
    "open_store",
    "session_key",
    "unavailable_store",
    "uses_postgres",
    "validate_session_id",
]


class ChatStore(SessionQueries, SessionEdits, JobQueries, ClientQueries):
    """Chat sessions in SQLite. Make one with ``ChatStore.open(path)``; close it when done.

    Every method takes the store's lock, so one store may be shared between threads.
    Several processes may open the same file: writes are serialised by SQLite's own
    locking (``BEGIN IMMEDIATE`` plus a busy timeout).
    """

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

    shared_by_replicas = False
    """Other processes on the file are other hosts' servers, not replicas (``Store``)."""

    def publish(self, change: Change) -> bool:
        """Nothing to do: no other server shares a SQLite file's subscribers."""
        return False

    def changes(self, timeout: float) -> list[Change] | None:
        """None: nobody publishes changes through a SQLite file."""
        return None

    @staticmethod
    def _connect(path: str) -> sqlite3.Connection:
        # isolation_level=None: the sqlite3 module never opens transactions behind our
        # back; we say BEGIN IMMEDIATE / COMMIT ourselves. check_same_thread=False because
        # the store's own lock serialises use across threads.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            # busy_timeout first, so the journal-mode switch and migrations wait for
            # another process instead of failing with "database is locked".
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _refuse_foreign(conn, path)  # before anything writes: a file not ours stays as it was
            conn.execute("PRAGMA journal_mode = WAL")
            # In WAL mode, synchronous=NORMAL never corrupts the database and never loses
            # a committed transaction when the process crashes; only a power loss or OS
            # crash may roll back the last few commits. That is the right trade for chat.
            conn.execute("PRAGMA synchronous = NORMAL")
            # SQLite's own checkpoints run in whichever call commits, which may be on the event
            # loop (StoreBase.now_or_not): the store runs them itself, in a thread (checkpoint).
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn
