"""A store holding many turns, written fast: rows straight into the tables of a migrated store.

``fill(target, sessions, turns)`` writes ``sessions`` sessions of ``turns`` turns each (two messages
a turn) and a job record for each turn, as the server would have left them: three principals'
sessions, finished chat jobs of many past server processes, every tenth one a task (with a
requester and an expiry) and the newest few tasks not yet expired. A SQLite file gets one
transaction of ``executemany``; PostgreSQL gets ``COPY`` and an ``ANALYZE`` (what autovacuum does
to a table that grew). Used by ``tests/test_store_scale.py`` and ``bench/store_scale.py``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp_ollama.config import Settings
from mcp_ollama.config.database import is_postgres_url
from mcp_ollama.store import open_store

PRINCIPALS = ("local", "alice", "bob")
START = datetime.now(UTC) - timedelta(days=30)
"""The first stored turn's time: every turn is a second after the one before, all in the past."""
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
_LATER = (datetime.now(UTC) + timedelta(days=1)).strftime(_TIME)

Row = tuple[Any, ...]


def _at(n: int) -> str:
    return (START + timedelta(seconds=n)).strftime(_TIME)


def _key(session: int) -> tuple[str, str]:
    principal = PRINCIPALS[session % len(PRINCIPALS)]
    sid = f"s{session:05d}"
    return (sid if principal == "local" else f"{principal}/{sid}"), principal


def rows(sessions: int, turns: int) -> tuple[list[Row], Iterator[Row], Iterator[Row]]:
    """The sessions' rows, then (generated as they are written) their messages' and jobs'."""
    session_rows = []
    for s in range(sessions):
        key, principal = _key(s)
        first, last = s * turns * 2, (s * turns + turns - 1) * 2 + 1
        session_rows.append(
            (key, f"Question 0 of {key}", "llama3:8b", _at(first), _at(last), turns, principal)
        )

    def messages() -> Iterator[Row]:
        meta = json.dumps({"model": "llama3:8b", "done_reason": "stop", "prompt_tokens": 120})
        for s in range(sessions):
            key, _ = _key(s)
            for t in range(turns):
                n = (s * turns + t) * 2
                yield (
                    key,
                    t + 1,
                    "user",
                    f"Question {t} of {key}: what about the lorem ipsum? " * 2,
                    _at(n),
                    None,
                )
                answer = f"Answer {t}: the lorem ipsum is dolor sit amet. " * 6
                yield key, t + 1, "assistant", answer, _at(n + 1), meta

    def jobs() -> Iterator[Row]:
        total = sessions * turns
        for s in range(sessions):
            key, principal = _key(s)
            for t in range(turns):
                job, n = s * turns + t, (s * turns + t) * 2
                owner, task = f"owner{job % 97}", job % 10 == 0
                requester = f"{principal}|2025:{owner}:conn1" if task else None
                # Most tasks expired long ago (a purge is due); the newest few live on.
                lives = job >= total - 50
                expires = (_LATER if lives else _at(n + 3600)) if task else None
                result = '{"content": []}' if task else None
                yield (
                    f"job{job:06d}", key, "llama3:8b", "complete", owner, _at(n), _at(n + 1),
                    requester, _at(n + 1), expires, None, result, principal,
                )  # fmt: skip

    return session_rows, messages(), jobs()


SESSION_COLUMNS = "id, title, model, created_at, updated_at, turn_count, principal"
MESSAGE_COLUMNS = "session_id, turn, role, content, created_at, meta"
JOB_COLUMNS = (
    "id, session_id, model, status, owner, started_at, heartbeat_at, requester, finished_at, expires_at,"
    " detail, result, principal"
)


def fill(target: str, sessions: int, turns: int) -> None:
    """Migrate ``target`` (a SQLite path or a PostgreSQL URL) and write the rows into it."""
    open_store(Settings(db_path=target)).close()
    session_rows, messages, jobs = rows(sessions, turns)
    if is_postgres_url(target):
        _fill_postgres(target, session_rows, messages, jobs)
        return
    with closing(sqlite3.connect(target)) as conn, conn:
        conn.executemany(
            f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", session_rows
        )
        conn.executemany(f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", messages)
        conn.executemany(f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' * 13)})", jobs)


def _fill_postgres(url: str, session_rows: list[Row], messages: Iterator[Row], jobs: Iterator[Row]) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        with conn.transaction(), conn.cursor() as cur:
            for table, columns, source in (
                ("sessions", SESSION_COLUMNS, iter(session_rows)),
                ("messages", MESSAGE_COLUMNS, messages),
                ("jobs", JOB_COLUMNS, jobs),
            ):
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in source:
                        copy.write_row(row)
        conn.autocommit = True
        conn.execute("ANALYZE sessions, messages, jobs")
