"""Job records: generations that outlived their request, and MCP tasks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .base import StoreBase
from .job_records import _JOB_COLUMNS, JobProgress, JobRecord, _job_from_row, _job_values, encode_progress
from .records import (
    LOCAL,
    StoredMessage,
    _decode_cursor,
    _format_time,
    _message_from_row,
    _now,
    _page,
    session_key,
)


class JobQueries(StoreBase):
    """Job and task records."""

    # --- jobs -----------------------------------------------------------------------

    def record_job(self, job: JobRecord) -> None:
        """Write (or overwrite) a job's record."""
        with self._transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO jobs ({_JOB_COLUMNS}) VALUES ({', '.join(['?'] * 15)})",
                _job_values(job),
            )

    def finish_job(
        self, job_id: str, status: str, detail: str | None = None, result: str | None = None
    ) -> None:
        """Close a running job's record as ``status``; a finished record is left as it is."""
        now = _now()
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, detail = ?, result = coalesce(?, result), finished_at = ?,"
                " heartbeat_at = ?, partial = NULL, progress = NULL WHERE id = ? AND status = 'running'",
                (status, detail, result, now, now, job_id),
            )

    def set_job_result(self, job_id: str, result: str) -> None:
        """Keep a finished task's tool result (JSON) with its record."""
        with self._transaction() as conn:
            conn.execute("UPDATE jobs SET result = ? WHERE id = ?", (result, job_id))

    def save_progress(self, progress: Mapping[str, JobProgress]) -> None:
        """Keep how far each of these running jobs (by id) has got, in one transaction; a job that
        has ended meanwhile keeps its end. Also a heartbeat: their owner is alive."""
        if not progress:
            return
        now = _now()
        rows = [(*encode_progress(p), now, job_id) for job_id, p in progress.items()]
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE jobs SET partial = ?, progress = ?, heartbeat_at = ?"
                " WHERE id = ? AND status = 'running'",
                rows,
            )

    def touch_jobs(self, owner: str) -> None:
        """Refresh the heartbeat of every job ``owner`` is running: it is alive."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET heartbeat_at = ? WHERE owner = ? AND status = 'running'", (_now(), owner)
            )

    def latest_job(self, session_id: str, *, principal: str = LOCAL) -> JobRecord | None:
        """The most recently started recorded job of ``principal``'s ``session_id``."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE session_id = ? ORDER BY started_at DESC LIMIT 1",
                (session_key(session_id, principal),),
            ).fetchone()
        return None if row is None else _job_from_row(row)

    def latest_job_of(self, principal: str = LOCAL) -> JobRecord | None:
        """The most recently started recorded chat job of ``principal``, in any session (no tasks)."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE principal = ? AND requester IS NULL"
                " AND session_id != '' ORDER BY started_at DESC LIMIT 1",
                (principal,),
            ).fetchone()
        return None if row is None else _job_from_row(row)

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job_from_row(row)

    def last_answer(
        self, session_id: str, *, principal: str = LOCAL
    ) -> tuple[StoredMessage, dict[str, Any]] | None:
        """The session's newest assistant message and its meta (model, token counts)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT role, content, created_at, meta FROM messages"
                " WHERE session_id = ? AND role = 'assistant' ORDER BY id DESC LIMIT 1",
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
        """One page of ``requester``'s task records not yet expired, oldest first, and the next cursor.

        Running records are listed even past their expiry (they end first). The cursor is
        opaque, as for ``list_sessions``; ``ValueError`` for one this store did not make.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = (
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE requester = ?"
            " AND (expires_at IS NULL OR expires_at >= ? OR status = 'running')"
        )
        params: tuple[object, ...] = (requester, _format_time(now or datetime.now(UTC)))
        if cursor is not None:
            query += " AND (started_at, id) > (?, ?)"
            params += _decode_cursor(cursor)
        query += " ORDER BY started_at, id LIMIT ?"
        with self._lock:
            rows = self._conn.execute(query, (*params, limit + 1)).fetchall()
        page, next_cursor = _page(rows, limit, time_column=5)
        return [_job_from_row(row) for row in page], next_cursor

    def delete_expired_jobs(self, now: datetime | None = None) -> int:
        """Forget task records whose time to live has passed; returns how many."""
        moment = _format_time(now or datetime.now(UTC))
        with self._transaction() as conn:
            cur = conn.execute(
                "DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at < ? AND status != 'running'",
                (moment,),
            )
        return cur.rowcount
