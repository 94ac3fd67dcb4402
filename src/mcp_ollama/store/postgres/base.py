"""The pool, its transactions, and the advisory locks that say who writes a session's turn.

Why psycopg 3 with ``psycopg_pool``, synchronously: the SQLite store is synchronous and the code
above calls every store method through ``anyio.to_thread``; a synchronous driver keeps that one
shape for both backends (one protocol, no second, async, copy of every query), and a worker
thread blocked on a query never stalls the event loop. psycopg is the maintained successor of
psycopg2 with a binary wheel, server-side parameters and a thread-safe pool; asyncpg is
asyncio-only and would need the call sites to change.

Two kinds of connection:

- the **pool** (``POOL_MAX`` at most) for every query; each method holds one for one transaction;
- one **lock connection** per store, holding PostgreSQL session-level advisory locks: one per
  session whose turn this replica is writing (in place of SQLite's lease rows) and one per
  owner (a ``ChatService``) with recorded jobs. When a replica dies, PostgreSQL ends its
  connection and drops its locks at once: the session is free for the next writer, and the
  owner's running jobs read as interrupted (``jobs.PgJobQueries``) without waiting for a heartbeat
  to go stale.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import StoreError
from .diagnose import describe_pg_error

logger = logging.getLogger(__name__)

POOL_MAX = 16
"""Connections one store (one replica) opens at most; a call that finds all busy waits."""
POOL_WAIT = 10.0
"""Seconds a call waits for a free connection before it fails."""
CONNECT_TIMEOUT = 5
"""Seconds to wait for PostgreSQL to accept a connection."""
# TCP keepalives, so that a half-open lock connection (a replica's network cut) is noticed.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def lock_key(kind: str, scope: str, name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` of ``kind`` in ``scope`` (the schema).

    Advisory locks are per database, not per schema: the schema is part of the key, so two
    deployments in two schemas of one database never block each other.
    """
    digest = hashlib.blake2b(f"mcp-ollama/{kind}/{scope}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgBase:
    """The pool, the lock connection and the schema they work in. Use ``PostgresStore.open``."""

    def __init__(self, conninfo: str, password: str | None, path: str, schema: str) -> None:
        """Open the pool and the lock connection on an already migrated database."""
        self.path = path
        self._schema = schema
        self._kwargs: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, **KEEPALIVES}
        if password is not None:
            self._kwargs["password"] = password
        self._conninfo = conninfo
        self._pool = ConnectionPool(
            conninfo,
            kwargs={**self._kwargs, "autocommit": True},
            min_size=1,
            max_size=POOL_MAX,
            timeout=POOL_WAIT,
            check=ConnectionPool.check_connection,  # a connection PostgreSQL closed is replaced, not used
            name="mcp-ollama",
            open=False,
        )
        self._locks_lock = threading.Lock()
        self._held: dict[int, str] = {}
        """Session lock key -> the owner writing that session's turn now."""
        self._owners: set[str] = set()
        """Owners whose liveness lock the lock connection holds."""
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._listen_conn: psycopg.Connection[Any] | None = None
        """LISTENs for the changes other replicas publish (``changes.PgChanges``), once asked."""
        self._replica = uuid.uuid4().hex
        """This store among the replicas: what it publishes, it does not hear back."""
        self._channel = "mcp_ollama_" + hashlib.blake2b(schema.encode(), digest_size=8).hexdigest()
        """The NOTIFY channel of the replicas sharing this schema."""
        self._closed = False
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT * 2)
            self._lock_conn = self._connect()
        except BaseException:
            self._pool.close()
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (locks, LISTEN) that PostgreSQL drops soon after its peer is gone.

        The server's keepalives, set for this session: with the OS defaults (two hours) a replica
        whose network was cut would keep its locks that long; with these, about 25 s.
        """
        conn = psycopg.connect(self._conninfo, autocommit=True, **self._kwargs)
        try:
            for name in ("idle", "interval", "count"):
                conn.execute(f"SET tcp_keepalives_{name} = {KEEPALIVES['keepalives_' + name]}")
        except psycopg.Error:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close the pool and the lock connection (releasing every lock). Safe to call twice."""
        with self._locks_lock:
            self._closed = True
            for conn in (self._lock_conn, self._listen_conn):
                if conn is not None:
                    conn.close()
            self._lock_conn = self._listen_conn = None
            self._held.clear()
            self._owners.clear()
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- queries ------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> StoreError:
        return StoreError(self.path, describe_pg_error(exc))

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection running the block in one transaction; rolled back if it raises.

        PostgreSQL's failures come out as ``StoreError`` saying what happened and what to do.
        """
        if self._closed:
            raise StoreError(self.path, "the store is closed.")
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._fail(exc) from exc

    # --- advisory locks -----------------------------------------------------------------

    def _on_lock_conn(self, sql: str, key: int) -> bool:
        """Run ``SELECT fn(key)`` on the lock connection (lock held); reconnects once if it broke."""
        for attempt in (1, 2):
            try:
                if self._lock_conn is None or self._lock_conn.closed:
                    self._reconnect_locks()
                assert self._lock_conn is not None
                row = self._lock_conn.execute(sql, (key,)).fetchone()
                return bool(row[0]) if row is not None else False
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise self._fail(exc) from exc
                logger.warning("the PostgreSQL lock connection broke; reconnecting: %s", exc)
                self._lock_conn = None
        raise AssertionError("unreachable")

    def _reconnect_locks(self) -> None:
        """A new lock connection: the old one's locks are gone; take back what we still can."""
        if self._closed:
            raise StoreError(self.path, "the store is closed.")
        held, self._held = self._held, {}
        self._lock_conn = self._connect()
        for owner in self._owners:
            self._lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (self._owner_key(owner),))
        for key, owner in held.items():
            taken = self._lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if taken is not None and taken[0]:
                self._held[key] = owner

    def _owner_key(self, owner: str) -> int:
        return lock_key("owner", self._schema, owner)

    def _session_key(self, key: str) -> int:
        return lock_key("session", self._schema, key)

    def _hold_owner(self, owner: str) -> None:
        """Take ``owner``'s liveness lock (once): while this replica lives, its jobs are alive."""
        with self._locks_lock:
            if owner not in self._owners:
                self._on_lock_conn("SELECT pg_try_advisory_lock(%s)", self._owner_key(owner))
                self._owners.add(owner)

    def _hold_session(self, key: str, owner: str) -> bool:
        """Take session ``key`` for ``owner``; False while another owner (here or elsewhere) has it."""
        lock = self._session_key(key)
        with self._locks_lock:
            holder = self._held.get(lock)
            if holder is not None:
                return holder == owner
            if not self._on_lock_conn("SELECT pg_try_advisory_lock(%s)", lock):
                return False
            self._held[lock] = owner
            return True

    def _release_session(self, key: str, owner: str) -> None:
        """Give session ``key`` back if ``owner`` holds it."""
        lock = self._session_key(key)
        with self._locks_lock:
            if self._held.get(lock) != owner:
                return
            del self._held[lock]
            if self._lock_conn is not None and not self._lock_conn.closed:
                try:
                    self._lock_conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))
                except psycopg.OperationalError:  # the connection is gone, and the lock with it
                    self._lock_conn = None

    def _ping_locks(self) -> None:
        """Check the lock connection; after a break, reconnect and take back what we can."""
        with self._locks_lock:
            if self._closed:
                return
            try:
                if self._lock_conn is None or self._lock_conn.closed:
                    self._reconnect_locks()
                else:
                    self._lock_conn.execute("SELECT 1")
            except psycopg.OperationalError as exc:
                logger.warning("the PostgreSQL lock connection broke; reconnecting: %s", exc)
                self._lock_conn = None
                try:
                    self._reconnect_locks()
                except psycopg.Error as again:
                    raise self._fail(again) from again

    def _owners_alive(self, conn: psycopg.Connection[Any], owners: set[str]) -> set[str]:
        """Which of ``owners`` some replica's lock connection holds the liveness lock of."""
        if not owners:
            return set()
        if owners <= self._owners:
            return owners
        rows = conn.execute(
            "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory'"
            " AND objsubid = 1 AND granted AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
        held = {(int(classid) << 32) | int(objid) for classid, objid in rows}
        return {o for o in owners if o in self._owners or self._owner_key(o) & 0xFFFFFFFFFFFFFFFF in held}
