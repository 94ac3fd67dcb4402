"""``mcp-ollama db copy``: a SQLite store copied into PostgreSQL; idempotent, resumable, counts checked.

Each session is copied in one PostgreSQL transaction (its row, then all its messages by COPY), so
a copy stopped half-way leaves whole sessions only; running it again skips the sessions already
there as they are in the file and copies the rest. A session that changed in PostgreSQL since
(a turn stored by a replica after the move) is newer there and left alone. Job and task records
are copied once (an id already present is kept). At the end the counts of what was to be copied
are compared on both sides.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import StoreError
from ..job_records import _JOB_COLUMNS
from . import PostgresStore

_SESSION_FIELDS = "id, title, model, created_at, updated_at, turn_count, principal"
_MESSAGE_FIELDS = "session_id, turn, role, content, created_at, meta, thinking, images"


@dataclass
class CopyReport:
    """What ``copy_sqlite`` did."""

    copied: int = 0
    """Sessions written now."""
    unchanged: int = 0
    """Sessions already in PostgreSQL as they are in the file."""
    newer: list[str] = field(default_factory=list)
    """Sessions changed in PostgreSQL since: left alone."""
    messages: int = 0
    """Messages written now."""
    jobs: int = 0
    """Job and task records written now."""
    problems: list[str] = field(default_factory=list)
    """Counts that differ at the end, in words; empty when the copy is complete."""

    def describe(self) -> str:
        newer = f", {len(self.newer)} newer in PostgreSQL left alone" if self.newer else ""
        return (
            f"copied {self.copied} sessions ({self.messages} messages) and {self.jobs} job records; "
            f"{self.unchanged} sessions were there already{newer}"
        )


def _clean(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def copy_sqlite(
    source: str, target: PostgresStore, progress: Callable[[str], object] | None = None
) -> CopyReport:
    """Copy every session, message and job record of the SQLite file ``source`` into ``target``.

    The file is brought up to the current schema first (as the server would on open); nothing
    else in it changes. ``StoreError`` when either side cannot be used.
    """
    from .. import ChatStore

    if not Path(source).is_file():
        raise StoreError(source, "there is no such file. Name the SQLite database to copy from.")
    ChatStore.open(source).close()  # migrated, so every column is there to read
    report = CopyReport()
    uri = f"{Path(source).resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as src:
        sessions = src.execute(f"SELECT {_SESSION_FIELDS} FROM sessions ORDER BY id").fetchall()
        for n, row in enumerate(sessions, 1):
            _copy_session(src, target, row, report)
            if progress is not None and (n % 100 == 0 or n == len(sessions)):
                progress(f"{n} of {len(sessions)} sessions")
        jobs = src.execute(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY id").fetchall()
        with target._transaction() as conn:
            for job in jobs:
                placeholders = ", ".join(["%s"] * len(job))
                report.jobs += conn.execute(
                    f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({placeholders}) ON CONFLICT (id) DO NOTHING",
                    tuple(_clean(v) for v in job),
                ).rowcount
        _check(src, target, sessions, len(jobs), report)
    return report


def _copy_session(
    src: sqlite3.Connection, target: PostgresStore, row: tuple[Any, ...], report: CopyReport
) -> None:
    key, updated_at, turn_count = row[0], row[4], row[5]
    count = src.execute("SELECT count(*) FROM messages WHERE session_id = ?", (key,)).fetchone()[0]
    with target._transaction() as conn:
        there = conn.execute(
            "SELECT s.updated_at, s.turn_count,"
            " (SELECT count(*) FROM messages AS m WHERE m.session_id = s.id)"
            " FROM sessions AS s WHERE s.id = %s FOR UPDATE",
            (key,),
        ).fetchone()
        if there is not None and (there[0], there[1], there[2]) == (updated_at, turn_count, count):
            report.unchanged += 1
            return
        if there is not None and there[0] > updated_at:
            report.newer.append(key)
            return
        conn.execute("DELETE FROM messages WHERE session_id = %s", (key,))
        conn.execute(
            f"INSERT INTO sessions ({_SESSION_FIELDS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, model = EXCLUDED.model,"
            " created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,"
            " turn_count = EXCLUDED.turn_count, principal = EXCLUDED.principal",
            tuple(_clean(v) for v in row),
        )
        messages = src.execute(
            f"SELECT {_MESSAGE_FIELDS} FROM messages WHERE session_id = ? ORDER BY id", (key,)
        )
        with conn.cursor().copy(f"COPY messages ({_MESSAGE_FIELDS}) FROM STDIN") as copy:
            for message in messages:
                copy.write_row(tuple(_clean(v) for v in message))
    report.copied += 1
    report.messages += count


def _check(
    src: sqlite3.Connection,
    target: PostgresStore,
    sessions: list[tuple[Any, ...]],
    jobs: int,
    report: CopyReport,
) -> None:
    """Every session of the file in PostgreSQL with as many messages (unless newer there); every job."""
    keys = [row[0] for row in sessions if row[0] not in set(report.newer)]
    want = src.execute("SELECT count(*) FROM messages").fetchone()[0]
    want -= sum(
        src.execute("SELECT count(*) FROM messages WHERE session_id = ?", (key,)).fetchone()[0]
        for key in report.newer
    )
    job_ids = [job_id for (job_id,) in src.execute("SELECT id FROM jobs")]
    with target._transaction() as conn:
        found = conn.execute("SELECT count(*) FROM sessions WHERE id = ANY(%s)", (keys,)).fetchone()
        have = conn.execute("SELECT count(*) FROM messages WHERE session_id = ANY(%s)", (keys,)).fetchone()
        have_jobs = conn.execute("SELECT count(*) FROM jobs WHERE id = ANY(%s)", (job_ids,)).fetchone()
    if found is None or found[0] != len(keys):
        report.problems.append(
            f"{len(keys)} sessions to copy, {found[0] if found else 0} found in PostgreSQL"
        )
    if have is None or have[0] != want:
        report.problems.append(f"{want} messages to copy, {have[0] if have else 0} found in PostgreSQL")
    if have_jobs is None or have_jobs[0] != jobs:
        report.problems.append(f"{jobs} job records to copy, {have_jobs[0] if have_jobs else 0} found")
