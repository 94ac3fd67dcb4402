"""Sessions and their messages in PostgreSQL: every query, the turn's one transaction, session locks.

The same methods, arguments and answers as the SQLite store's ``sessions``; see its docstrings.
A turn's transaction takes the session's row lock (``SELECT … FOR UPDATE``) before it numbers
the turn, so writers on any replica store each turn once, numbered one after another. Who may
write the next turn is an advisory lock on the store's lock connection (``base``), held from
``begin_turn`` until the turn is stored or given up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...errors import SessionNotFound
from ..records import (
    _ABOVE_ID_CHARS,
    _SESSION_COLUMNS,
    _SESSION_ID_RE,
    LOCAL,
    ImageNote,
    SessionInfo,
    StoredMessage,
    _decode_cursor,
    _format_time,
    _message_from_row,
    _now,
    _page,
    _public,
    _session_from_row,
    derive_title,
    encode_image_notes,
    session_key,
)
from .base import PgBase

Conn = Any  # psycopg.Connection[Any]: kept loose so the row tuples stay plain

_NEW_SESSION = (
    "INSERT INTO sessions (id, title, model, created_at, updated_at, turn_count, principal)"
    " VALUES (%s, %s, %s, %s, %s, 0, %s)"
)


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: it is stored as U+FFFD (SQLite keeps it)."""
    return value.replace("\x00", "\ufffd")


def _recent(conn: Conn, key: str, max_turns: int) -> list[StoredMessage]:
    if max_turns <= 0:
        return []
    # Every turn is exactly two messages (written in one transaction): the last 2 * max_turns
    # rows are the last max_turns turns, read backwards along idx_messages_session_id.
    rows = conn.execute(
        """
        SELECT role, content, created_at FROM (
            SELECT id, role, content, created_at FROM messages
            WHERE session_id = %s ORDER BY id DESC LIMIT %s
        ) AS newest ORDER BY id
        """,
        (key, 2 * max_turns),
    ).fetchall()
    return [_message_from_row(row) for row in rows]


class PgSessionQueries(PgBase):
    """Sessions, messages and who writes a session's turn."""

    # --- reads ----------------------------------------------------------------------

    def get_session(self, session_id: str, *, principal: str = LOCAL) -> SessionInfo | None:
        key = session_key(session_id, principal)
        with self._transaction() as conn:
            row = conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions AS s WHERE s.id = %s", (key,)
            ).fetchone()
        return None if row is None else _session_from_row(row)

    def list_sessions(
        self, limit: int = 50, cursor: str | None = None, *, principal: str = LOCAL
    ) -> tuple[list[SessionInfo], str | None]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        session_key("x", principal)  # refuses a malformed principal
        query = f"SELECT {_SESSION_COLUMNS} FROM sessions AS s WHERE s.principal = %s"
        params: tuple[object, ...] = (principal,)
        if cursor is not None:
            query += " AND (s.updated_at, s.id) < (%s, %s)"
            params += _decode_cursor(cursor)
        query += " ORDER BY s.updated_at DESC, s.id DESC LIMIT %s"
        with self._transaction() as conn:
            rows = conn.execute(query, (*params, limit + 1)).fetchall()
        page, next_cursor = _page(rows, limit, time_column=4)
        return [_session_from_row(row) for row in page], next_cursor

    def recent_messages(
        self, session_id: str, max_turns: int, *, principal: str = LOCAL
    ) -> list[StoredMessage]:
        key = session_key(session_id, principal)
        if max_turns < 0:
            raise ValueError("max_turns must not be negative")
        with self._transaction() as conn:
            return _recent(conn, key, max_turns)

    def begin_turn(
        self, session_id: str, owner: str, max_turns: int, lease_seconds: float, *, principal: str = LOCAL
    ) -> list[StoredMessage] | None:
        """Take the session's advisory lock for ``owner``, then read its last ``max_turns`` turns.

        ``None`` while another owner holds it (on this replica or another). The lock is taken
        before the read and given back only after the turn's commit, so the next writer always
        sees this turn. ``lease_seconds`` is not needed: a dead replica's connection, and its
        locks, end with it.
        """
        key = session_key(session_id, principal)
        self._hold_owner(owner)
        if not self._hold_session(key, owner):
            return None
        try:
            with self._transaction() as conn:
                return _recent(conn, key, max(max_turns, 0))
        except BaseException:
            self._release_session(key, owner)
            raise

    def release_lease(self, session_id: str, owner: str, *, principal: str = LOCAL) -> None:
        self._release_session(session_key(session_id, principal), owner)

    def renew_leases(self, owner: str, lease_seconds: float) -> None:
        """Nothing to renew (the locks last as long as the connection): check the connection instead."""
        self._ping_locks()

    def messages(self, session_id: str, *, principal: str = LOCAL) -> list[StoredMessage]:
        key = session_key(session_id, principal)
        with self._transaction() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot for both reads
            exists = conn.execute("SELECT 1 FROM sessions WHERE id = %s", (key,)).fetchone()
            rows = conn.execute(
                "SELECT role, content, created_at, thinking, images FROM messages"
                " WHERE session_id = %s ORDER BY id",
                (key,),
            ).fetchall()
        if exists is None:
            raise SessionNotFound(session_id)
        return [_message_from_row(row) for row in rows]

    def session_ids(self, prefix: str = "", limit: int = 100, *, principal: str = LOCAL) -> list[str]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        scope = session_key("x", principal)[:-1]
        if prefix == "":
            query = "SELECT id FROM sessions WHERE principal = %s ORDER BY updated_at DESC, id DESC LIMIT %s"
            params: tuple[object, ...] = (principal, limit)
        else:
            if not isinstance(prefix, str) or _SESSION_ID_RE.fullmatch(prefix) is None:
                return []
            query = (
                "SELECT id FROM sessions WHERE id >= %s AND id < %s AND principal = %s"
                " ORDER BY updated_at DESC, id DESC LIMIT %s"
            )
            params = (scope + prefix, scope + prefix + _ABOVE_ID_CHARS, principal, limit)
        with self._transaction() as conn:
            rows = conn.execute(query, params).fetchall()
        return [_public(str(row[0])) for row in rows]

    def count_sessions(self) -> int:
        with self._transaction() as conn:
            row = conn.execute("SELECT count(*) FROM sessions").fetchone()
        return int(row[0]) if row else 0

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
        thinking: str | None = None,
        images: tuple[ImageNote, ...] = (),
        principal: str = LOCAL,
        asked_at: datetime | None = None,
    ) -> bool:
        """Store one turn in one transaction, exactly once; True if this call created the session.

        The session row is locked (``FOR UPDATE``) before the turn is numbered, so concurrent
        writers, here or on another replica, get consecutive turns. ``lease_owner``'s advisory
        lock on the session is given back after the commit.
        """
        key = session_key(session_id, principal)
        meta_json = json.dumps({"model": model, **(meta or {})}, ensure_ascii=False)
        user, assistant = _text(user), _text(assistant)
        thinking = _text(thinking) if thinking is not None else None
        now = _now()
        asked = min(_format_time(asked_at), now) if asked_at is not None else now
        try:
            with self._transaction() as conn:
                created = (
                    conn.execute(
                        _NEW_SESSION + " ON CONFLICT (id) DO NOTHING",
                        (key, derive_title(user), _text(model), now, now, principal),
                    ).rowcount
                    == 1
                )
                row = conn.execute(
                    "SELECT turn_count FROM sessions WHERE id = %s FOR UPDATE", (key,)
                ).fetchone()
                if row is None:  # deleted between the two statements: make it again, in this transaction
                    conn.execute(
                        _NEW_SESSION,
                        (key, derive_title(user), _text(model), now, now, principal),
                    )
                    created, row = True, (0,)
                turn = int(row[0]) + 1
                self._insert_message(conn, key, turn, "user", user, asked, images=encode_image_notes(images))
                self._insert_message(
                    conn, key, turn, "assistant", assistant, now, meta_json=meta_json, thinking=thinking
                )
                conn.execute(
                    """
                    UPDATE sessions
                    SET turn_count = %s, updated_at = %s, model = %s,
                        title = CASE WHEN title = '' THEN %s ELSE title END
                    WHERE id = %s
                    """,
                    (turn, now, _text(model), derive_title(user), key),
                )
                if job_id is not None:
                    conn.execute(
                        "UPDATE jobs SET status = 'complete', finished_at = %s, heartbeat_at = %s,"
                        " partial = NULL, progress = NULL WHERE id = %s",
                        (now, now, job_id),
                    )
        finally:
            if lease_owner is not None:
                self._release_session(key, lease_owner)
        return created

    @staticmethod
    def _insert_message(
        conn: Conn,
        session_id: str,
        turn: int,
        role: str,
        content: str,
        created_at: str,
        *,
        meta_json: str | None = None,
        thinking: str | None = None,
        images: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO messages (session_id, turn, role, content, created_at, meta, thinking, images)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (session_id, turn, role, content, created_at, meta_json, thinking, images),
        )

    def remove_last_turn(self, session_id: str, *, drop_session: bool, principal: str = LOCAL) -> None:
        key = session_key(session_id, principal)
        with self._transaction() as conn:
            row = conn.execute("SELECT turn_count FROM sessions WHERE id = %s FOR UPDATE", (key,)).fetchone()
            if row is None or int(row[0]) == 0:
                return
            turn = int(row[0])
            conn.execute("DELETE FROM messages WHERE session_id = %s AND turn = %s", (key, turn))
            if drop_session:
                conn.execute("DELETE FROM sessions WHERE id = %s", (key,))
            else:
                conn.execute(
                    "UPDATE sessions SET turn_count = %s, updated_at = %s WHERE id = %s",
                    (turn - 1, _now(), key),
                )

    def delete_session(self, session_id: str, *, principal: str = LOCAL) -> bool:
        key = session_key(session_id, principal)
        with self._transaction() as conn:
            deleted = conn.execute("DELETE FROM sessions WHERE id = %s", (key,)).rowcount
        return deleted > 0

    def clear_session(self, session_id: str, *, principal: str = LOCAL) -> bool:
        key = session_key(session_id, principal)
        with self._transaction() as conn:
            updated = conn.execute(
                "UPDATE sessions SET turn_count = 0, title = '', updated_at = %s WHERE id = %s", (_now(), key)
            ).rowcount
            if updated == 0:
                return False
            conn.execute("DELETE FROM messages WHERE session_id = %s", (key,))
        return True
