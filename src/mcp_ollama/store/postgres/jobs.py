"""Job records in PostgreSQL: generations that outlived their request, and MCP tasks.

The same methods as the SQLite store's ``jobs``. One thing more: a running record whose owner's
liveness lock no replica holds (``base``) belongs to a replica that died, so reading it marks it
interrupted, at once, instead of after its heartbeat goes stale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..job_records import _JOB_COLUMNS, JobProgress, JobRecord, _job_from_row, _job_values, encode_progress
from ..records import (
    LOCAL,
    StoredMessage,
    _decode_cursor,
    _format_time,
    _message_from_row,
    _now,
    _page,
    session_key,
)
from .sessions import PgSessionQueries, _text

Conn = Any

DEAD_OWNER = "the server replica running it stopped before the answer was complete"
"""A dead replica's running job's detail, once another replica reads it."""

_STATUS = 3
_OWNER = 4


class PgJobQueries(PgSessionQueries):
    """Job and task records."""

    def record_job(self, job: JobRecord) -> None:
        if job.status == "running":
            self._hold_owner(job.owner)  # before the row exists: nobody reads it as a dead owner's
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({', '.join(['%s'] * 15)})"
                " ON CONFLICT (id) DO UPDATE SET session_id = EXCLUDED.session_id, model = EXCLUDED.model,"
                " status = EXCLUDED.status, owner = EXCLUDED.owner, started_at = EXCLUDED.started_at,"
                " heartbeat_at = EXCLUDED.heartbeat_at, requester = EXCLUDED.requester,"
                " finished_at = EXCLUDED.finished_at, expires_at = EXCLUDED.expires_at,"
                " detail = EXCLUDED.detail, result = EXCLUDED.result, principal = EXCLUDED.principal,"
                " partial = EXCLUDED.partial, progress = EXCLUDED.progress",
                _job_values(job, _pg_progress),
            )

    def finish_job(
        self, job_id: str, status: str, detail: str | None = None, result: str | None = None
    ) -> None:
        now = _now()
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = %s, detail = %s, result = coalesce(%s, result), finished_at = %s,"
                " heartbeat_at = %s, partial = NULL, progress = NULL WHERE id = %s AND status = 'running'",
                (status, detail, result, now, now, job_id),
            )

    def set_job_result(self, job_id: str, result: str) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE jobs SET result = %s WHERE id = %s", (result, job_id))

    def save_progress(self, progress: Mapping[str, JobProgress]) -> None:
        if not progress:
            return
        now = _now()
        rows = [(*_pg_progress(p), now, job_id) for job_id, p in progress.items()]
        with self._transaction() as conn, conn.cursor() as cur:
            cur.executemany(
                "UPDATE jobs SET partial = %s, progress = %s, heartbeat_at = %s"
                " WHERE id = %s AND status = 'running'",
                rows,
            )

    def touch_jobs(self, owner: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET heartbeat_at = %s WHERE owner = %s AND status = 'running'", (_now(), owner)
            )

    def latest_job(self, session_id: str, *, principal: str = LOCAL) -> JobRecord | None:
        key = session_key(session_id, principal)
        query = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE session_id = %s ORDER BY started_at DESC LIMIT 1"
        with self._transaction() as conn:
            rows = self._settle(conn, query, (key,))
        return _job_from_row(rows[0]) if rows else None

    def latest_job_of(self, principal: str = LOCAL) -> JobRecord | None:
        query = (
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE principal = %s AND requester IS NULL"
            " AND session_id != '' ORDER BY started_at DESC LIMIT 1"
        )
        with self._transaction() as conn:
            rows = self._settle(conn, query, (principal,))
        return _job_from_row(rows[0]) if rows else None

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._transaction() as conn:
            rows = self._settle(conn, f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,))
        return _job_from_row(rows[0]) if rows else None

    def last_answer(
        self, session_id: str, *, principal: str = LOCAL
    ) -> tuple[StoredMessage, dict[str, Any]] | None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT role, content, created_at, meta FROM messages"
                " WHERE session_id = %s AND role = 'assistant' ORDER BY id DESC LIMIT 1",
                (session_key(session_id, principal),),
            ).fetchone()
        if row is None:
            return None
        try:
            meta = json.loads(row[3]) if row[3] else {}
        except ValueError:
            meta = {}
        return _message_from_row(row[:3]), meta if isinstance(meta, dict) else {}

    def list_tasks(
        self, requester: str, limit: int = 50, cursor: str | None = None, now: datetime | None = None
    ) -> tuple[list[JobRecord], str | None]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = (
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE requester = %s"
            " AND (expires_at IS NULL OR expires_at >= %s OR status = 'running')"
        )
        params: tuple[object, ...] = (requester, _format_time(now or datetime.now(UTC)))
        if cursor is not None:
            query += " AND (started_at, id) > (%s, %s)"
            params += _decode_cursor(cursor)
        query += " ORDER BY started_at, id LIMIT %s"
        with self._transaction() as conn:
            rows = self._settle(conn, query, (*params, limit + 1))
        page, next_cursor = _page(rows, limit, time_column=5)
        return [_job_from_row(row) for row in page], next_cursor

    def delete_expired_jobs(self, now: datetime | None = None) -> int:
        moment = _format_time(now or datetime.now(UTC))
        with self._transaction() as conn:
            deleted = conn.execute(
                "DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at < %s AND status != 'running'",
                (moment,),
            ).rowcount
        return int(deleted)

    def _settle(self, conn: Conn, query: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        """``query``'s job rows, after marking interrupted the running ones whose owner died."""
        rows: list[tuple[Any, ...]] = conn.execute(query, params).fetchall()
        running = {str(row[_OWNER]) for row in rows if row[_STATUS] == "running"}
        dead = running - self._owners_alive(conn, running)
        if not dead:
            return rows
        now = _now()
        conn.execute(
            "UPDATE jobs SET status = 'interrupted', detail = %s, finished_at = %s, partial = NULL,"
            " progress = NULL WHERE status = 'running' AND owner = ANY(%s)",
            (DEAD_OWNER, now, sorted(dead)),
        )
        return [
            _interrupted(row, now) if row[_STATUS] == "running" and row[_OWNER] in dead else row
            for row in rows
        ]


def _interrupted(row: tuple[Any, ...], now: str) -> tuple[Any, ...]:
    """A dead owner's running row as ``_settle``'s UPDATE left it."""
    ended = list(row)
    ended[_STATUS], ended[8], ended[10] = "interrupted", now, DEAD_OWNER  # status, finished_at, detail
    ended[13] = ended[14] = None  # partial, progress
    return tuple(ended)


def _pg_progress(progress: JobProgress | None) -> tuple[str | None, str | None]:
    """``encode_progress``, with NUL (which PostgreSQL text cannot hold) as U+FFFD."""
    partial, rest = encode_progress(progress)
    return (_text(partial) if partial is not None else None), rest
