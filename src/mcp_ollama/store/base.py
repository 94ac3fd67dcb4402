"""The connection, its lock and its transactions, shared by every part of the store.

Work on the event loop (``now_or_not``): a turn's store work takes tens of microseconds, while
handing it to a worker thread costs more than that and, under load, makes the event loop and the
worker fight over the GIL (issue 21: 1.25x instead of 1.5x the floor's p50 with 50 HTTP clients).
So a short piece of work runs where it is asked, unless it would have to wait: for the store's
lock (a thread is using the connection) or for SQLite's (another process is writing). Then it says
``NOT_NOW``, having changed nothing, and the caller runs it in a thread, where waiting is harmless
(``core.store_calls.run_store``). Checkpoints, the one write that syncs to disk, run in a thread as
well: after a write in a thread, or in the background (``core.store_calls.keep_checkpointing``).
"""

from __future__ import annotations

import enum
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Literal, NoReturn, Self, TypeVar

from ..errors import StoreError
from .diagnose import describe_sqlite_error

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
"""How long a write in a worker thread waits for another process's write to end."""
CHECKPOINT_EVERY = 256
"""Transactions between checkpoints of the write-ahead log (SQLite's own would sync on the loop)."""


class NotNow(enum.Enum):
    """``now_or_not``'s answer when the work would have had to wait: run it in a thread."""

    NOT_NOW = "not now"


NOT_NOW: Literal[NotNow.NOT_NOW] = NotNow.NOT_NOW


class _WouldWait(Exception):
    """SQLite is busy (another process writes) and nothing of the work is stored yet."""


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class StoreBase:
    """Chat sessions in SQLite. Make one with ``ChatStore.open(path)``; close it when done.

    Every method takes the store's lock, so one store may be shared between threads.
    Several processes may open the same file: writes are serialised by SQLite's own
    locking (``BEGIN IMMEDIATE`` plus a busy timeout).
    """

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        """Wrap an open, migrated connection. Use ``ChatStore.open`` instead."""
        self._conn = conn
        self._lock = threading.RLock()  # reentrant: now_or_not holds it around the work's own use
        self.path = path
        self._quick_in: int | None = None
        """The thread inside ``now_or_not`` (the event loop's), if any: for it, SQLite waits for
        nobody and a busy database means ``_WouldWait``. A worker thread that fails while the loop
        is inside must not take the loop's failure for its own, hence a thread and not a flag."""
        self._commits = 0
        """Transactions committed in the current ``now_or_not`` (0: nothing stored yet)."""
        self._since_checkpoint = 0

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

    def now_or_not(self, work: Callable[[], T]) -> T | Literal[NotNow.NOT_NOW]:
        """``work()`` here and now, if that means waiting for nobody; else ``NOT_NOW``, having
        changed nothing. For short work on the event loop; ``core.store_calls.run_store`` calls it."""
        if isinstance(self._conn, _Unavailable):
            return work()  # it raises at once
        if not self._lock.acquire(blocking=False):
            return NOT_NOW  # a worker thread is using the connection
        try:
            if self._quick:  # already inside now_or_not (the work called it again): just run it
                return work()
            self._conn.execute("PRAGMA busy_timeout = 0")
            self._quick_in, self._commits = threading.get_ident(), 0
            try:
                return work()
            except _WouldWait:
                return NOT_NOW
            finally:
                self._quick_in = None
                self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        finally:
            self._lock.release()

    @property
    def _quick(self) -> bool:
        return self._quick_in == threading.get_ident()

    def checkpoint_due(self) -> bool:
        """Whether enough has been written since the last ``checkpoint``."""
        return self._since_checkpoint >= CHECKPOINT_EVERY

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database (in a thread: it syncs to disk). Never raises:
        a checkpoint that cannot run now runs next time, and SQLite's own on the last close."""
        with self._lock:
            self._since_checkpoint = 0
            with suppress(sqlite3.Error, StoreError):
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """SQLite's failures as ``StoreError``, saying what happened and what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            if self._quick and self._commits == 0 and _is_busy(exc):
                raise _WouldWait from exc
            raise StoreError(self.path, describe_sqlite_error(exc, self.path)) from exc

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """Hold the lock and run the block in one transaction; roll back if it raises."""
        with self._lock:
            conn = self._conn
            self._begin(conn, begin)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._commits += 1
            self._since_checkpoint += 1
        if not self._quick and self.checkpoint_due():
            self.checkpoint()  # in a thread already

    def _begin(self, conn: sqlite3.Connection, begin: str) -> None:
        try:
            conn.execute(begin)
        except sqlite3.OperationalError as exc:
            if not (self._quick and _is_busy(exc)):
                raise
            if self._commits == 0:
                raise _WouldWait from exc
            # Part of the work is stored already, so it cannot start again in a thread: wait here.
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute(begin)


class _Unavailable:
    """Stands in for the connection of a store that could not be opened."""

    in_transaction = False

    def __init__(self, error: StoreError) -> None:
        self._error = error

    def execute(self, *args: object) -> NoReturn:
        raise self._error

    def close(self) -> None:
        pass
