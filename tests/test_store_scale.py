"""20,000 stored turns do not make a chat do more work, in either store.

The store holds 2,000 sessions of 10 turns (three principals'), and a job record for each turn
(``tests/store_fill.py``). A server on it answers a chat in a new session, one in a stored session,
one that outlives its call (its job recorded, its progress saved, collected with ``chat_result``)
and ``chat_result`` with no session; the store's periodic work runs too (heartbeats, the purge of
expired tasks, a task list). Every statement the store sent is recorded as it goes (SQLite's trace
callback; a spy on psycopg's ``execute``) and explained against the full store: none may read a
whole ``sessions``, ``messages`` or ``jobs`` table, so its work does not grow with them.

Tests never assert wall-clock times: ``bench/store_scale.py`` times a chat with 0 and with 20,000
stored turns and prints the ratio.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_ollama.config import Settings
from mcp_ollama.store import ChatStore, open_store

from .conftest import PARALLEL, connect
from .fake_ollama import Behavior, FakeOllama
from .postgres import fresh_schema
from .store_fill import fill

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # filling a store takes a few seconds

SESSIONS, TURNS = 2_000, 10
"""20,000 turns."""
LONG_TOKENS = 40
DML = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
SQLITE_FULL_SCAN = re.compile(r"^SCAN (sessions|messages|jobs|s|m)\b")  # s, m: the queries' aliases
PG_FULL_SCAN = re.compile(r"Seq Scan on (sessions|messages|jobs)\b")

Statement = tuple[str, Any]


@pytest.fixture(params=("sqlite", "postgres"))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store of 20,000 turns: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        path = str(tmp_path / "big.sqlite3")
        fill(path, SESSIONS, TURNS)
        yield path
    else:
        with fresh_schema() as url:
            fill(url, SESSIONS, TURNS)
            yield url


@pytest.fixture
def statements(target: str, monkeypatch: pytest.MonkeyPatch) -> list[Statement]:
    """Every statement the store sends from now on, with its parameters (SQLite: inlined)."""
    seen: list[Statement] = []
    if target.startswith("postgresql://"):
        import psycopg

        execute, executemany = psycopg.Connection.execute, psycopg.Cursor.executemany

        def spy_execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
            seen.append((str(query), params))
            return execute(self, query, params, **kwargs)

        def spy_executemany(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            params_seq = list(params_seq)
            seen.extend((str(query), params) for params in params_seq[:1])
            return executemany(self, query, params_seq, **kwargs)

        monkeypatch.setattr(psycopg.Connection, "execute", spy_execute)
        monkeypatch.setattr(psycopg.Cursor, "executemany", spy_executemany)
    else:
        connect_sqlite = ChatStore._connect

        def traced(path: str) -> sqlite3.Connection:
            conn = connect_sqlite(path)
            conn.set_trace_callback(lambda sql: seen.append((sql, None)))
            return conn

        monkeypatch.setattr(ChatStore, "_connect", staticmethod(traced))
    return seen


def full_scans(target: str, seen: list[Statement]) -> dict[str, list[str]]:
    """Each recorded statement whose plan, against the full store, reads a whole table, and how."""
    found: dict[str, list[str]] = {}
    queries = [(sql, params) for sql, params in seen if DML.match(sql)]
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            for sql, params in queries:
                plan = [row[0] for row in conn.execute("EXPLAIN " + sql, params).fetchall()]
                if bad := [line.strip() for line in plan if PG_FULL_SCAN.search(line)]:
                    found[" ".join(sql.split())] = bad
        return found
    with closing(sqlite3.connect(target)) as conn:
        for sql, _ in queries:
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()]
            if bad := [line for line in plan if SQLITE_FULL_SCAN.match(line)]:
                found[" ".join(sql.split())] = bad
    return found


async def test_no_statement_a_chat_runs_reads_a_whole_table_of_a_20000_turn_store(
    target: str, statements: list[Statement], fake: FakeOllama
) -> None:
    settings = Settings(
        ollama_url=fake.url,
        db_path=target,
        generation_timeout=30.0,
        connect_timeout=2.0,
        preload=False,
        max_parallel=PARALLEL,
        answer_deadline=0.5,  # the long answer outlives its call: its job is recorded
    )
    async with connect(settings, "legacy") as client:
        new = await client.call_tool("chat", {"message": "a new chat"})
        on = await client.call_tool("chat", {"message": "go on", "session_id": "s00000"})
        fake.enqueue(Behavior(token_count=LONG_TOKENS, token_delay=0.05))
        long = await client.call_tool("chat", {"message": "a long one"})
        sid = long.structured_content["session_id"]
        with anyio.fail_after(60):
            status = "generating"
            while status == "generating":
                status = (await client.call_tool("chat_result", {"session_id": sid})).structured_content[
                    "status"
                ]
        newest = await client.call_tool("chat_result", {})
    with open_store(Settings(db_path=target)) as store:  # the periodic work, and tasks/list
        store.touch_jobs("owner3")
        store.delete_expired_jobs()
        store.list_tasks("local|2025:owner0:conn1", 50)
        store.latest_job_of("alice")
    assert new.structured_content["status"] == "complete" and on.structured_content["status"] == "complete"
    assert on.structured_content["usage"]["prompt_tokens"] is not None
    assert long.structured_content["status"] == "generating" and status == "complete"
    assert newest.structured_content["session_id"] == sid
    texts = [" ".join(sql.split()) for sql, _ in statements]
    for expected in ("INSERT INTO messages", "UPDATE jobs SET partial", "FROM jobs WHERE requester"):
        assert any(expected in text for text in texts), expected  # the recording saw them all
    # How often the long answer's progress was saved: about once a second, never per token.
    saves = sum("UPDATE jobs SET partial" in text for text in texts)
    assert 1 <= saves < LONG_TOKENS, saves
    assert full_scans(target, statements) == {}
