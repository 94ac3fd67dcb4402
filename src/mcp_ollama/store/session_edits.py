"""Edits to stored sessions outside a turn: take back the newest turn, delete a session, clear it.

Like ``sessions``, each method takes the public session id and the principal, and reaches only
that principal's rows.
"""

from __future__ import annotations

from .base import StoreBase
from .records import LOCAL, _now, session_key


class SessionEdits(StoreBase):
    """Taking back a turn, deleting and clearing sessions."""

    def remove_last_turn(self, session_id: str, *, drop_session: bool, principal: str = LOCAL) -> None:
        """Take back the session's newest turn, and the session too when ``drop_session`` (it made it).

        For a turn committed while the host cancelled the request: nobody was told of it.
        """
        key = session_key(session_id, principal)
        with self._translate_errors(), self._transaction() as conn:
            row = conn.execute("SELECT turn_count FROM sessions WHERE id = ?", (key,)).fetchone()
            if row is None or int(row[0]) == 0:
                return
            turn = int(row[0])
            conn.execute("DELETE FROM messages WHERE session_id = ? AND turn = ?", (key, turn))
            if drop_session:
                conn.execute("DELETE FROM sessions WHERE id = ?", (key,))
            else:
                conn.execute(
                    "UPDATE sessions SET turn_count = ?, updated_at = ? WHERE id = ?",
                    (turn - 1, _now(), key),
                )

    def delete_session(self, session_id: str, *, principal: str = LOCAL) -> bool:
        """Delete the session and its messages. False if there was no such session."""
        key = session_key(session_id, principal)
        with self._transaction() as conn:
            cur = conn.execute("DELETE FROM sessions WHERE id = ?", (key,))
        return cur.rowcount > 0

    def clear_session(self, session_id: str, *, principal: str = LOCAL) -> bool:
        """Drop the session's messages but keep the session. False if there was no such session.

        The turn count goes back to 0 and the title is emptied; the next turn titles it anew.
        """
        key = session_key(session_id, principal)
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE sessions SET turn_count = 0, title = '', updated_at = ? WHERE id = ?",
                (_now(), key),
            )
            if cur.rowcount == 0:
                return False
            conn.execute("DELETE FROM messages WHERE session_id = ?", (key,))
        return True
