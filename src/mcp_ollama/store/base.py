"""The connection, its lock and its transactions, shared by every part of the store."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import NoReturn, Self

from ..errors import StoreError
from .diagnose import describe_sqlite_error


class StoreBase:
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


class _Unavailable:
    """Stands in for the connection of a store that could not be opened."""

    in_transaction = False

    def __init__(self, error: StoreError) -> None:
        self._error = error

    def execute(self, *args: object) -> NoReturn:
        raise self._error

    def close(self) -> None:
        pass
