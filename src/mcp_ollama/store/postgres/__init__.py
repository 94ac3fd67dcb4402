"""Chat sessions in one PostgreSQL database, shared by several server replicas.

The same ``Store`` protocol as the SQLite ``ChatStore``, the same migrations numbered and named
alike (``migrations``), every query in ``sessions`` and ``jobs``, the pool and the advisory locks
in ``base``, failures in a sentence in ``diagnose``. Needs the ``postgres`` extra
(``pip install 'mcp-server-ollama[postgres]'``: psycopg 3 and psycopg_pool).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import psycopg
from psycopg_pool import PoolTimeout

from ...errors import StoreError
from ..base import NOT_NOW, NotNow
from .base import CONNECT_TIMEOUT, KEEPALIVES
from .changes import PgChanges
from .clients import PgClientQueries
from .diagnose import describe_pg_error
from .inspect import inspect_postgres
from .jobs import PgJobQueries
from .migrations import MIGRATIONS, migrate

T = TypeVar("T")

__all__ = ["MIGRATIONS", "PostgresStore", "describe_pg_error", "inspect_postgres"]


class PostgresStore(PgJobQueries, PgChanges, PgClientQueries):
    """Chat sessions in PostgreSQL. Make one with ``PostgresStore.open(url)``; close it when done.

    Thread-safe: every method takes a pooled connection for one transaction. Several replicas
    may open the same database: each turn is numbered under the session's row lock, and a
    session's turns are taken one at a time through advisory locks.
    """

    shared_by_replicas = True
    """Several replicas of one server share it (``Store``)."""

    def now_or_not(self, work: Callable[[], T]) -> T | Literal[NotNow.NOT_NOW]:
        """Always ``NOT_NOW``: every call is a round trip to the server, for a worker thread."""
        return NOT_NOW

    def checkpoint_due(self) -> bool:
        """Never: PostgreSQL checkpoints by itself, off our event loop."""
        return False

    def checkpoint(self) -> None:
        """Nothing to do."""

    @classmethod
    def open(cls, url: str, password: str | None = None, *, shown: str | None = None) -> PostgresStore:
        """Connect to ``url`` and bring its schema up to date (creating the tables if needed).

        ``password`` goes to the connection only (it may also come from PGPASSWORD or ~/.pgpass);
        ``shown`` is how errors name the database (default: ``url``, which must hold no password
        then). A schema with someone else's tables named like ours, or that a newer version
        migrated, is refused with ``StoreError`` and left as it was; so is an unreachable server.
        """
        display = shown or url
        kwargs: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "autocommit": True, **KEEPALIVES}
        if password is not None:
            kwargs["password"] = password
        try:
            with psycopg.connect(url, **kwargs) as conn:
                schema = migrate(conn, display)
            return cls(url, password, display, schema)
        except (psycopg.Error, PoolTimeout) as exc:  # PoolTimeout: the pool's first connection
            raise StoreError(display, describe_pg_error(exc)) from exc
