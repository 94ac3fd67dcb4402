"""Sessions and their messages: every query, the turn's one transaction, and session leases (taking
back a turn, deleting and clearing a session are in ``session_edits``).

Every session belongs to a principal (``LOCAL`` unless a caller says otherwise); each method
takes the public session id and the principal, and reaches only that principal's rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from ..errors import SessionNotFound
from .base import StoreBase
from .records import (
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
    _parse_time,
    _public,
    _recent,
    _session_from_row,
    derive_title,
    encode_image_notes,
    session_key,
)


class SessionQueries(StoreBase):
    """Sessions, messages and leases."""

    # --- reads ----------------------------------------------------------------------

    def get_session(self, session_id: str, *, principal: str = LOCAL) -> SessionInfo | None:
        """The session's summary, or None if ``principal`` has no such session."""
        key = session_key(session_id, principal)
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions AS s WHERE s.id = ?", (key,)
            ).fetchone()
        return None if row is None else _session_from_row(row)

    def list_sessions(
        self, limit: int = 50, cursor: str | None = None, *, principal: str = LOCAL
    ) -> tuple[list[SessionInfo], str | None]:
        """One page of ``principal``'s sessions, most recently active first, and the next cursor.

        The cursor is opaque; pass back what the previous call returned. It is None when
        there are no more sessions. Sessions created between pages show up only on a new
        first page; a session updated between pages may move to an earlier page.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        session_key("x", principal)  # refuses a malformed principal
        query = f"SELECT {_SESSION_COLUMNS} FROM sessions AS s WHERE s.principal = ?"
        params: tuple[object, ...] = (principal,)
        if cursor is not None:
            # Keyset pagination: seek straight to the last row seen in the index,
            # so page 1000 costs the same as page 1 (OFFSET would scan the skipped rows).
            query += " AND (s.updated_at, s.id) < (?, ?)"
            params += _decode_cursor(cursor)
        query += " ORDER BY s.updated_at DESC, s.id DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(query, (*params, limit + 1)).fetchall()
        page, next_cursor = _page(rows, limit, time_column=4)
        return [_session_from_row(row) for row in page], next_cursor

    def recent_messages(
        self, session_id: str, max_turns: int, *, principal: str = LOCAL
    ) -> list[StoredMessage]:
        """The last ``max_turns`` turns in chronological order; empty for an unknown session."""
        key = session_key(session_id, principal)
        if max_turns < 0:
            raise ValueError("max_turns must not be negative")
        if max_turns == 0:
            return []  # LIMIT 0 would do, but a negative LIMIT means "no limit" in SQLite
        with self._lock:
            return _recent(self._conn, key, max_turns)

    def begin_turn(
        self, session_id: str, owner: str, max_turns: int, lease_seconds: float, *, principal: str = LOCAL
    ) -> list[StoredMessage] | None:
        """Take ``session_id``'s lease for ``owner`` and read its last ``max_turns`` turns: one transaction.

        ``None`` while another live process holds the lease: it is writing a turn of this
        session, and the next turn must see it. The lease ends with the turn
        (``append_turn(..., lease_owner=owner)`` or ``release_lease``), or ``lease_seconds``
        after its last renewal if its owner died.
        """
        key = session_key(session_id, principal)
        now = datetime.now(UTC)
        with self._translate_errors(), self._transaction() as conn:
            row = conn.execute(
                "SELECT owner, expires_at FROM session_leases WHERE session_id = ?", (key,)
            ).fetchone()
            if row is not None and row[0] != owner and _parse_time(row[1]) > now:
                return None
            conn.execute(
                "INSERT OR REPLACE INTO session_leases (session_id, owner, expires_at) VALUES (?, ?, ?)",
                (key, owner, _format_time(now + timedelta(seconds=lease_seconds))),
            )
            return _recent(conn, key, max(max_turns, 0))

    def release_lease(self, session_id: str, owner: str, *, principal: str = LOCAL) -> None:
        """End ``owner``'s lease on ``session_id`` (a turn that failed or was cancelled)."""
        key = session_key(session_id, principal)
        with self._translate_errors(), self._transaction() as conn:
            conn.execute("DELETE FROM session_leases WHERE session_id = ? AND owner = ?", (key, owner))

    def renew_leases(self, owner: str, lease_seconds: float) -> None:
        """Push back the end of every lease ``owner`` holds: it is alive and still writing."""
        until = _format_time(datetime.now(UTC) + timedelta(seconds=lease_seconds))
        with self._translate_errors(), self._transaction() as conn:
            conn.execute("UPDATE session_leases SET expires_at = ? WHERE owner = ?", (until, owner))

    def messages(self, session_id: str, *, principal: str = LOCAL) -> list[StoredMessage]:
        """The whole transcript in chronological order.

        Raises ``SessionNotFound`` if there is no such session (a cleared session is
        found, with no messages).
        """
        key = session_key(session_id, principal)
        with self._transaction("BEGIN") as conn:
            exists = conn.execute("SELECT 1 FROM sessions WHERE id = ?", (key,)).fetchone()
            rows = conn.execute(
                "SELECT role, content, created_at, thinking, images FROM messages"
                " WHERE session_id = ? ORDER BY id",
                (key,),
            ).fetchall()
        if exists is None:
            raise SessionNotFound(session_id)
        return [_message_from_row(row) for row in rows]

    def session_ids(self, prefix: str = "", limit: int = 100, *, principal: str = LOCAL) -> list[str]:
        """``principal``'s ids starting with ``prefix`` (matched literally), most recently active first."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        scope = session_key("x", principal)[:-1]  # '' for local, 'name/' for anyone else
        if prefix == "":
            query = "SELECT id FROM sessions WHERE principal = ? ORDER BY updated_at DESC, id DESC LIMIT ?"
            params: tuple[object, ...] = (principal, limit)
        else:
            if not isinstance(prefix, str) or _SESSION_ID_RE.fullmatch(prefix) is None:
                return []  # no valid id can start with it
            # A range on the primary key, not LIKE: no wildcards to escape, and
            # case-sensitive like the ids themselves.
            query = (
                "SELECT id FROM sessions WHERE id >= ? AND id < ? AND principal = ?"
                " ORDER BY updated_at DESC, id DESC LIMIT ?"
            )
            params = (scope + prefix, scope + prefix + _ABOVE_ID_CHARS, principal, limit)
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return [_public(str(row[0])) for row in rows]

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
        thinking: str | None = None,
        images: tuple[ImageNote, ...] = (),
        principal: str = LOCAL,
        asked_at: datetime | None = None,
    ) -> bool:
        """Store one turn (the user's message and the answer) atomically.

        Creates the session if it does not exist, titled after ``user``. ``meta`` (token
        counts, timings) is stored as JSON with the assistant message, along with
        ``model``; ``thinking`` goes with the answer, ``images`` (notes, not bytes) with the
        user message, dated ``asked_at`` (when it was sent; default now, as the answer is). A
        recorded job ``job_id`` is marked complete, and ``lease_owner``'s lease on the session
        ends, in the same transaction.
        Returns True if this call created the session. Either the whole turn is written
        or, if anything fails, nothing is.
        """
        key = session_key(session_id, principal)
        # Serialise before the transaction: a value JSON cannot hold fails here, early.
        meta_json = json.dumps({"model": model, **(meta or {})}, ensure_ascii=False)
        now = _now()
        asked = min(_format_time(asked_at), now) if asked_at is not None else now
        with self._translate_errors(), self._transaction() as conn:
            row = conn.execute("SELECT turn_count, title FROM sessions WHERE id = ?", (key,)).fetchone()
            created = row is None
            if created:
                conn.execute(
                    "INSERT INTO sessions (id, title, model, created_at, updated_at, turn_count, principal)"
                    " VALUES (?, ?, ?, ?, ?, 0, ?)",
                    (key, derive_title(user), model, now, now, principal),
                )
                turn = 1
            else:
                turn = int(row[0]) + 1
            self._insert_message(conn, key, turn, "user", user, asked, images=encode_image_notes(images))
            self._insert_message(
                conn, key, turn, "assistant", assistant, now, meta_json=meta_json, thinking=thinking
            )
            conn.execute(
                """
                UPDATE sessions
                SET turn_count = ?, updated_at = ?, model = ?,
                    title = CASE WHEN title = '' THEN ? ELSE title END
                WHERE id = ?
                """,
                (turn, now, model, derive_title(user), key),
            )
            if job_id is not None:
                conn.execute(
                    "UPDATE jobs SET status = 'complete', finished_at = ?, heartbeat_at = ?, partial = NULL,"
                    " progress = NULL WHERE id = ?",
                    (now, now, job_id),
                )
            if lease_owner is not None:
                conn.execute(
                    "DELETE FROM session_leases WHERE session_id = ? AND owner = ?", (key, lease_owner)
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
        *,
        meta_json: str | None = None,
        thinking: str | None = None,
        images: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO messages (session_id, turn, role, content, created_at, meta, thinking, images)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, turn, role, content, created_at, meta_json, thinking, images),
        )
