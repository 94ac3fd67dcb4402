"""Sessions and their messages: every query, the turn's one transaction, and session leases."""

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
    ImageNote,
    SessionInfo,
    StoredMessage,
    _decode_cursor,
    _format_time,
    _message_from_row,
    _now,
    _page,
    _parse_time,
    _recent,
    _session_from_row,
    derive_title,
    encode_image_notes,
    validate_session_id,
)


class SessionQueries(StoreBase):
    """Sessions, messages and leases."""

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
        page, next_cursor = _page(rows, limit, time_column=4)
        return [_session_from_row(row) for row in page], next_cursor

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
                "SELECT role, content, created_at, thinking, images FROM messages"
                " WHERE session_id = ? ORDER BY id",
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
        thinking: str | None = None,
        images: tuple[ImageNote, ...] = (),
    ) -> bool:
        """Store one turn (the user's message and the answer) atomically.

        Creates the session if it does not exist, titled after ``user``. ``meta`` (token
        counts, timings) is stored as JSON with the assistant message, along with
        ``model``; ``thinking`` goes with the answer, ``images`` (notes, not bytes) with the
        user message. A recorded job ``job_id`` is marked complete, and ``lease_owner``'s lease
        on the session ends, in the same transaction.
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
            self._insert_message(conn, session_id, turn, "user", user, now, images=encode_image_notes(images))
            self._insert_message(
                conn, session_id, turn, "assistant", assistant, now, meta_json=meta_json, thinking=thinking
            )
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
