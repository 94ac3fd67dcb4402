"""What the store holds, as plain values: session ids and titles, rows made into records, cursors."""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidSessionId

SESSION_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_SESSION_ID_RE = re.compile(SESSION_ID_PATTERN)
# Every character a valid id may contain sorts below this one (the largest is "z"),
# so ids starting with p are exactly those in the range [p, p + _ABOVE_ID_CHARS).
_ABOVE_ID_CHARS = "\x7f"

TITLE_MAX_CHARS = 60

LOCAL = "local"
"""The principal of every request that does not authenticate: stdio, the shell client."""
PRINCIPAL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"
"""A bearer token's name: never holds the '/' that separates it from a session id in a row key."""
_PRINCIPAL_RE = re.compile(PRINCIPAL_PATTERN)

# Fixed width, UTC, microseconds: these strings sort the same way the instants do.
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME_LENGTH = len("2026-01-01T00:00:00.000000Z")


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


def session_key(session_id: str, principal: str) -> str:
    """The row key of ``principal``'s session ``session_id``: the id itself for ``local`` (so
    every database from before principals keeps its keys), ``principal/id`` for anyone else.

    Two principals may each have a session ``demo``; neither can reach the other's, since every
    query goes through the key, and an id of someone else's is simply not found.
    """
    validate_session_id(session_id)
    if principal == LOCAL:
        return session_id
    if not isinstance(principal, str) or _PRINCIPAL_RE.fullmatch(principal) is None:
        raise ValueError(f"not a principal name: {principal!r}")
    return f"{principal}/{session_id}"


def _public(key: str) -> str:
    """The session id a principal knows, from a row key."""
    return key.rpartition("/")[2]


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
class ImageNote:
    """What the store keeps of an image sent with a message: never its bytes."""

    mime: str
    """``image/png``, ``image/jpeg``, ``image/gif`` or ``image/webp``."""
    size: int
    """Bytes."""
    sha256: str
    """Hex digest of the bytes: the same picture sent twice has the same one."""

    def describe(self) -> str:
        return f"{self.mime}, {self.size:,} bytes, sha256 {self.sha256[:12]}…"


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message of a stored transcript."""

    role: str
    """``"user"`` or ``"assistant"``."""
    content: str
    created_at: datetime
    """When the message was stored (timezone-aware, UTC)."""
    thinking: str | None = None
    """An answer's thinking (a thinking model's reasoning): shown in transcripts, never sent back."""
    images: tuple[ImageNote, ...] = ()
    """Notes of the images a user message carried: shown in transcripts, never sent back."""


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
    principal: str = LOCAL
    """Whose session it is: a token's name over HTTP, ``local`` otherwise."""


def _now() -> str:
    return _format_time(datetime.now(UTC))


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _parse_time(text: str) -> datetime:
    if len(text) == _TIME_LENGTH and text[10] == "T" and text[-1] == "Z":
        # What _format_time writes, read in C: strptime took 15 us a message, most of the time
        # it takes to read a session's history (issue 21). Both give the same aware datetime.
        return datetime.fromisoformat(text)
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


_SESSION_COLUMNS = """
    s.id, s.title, s.model, s.created_at, s.updated_at, s.turn_count,
    (SELECT count(*) FROM messages AS m WHERE m.session_id = s.id), s.principal
"""

_Row = tuple[Any, ...]


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


def _session_from_row(row: _Row) -> SessionInfo:
    return SessionInfo(
        id=_public(row[0]),
        title=row[1],
        model=row[2],
        created_at=_parse_time(row[3]),
        updated_at=_parse_time(row[4]),
        turn_count=int(row[5]),
        message_count=int(row[6]),
        principal=row[7],
    )


def _message_from_row(row: _Row) -> StoredMessage:
    """A message from (role, content, created_at[, thinking, images JSON])."""
    thinking = row[3] if len(row) > 3 else None
    images = _image_notes(row[4]) if len(row) > 4 else ()
    return StoredMessage(
        role=row[0], content=row[1], created_at=_parse_time(row[2]), thinking=thinking, images=images
    )


def encode_image_notes(notes: tuple[ImageNote, ...]) -> str | None:
    if not notes:
        return None
    return json.dumps([{"type": n.mime, "size": n.size, "sha256": n.sha256} for n in notes])


def _image_notes(text: str | None) -> tuple[ImageNote, ...]:
    if not text:
        return ()
    try:
        items = json.loads(text)
        return tuple(ImageNote(str(i["type"]), int(i["size"]), str(i["sha256"])) for i in items)
    except (ValueError, TypeError, KeyError):  # a note is a courtesy; a damaged one is dropped
        return ()


def _encode_cursor(updated_at: str, session_id: str) -> str:
    raw = json.dumps([updated_at, session_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _page(rows: list[_Row], limit: int, time_column: int) -> tuple[list[_Row], str | None]:
    """A keyset page: the first ``limit`` of ``rows`` (fetched ``limit + 1``), and the cursor after them.

    The cursor holds the last row's time (column ``time_column``) and id (column 0).
    """
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], _encode_cursor(str(last[time_column]), str(last[0]))


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
    except (ValueError, RecursionError, binascii.Error, UnicodeDecodeError, InvalidSessionId):
        raise ValueError("invalid cursor") from None
    return updated_at, session_id
