"""The session store against both backends: a SQLite file in a temporary directory, and a fresh
schema in the local PostgreSQL (``tests/postgres.py``: skipped where none answers, never in CI).

One suite: the ``db`` fixture is parametrised over the backends, and every test that takes
``store`` or ``db`` runs against each. Tests of what only one backend has (SQLite's file modes and
journal, PostgreSQL's advisory locks) say so in their names."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mcp_ollama.config import Settings
from mcp_ollama.errors import InvalidSessionId, SessionNotFound, StoreError
from mcp_ollama.store import (
    ChatStore,
    ImageNote,
    JobProgress,
    JobRecord,
    Store,
    derive_title,
    new_session_id,
    open_store,
    validate_session_id,
)
from mcp_ollama.store import migrations as store_module

from .postgres import fresh_schema, pg_raw

BACKENDS = ("sqlite", "postgres")


@dataclass(frozen=True)
class Db:
    """The database under test: a SQLite file, or a PostgreSQL URL whose search_path is a fresh schema."""

    kind: str
    target: str

    def open(self) -> Store:
        return open_store(Settings(db_path=self.target))

    @property
    def migrations(self) -> ModuleType:
        """The module whose ``MIGRATIONS`` this backend runs (tests patch it)."""
        if self.kind == "sqlite":
            return store_module
        from mcp_ollama.store.postgres import migrations

        return migrations

    def tables(self) -> list[str]:
        if self.kind == "sqlite":
            return [
                t for (t,) in raw(self, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            ]
        query = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        return sorted(t for (t,) in raw(self, query))

    def columns(self, table: str) -> list[str]:
        if self.kind == "sqlite":
            return [row[1] for row in raw(self, f"PRAGMA table_info({table})")]
        query = (
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = ? ORDER BY ordinal_position"
        )
        return [c for (c,) in raw(self, query, (table,))]


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        yield Db("sqlite", str(tmp_path / "chat.db"))
    else:
        with fresh_schema() as url:
            yield Db("postgres", url)


@pytest.fixture
def store(db: Db) -> Iterator[Store]:
    with db.open() as opened:
        yield opened


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """For the tests of SQLite's own file."""
    return tmp_path / "chat.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[ChatStore]:
    with ChatStore.open(db_path) as opened:
        yield opened


def raw(target: Path | Db, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement (``?`` placeholders) on a separate connection, the way an outside reader would."""
    if isinstance(target, Db) and target.kind == "postgres":
        return pg_raw(target.target, sql, params)
    path = target.target if isinstance(target, Db) else target
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(sql, params).fetchall()
        conn.commit()
    return rows


def add_turns(store: Store, session_id: str, count: int, start: int = 1) -> None:
    for n in range(start, start + count):
        store.append_turn(session_id, model="m", user=f"u{n}", assistant=f"a{n}")


# --- schema and migrations --------------------------------------------------------------


def test_new_sqlite_database_has_exactly_the_pinned_schema(sqlite_store: ChatStore, db_path: Path) -> None:
    tables = raw(db_path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    assert [t for (t,) in tables] == [
        "_migrations",
        "client_timeouts",
        "jobs",
        "messages",
        "session_leases",
        "sessions",
        "sqlite_sequence",
    ]

    def columns(table: str) -> list[tuple[Any, ...]]:
        # (name, type, notnull, default, pk)
        return [row[1:] for row in raw(db_path, f"PRAGMA table_info({table})")]

    assert columns("sessions") == [
        ("id", "TEXT", 0, None, 1),
        ("title", "TEXT", 1, None, 0),
        ("model", "TEXT", 1, None, 0),
        ("created_at", "TEXT", 1, None, 0),
        ("updated_at", "TEXT", 1, None, 0),
        ("turn_count", "INTEGER", 1, "0", 0),
        ("principal", "TEXT", 1, "'local'", 0),
    ]
    assert columns("messages") == [
        ("id", "INTEGER", 0, None, 1),
        ("session_id", "TEXT", 1, None, 0),
        ("turn", "INTEGER", 1, None, 0),
        ("role", "TEXT", 1, None, 0),
        ("content", "TEXT", 1, None, 0),
        ("created_at", "TEXT", 1, None, 0),
        ("meta", "TEXT", 0, None, 0),
        ("thinking", "TEXT", 0, None, 0),
        ("images", "TEXT", 0, None, 0),
    ]
    assert columns("jobs") == [
        ("id", "TEXT", 0, None, 1),
        ("session_id", "TEXT", 1, None, 0),
        ("model", "TEXT", 1, None, 0),
        ("status", "TEXT", 1, None, 0),
        ("owner", "TEXT", 1, None, 0),
        ("requester", "TEXT", 0, None, 0),
        ("started_at", "TEXT", 1, None, 0),
        ("heartbeat_at", "TEXT", 1, None, 0),
        ("finished_at", "TEXT", 0, None, 0),
        ("expires_at", "TEXT", 0, None, 0),
        ("detail", "TEXT", 0, None, 0),
        ("result", "TEXT", 0, None, 0),
        ("principal", "TEXT", 1, "'local'", 0),
        ("partial", "TEXT", 0, None, 0),
        ("progress", "TEXT", 0, None, 0),
    ]
    assert columns("session_leases") == [
        ("session_id", "TEXT", 0, None, 1),
        ("owner", "TEXT", 1, None, 0),
        ("expires_at", "TEXT", 1, None, 0),
    ]
    assert columns("client_timeouts") == [
        ("principal", "TEXT", 1, None, 1),
        ("client", "TEXT", 1, None, 2),
        ("seconds", "REAL", 1, None, 0),
        ("learned_at", "TEXT", 1, None, 0),
    ]
    assert columns("_migrations") == [
        ("name", "TEXT", 0, None, 1),
        ("applied_at", "TEXT", 1, None, 0),
    ]

    indexes = raw(
        db_path,
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
    )
    assert indexes == [
        ("idx_jobs_expires_at", "jobs"),
        ("idx_jobs_principal_started_at", "jobs"),
        ("idx_jobs_requester", "jobs"),
        ("idx_jobs_running", "jobs"),
        ("idx_jobs_session_id", "jobs"),
        ("idx_messages_session_id", "messages"),
        ("idx_sessions_principal_updated_at", "sessions"),
    ]

    def index_key(index: str) -> list[tuple[str, int]]:
        # (column, descending) for the key columns only
        return [(row[2], row[3]) for row in raw(db_path, f"PRAGMA index_xinfo({index})") if row[5]]

    assert index_key("idx_messages_session_id") == [("session_id", 0), ("id", 0)]
    assert index_key("idx_sessions_principal_updated_at") == [("principal", 0), ("updated_at", 1), ("id", 1)]

    foreign_keys = raw(db_path, "PRAGMA foreign_key_list(messages)")
    # (table, from, to, on_update, on_delete)
    assert [(fk[2], fk[3], fk[4], fk[5], fk[6]) for fk in foreign_keys] == [
        ("sessions", "session_id", "id", "NO ACTION", "CASCADE")
    ]

    migrations = raw(db_path, "SELECT name FROM _migrations ORDER BY name")
    assert migrations == [
        ("m001_create_sessions_and_messages",),
        ("m002_create_jobs",),
        ("m003_create_session_leases",),
        ("m004_add_message_thinking_and_images",),
        ("m005_add_principals",),
        ("m006_create_client_timeouts",),
        ("m007_add_job_progress_and_job_indexes",),
    ]
    assert [m.__name__ for m in store_module.MIGRATIONS] == [
        "m001_create_sessions_and_messages",
        "m002_create_jobs",
        "m003_create_session_leases",
        "m004_add_message_thinking_and_images",
        "m005_add_principals",
        "m006_create_client_timeouts",
        "m007_add_job_progress_and_job_indexes",
    ]


def test_reopening_keeps_data_and_does_not_rerun_migrations(db: Db) -> None:
    with db.open() as first:
        first.append_turn("s1", model="m", user="hello", assistant="hi")
    applied_before = raw(db, "SELECT name, applied_at FROM _migrations")

    with db.open() as second:
        assert [(m.role, m.content) for m in second.messages("s1")] == [
            ("user", "hello"),
            ("assistant", "hi"),
        ]
        assert second.append_turn("s1", model="m", user="again", assistant="yes") is False

    assert raw(db, "SELECT name, applied_at FROM _migrations") == applied_before


def test_a_newly_added_migration_runs_once_on_the_next_open(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    with db.open() as first:
        first.append_turn("s1", model="m", user="hello", assistant="hi")

    calls: list[str] = []

    def m099_add_pinned(conn: Any) -> None:
        calls.append("m099")
        conn.execute("ALTER TABLE sessions ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")

    monkeypatch.setattr(db.migrations, "MIGRATIONS", (*db.migrations.MIGRATIONS, m099_add_pinned))
    with db.open() as second:
        assert second.get_session("s1") is not None
    with db.open():
        pass

    assert calls == ["m099"]
    names = raw(db, "SELECT name FROM _migrations ORDER BY name")
    assert names == [
        ("m001_create_sessions_and_messages",),
        ("m002_create_jobs",),
        ("m003_create_session_leases",),
        ("m004_add_message_thinking_and_images",),
        ("m005_add_principals",),
        ("m006_create_client_timeouts",),
        ("m007_add_job_progress_and_job_indexes",),
        ("m099_add_pinned",),
    ]


def test_a_failing_migration_leaves_no_trace(db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    with db.open():
        pass

    def m099_broken(conn: Any) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    monkeypatch.setattr(db.migrations, "MIGRATIONS", (*db.migrations.MIGRATIONS, m099_broken))
    with pytest.raises(RuntimeError, match="boom"):
        db.open()

    assert "half_done" not in db.tables()
    assert raw(db, "SELECT name FROM _migrations ORDER BY name") == [
        ("m001_create_sessions_and_messages",),
        ("m002_create_jobs",),
        ("m003_create_session_leases",),
        ("m004_add_message_thinking_and_images",),
        ("m005_add_principals",),
        ("m006_create_client_timeouts",),
        ("m007_add_job_progress_and_job_indexes",),
    ]


def test_a_database_at_the_previous_schema_gains_m004_and_keeps_its_messages(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(db.migrations, "MIGRATIONS", db.migrations.MIGRATIONS[:3])
        with db.open():
            pass
    # A turn as the previous version wrote it: no thinking or images columns yet.
    now = "2026-01-02T03:04:05.000000Z"
    assert "thinking" not in db.columns("messages")
    raw(db, "INSERT INTO sessions VALUES ('old', 'hello', 'llama3:8b', ?, ?, 1)", (now, now))
    for role, content, meta in [("user", "hello", None), ("assistant", "hi", '{"model": "llama3:8b"}')]:
        raw(
            db,
            "INSERT INTO messages (session_id, turn, role, content, created_at, meta)"
            " VALUES ('old', 1, ?, ?, ?, ?)",
            (role, content, now, meta),
        )

    with db.open() as store:
        old = store.messages("old")
        assert [(m.role, m.content, m.thinking, m.images) for m in old] == [
            ("user", "hello", None, ()),
            ("assistant", "hi", None, ()),
        ]
        assert [(m.role, m.content) for m in store.recent_messages("old", 5)] == [
            ("user", "hello"),
            ("assistant", "hi"),
        ]
        store.append_turn("old", model="qwen3:8b", user="again", assistant="yes", thinking="hmm")
        assert store.messages("old")[-1].thinking == "hmm"
        assert store.get_session("old") is not None and store.get_session("old").principal == "local"  # type: ignore[union-attr]
    assert [name for (name,) in raw(db, "SELECT name FROM _migrations ORDER BY name")][-4:] == [
        "m004_add_message_thinking_and_images",
        "m005_add_principals",
        "m006_create_client_timeouts",
        "m007_add_job_progress_and_job_indexes",
    ]


def test_each_principal_reaches_only_its_own_sessions_even_under_the_same_id(store: Store) -> None:
    store.append_turn("demo", model="m", user="alice asks", assistant="to alice", principal="alice")
    store.append_turn("demo", model="m", user="bob asks", assistant="to bob", principal="bob")
    store.append_turn("mine", model="m", user="local asks", assistant="to local")
    for who in ("alice", "bob"):
        assert [m.content for m in store.messages("demo", principal=who)] == [f"{who} asks", f"to {who}"]
        assert [m.content for m in store.recent_messages("demo", 8, principal=who)] == [
            f"{who} asks",
            f"to {who}",
        ]
        info = store.get_session("demo", principal=who)
        assert info is not None and info.id == "demo" and info.principal == who
        assert [s.id for s in store.list_sessions(principal=who)[0]] == ["demo"]
        assert store.session_ids("de", principal=who) == ["demo"]
        assert store.get_session("mine", principal=who) is None  # local's: not found
        assert store.last_answer("demo", principal=who)[0].content == f"to {who}"  # type: ignore[index]
    assert [s.id for s in store.list_sessions()[0]] == ["mine"]  # local sees neither
    assert store.get_session("demo") is None and store.session_ids("d") == []
    with pytest.raises(SessionNotFound):
        store.messages("mine", principal="alice")
    assert store.delete_session("demo", principal="alice") is True
    assert store.get_session("demo", principal="bob") is not None  # bob's is untouched
    assert store.clear_session("demo", principal="alice") is False
    with pytest.raises(ValueError, match="not a principal name"):
        store.get_session("x", principal="not a name")


def test_thinking_and_image_notes_are_stored_apart_and_left_out_of_the_history(store: Store) -> None:
    note = ImageNote(mime="image/png", size=16, sha256="ab" * 32)
    store.append_turn("s1", model="m", user="look", assistant="a cat", thinking="whiskers", images=(note,))
    user, answer = store.messages("s1")
    assert (user.images, user.thinking) == ((note,), None)
    assert (answer.images, answer.thinking) == ((), "whiskers")
    # What goes back to the model as history holds neither.
    assert [(m.content, m.thinking, m.images) for m in store.recent_messages("s1", 5)] == [
        ("look", None, ()),
        ("a cat", None, ()),
    ]


def test_a_damaged_image_note_is_dropped_not_fatal(store: Store, db: Db) -> None:
    store.append_turn("s1", model="m", user="look", assistant="ok")
    raw(db, "UPDATE messages SET images = 'not json' WHERE role = 'user'")
    assert [m.images for m in store.messages("s1")] == [(), ()]


# --- the file on disk -------------------------------------------------------------------


def test_sqlite_file_uses_wal_journal(sqlite_store: ChatStore, db_path: Path) -> None:
    sqlite_store.append_turn("s1", model="m", user="hello", assistant="hi")
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_new_file_and_its_directories_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "mcp-ollama" / "chat.db"
    previous = os.umask(0o022)  # what a typical shell would give: files 0644, dirs 0755
    try:
        with ChatStore.open(path) as opened:
            opened.append_turn("s1", model="m", user="secret", assistant="noted")
            side_files = [Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(p.exists() for p in side_files)
            for p in [path, *side_files]:
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        assert os.umask(0o022) == 0o022  # open() put the process umask back
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    path.touch()
    path.chmod(0o640)
    with ChatStore.open(path) as opened:
        opened.append_turn("s1", model="m", user="hello", assistant="hi")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_memory_database_works_and_touches_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with ChatStore.open(":memory:") as memory:
        assert memory.append_turn("s1", model="m", user="hello", assistant="hi") is True
        assert [m.content for m in memory.messages("s1")] == ["hello", "hi"]
    assert list(tmp_path.iterdir()) == []


def test_closed_store_refuses_work_and_close_twice_is_harmless(db: Db) -> None:
    opened = db.open()
    opened.close()
    opened.close()
    with pytest.raises((sqlite3.ProgrammingError, StoreError)):
        opened.count_sessions()


# --- turns ------------------------------------------------------------------------------


def test_append_turn_creates_the_session_then_appends(store: Store, db: Db) -> None:
    assert store.append_turn("s1", model="llama3", user="  Hello\n there ", assistant="Hi!") is True
    assert store.append_turn(
        "s1", model="qwen3", user="More?", assistant="Sure.", meta={"eval_count": 7}
    ) is (False)

    info = store.get_session("s1")
    assert info is not None
    assert (info.id, info.title, info.model, info.turn_count, info.message_count) == (
        "s1",
        "Hello there",
        "qwen3",
        2,
        4,
    )
    assert info.created_at.tzinfo is UTC
    assert info.created_at <= info.updated_at

    transcript = store.messages("s1")
    assert [(m.role, m.content) for m in transcript] == [
        ("user", "  Hello\n there "),
        ("assistant", "Hi!"),
        ("user", "More?"),
        ("assistant", "Sure."),
    ]
    assert all(m.created_at.tzinfo is UTC for m in transcript)

    rows = raw(db, "SELECT turn, role, meta FROM messages ORDER BY id")
    assert [(turn, role) for turn, role, _ in rows] == [
        (1, "user"),
        (1, "assistant"),
        (2, "user"),
        (2, "assistant"),
    ]
    assert [None if meta is None else json.loads(meta) for _, _, meta in rows] == [
        None,
        {"model": "llama3"},
        None,
        {"model": "qwen3", "eval_count": 7},
    ]


def test_failed_insert_in_append_turn_writes_nothing(
    store: Store, db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_turns(store, "old", 1)
    before_old = store.get_session("old")
    before_rows = raw(db, "SELECT * FROM messages ORDER BY id")

    real_insert = type(store)._insert_message  # type: ignore[attr-defined]

    def insert_then_break(conn: Any, session_id: str, turn: int, role: str, *rest: Any, **named: Any) -> None:
        # The assistant message violates the role CHECK after the user message went in.
        real_insert(conn, session_id, turn, "system" if role == "assistant" else role, *rest, **named)

    monkeypatch.setattr(type(store), "_insert_message", staticmethod(insert_then_break))
    with pytest.raises(StoreError, match=r"(?i)check"):
        store.append_turn("new", model="m", user="hello", assistant="hi")
    with pytest.raises(StoreError, match=r"(?i)check"):
        store.append_turn("old", model="other", user="hello", assistant="hi")
    monkeypatch.undo()

    assert store.get_session("new") is None
    assert store.get_session("old") == before_old
    assert raw(db, "SELECT * FROM messages ORDER BY id") == before_rows
    assert store.count_sessions() == 1
    # No transaction was left open: the store keeps working.
    assert store.append_turn("new", model="m", user="hello", assistant="hi") is True


def test_meta_that_is_not_json_fails_before_anything_is_written(store: Store) -> None:
    with pytest.raises(TypeError):
        store.append_turn("s1", model="m", user="hello", assistant="hi", meta={"bad": object()})
    assert store.get_session("s1") is None


def test_concurrent_threads_get_distinct_consecutive_turns(store: Store) -> None:
    def worker(name: str) -> None:
        for n in range(25):
            store.append_turn("shared", model="m", user=f"{name}-{n}", assistant=f"{name}-{n}")

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    info = store.get_session("shared")
    assert info is not None
    assert (info.turn_count, info.message_count) == (100, 200)
    transcript = store.messages("shared")
    pairs = list(zip(transcript[::2], transcript[1::2], strict=True))
    assert all(u.role == "user" and a.role == "assistant" and u.content == a.content for u, a in pairs)


CHILD_WRITER = textwrap.dedent(
    """
    import sys
    from mcp_ollama.config import Settings
    from mcp_ollama.store import open_store

    path, count = sys.argv[1], int(sys.argv[2])
    with open_store(Settings(db_path=path)) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        for n in range(count):
            store.append_turn("shared", model="m", user=f"child-{n}", assistant=f"child-{n}")
            store.append_turn(f"child-{n}", model="m", user="own", assistant="own")
    """
)


def test_a_second_process_writing_at_the_same_time_loses_nothing(store: Store, db: Db) -> None:
    count = 150
    with subprocess.Popen(
        [sys.executable, "-c", CHILD_WRITER, db.target, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        for n in range(count):
            store.append_turn("shared", model="m", user=f"parent-{n}", assistant=f"parent-{n}")
            store.append_turn(f"parent-{n}", model="m", user="own", assistant="own")
        child.communicate(timeout=30)
    assert child.returncode == 0

    assert store.count_sessions() == 1 + 2 * count
    shared = store.get_session("shared")
    assert shared is not None
    assert (shared.turn_count, shared.message_count) == (2 * count, 4 * count)
    turns = raw(db, "SELECT turn, role, content FROM messages WHERE session_id = 'shared' ORDER BY id")
    assert [t for t, _, _ in turns] == [n // 2 + 1 for n in range(4 * count)]
    users = [content for _, role, content in turns if role == "user"]
    answers = [content for _, role, content in turns if role == "assistant"]
    assert users == answers  # every user message sits next to its own answer
    for writer in ("parent", "child"):
        assert [u for u in users if u.startswith(writer)] == [f"{writer}-{n}" for n in range(count)]


# --- reading history --------------------------------------------------------------------


def test_recent_messages_returns_the_last_n_turns_in_order(store: Store) -> None:
    add_turns(store, "s1", 5)
    assert [m.content for m in store.recent_messages("s1", 2)] == ["u4", "a4", "u5", "a5"]
    assert [m.content for m in store.recent_messages("s1", 1)] == ["u5", "a5"]
    assert [m.content for m in store.recent_messages("s1", 99)] == [
        text for n in range(1, 6) for text in (f"u{n}", f"a{n}")
    ]
    assert [m.role for m in store.recent_messages("s1", 2)] == ["user", "assistant"] * 2
    assert store.recent_messages("s1", 0) == []
    assert store.recent_messages("unknown", 3) == []
    with pytest.raises(ValueError, match="max_turns"):
        store.recent_messages("s1", -1)


def test_recent_messages_cost_does_not_grow_with_history_in_sqlite(sqlite_store: ChatStore) -> None:
    store = sqlite_store
    add_turns(store, "short", 3)
    add_turns(store, "long", 1500)

    def vm_steps(session_id: str) -> int:
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        store._conn.set_progress_handler(count, 1)
        try:
            store.recent_messages(session_id, 3)
        finally:
            store._conn.set_progress_handler(None, 1)
        return steps

    assert vm_steps("long") < 2 * vm_steps("short")


def test_messages_of_an_unknown_session_raise_session_not_found(store: Store) -> None:
    with pytest.raises(SessionNotFound):
        store.messages("nobody")


# --- listing ----------------------------------------------------------------------------


def page_through(
    store: Store, limit: int, between_pages: Callable[[int], None] = lambda page: None
) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    page = 0
    while True:
        sessions, cursor = store.list_sessions(limit=limit, cursor=cursor)
        assert len(sessions) <= limit
        seen.extend(s.id for s in sessions)
        if cursor is None:
            return seen
        page += 1
        between_pages(page)


def expected_order(db: Db) -> list[str]:
    rows = raw(db, "SELECT id, updated_at FROM sessions")
    return [sid for sid, _ in sorted(rows, key=lambda r: (r[1], r[0]), reverse=True)]


def test_pagination_yields_every_session_once_newest_first(store: Store, db: Db) -> None:
    for n in range(250):
        store.append_turn(f"s{n:03}", model="m", user="hi", assistant="hello")
    store.append_turn("s007", model="m", user="again", assistant="back")  # now the most recent

    order = expected_order(db)
    added: list[str] = []

    def add_sessions(page: int) -> None:
        for n in range(3):
            added.append(f"late-{page}-{n}")
            store.append_turn(added[-1], model="m", user="hi", assistant="hello")

    seen = page_through(store, limit=100, between_pages=add_sessions)

    assert seen == order
    assert seen[0] == "s007"
    assert len(seen) == len(set(seen)) == 250
    # Sessions created mid-way are newer than the cursor, so they appear on a fresh first page.
    assert len(added) == 6
    assert [s.id for s in store.list_sessions(limit=6)[0]] == added[::-1]


def test_pagination_is_exact_when_timestamps_tie(store: Store, db: Db) -> None:
    for n in range(30):
        store.append_turn(f"s{n:02}", model="m", user="hi", assistant="hello")
    raw(db, "UPDATE sessions SET updated_at = '2025-01-01T00:00:00.000000Z'")
    assert page_through(store, limit=7) == [f"s{n:02}" for n in reversed(range(30))]


def test_last_full_page_has_no_next_cursor(store: Store) -> None:
    for n in range(4):
        store.append_turn(f"s{n}", model="m", user="hi", assistant="hello")
    first, cursor = store.list_sessions(limit=2)
    assert len(first) == 2
    assert cursor is not None
    second, cursor = store.list_sessions(limit=2, cursor=cursor)
    assert len(second) == 2
    assert cursor is None
    assert [s.id for s in store.list_sessions()[0]] == ["s3", "s2", "s1", "s0"]


def test_empty_store_lists_nothing(store: Store) -> None:
    assert store.list_sessions() == ([], None)
    assert store.count_sessions() == 0
    assert store.session_ids() == []


def b64(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 at all!",
        "####",
        b64("{}"),
        b64("null"),
        b64('["2025-01-01T00:00:00.000000Z"]'),
        b64('["2025-01-01T00:00:00.000000Z", "s1", "extra"]'),
        b64("[1, 2]"),
        b64('["yesterday", "s1"]'),
        b64('["2025-01-01T00:00:00.000000Z", "../etc"]'),
        b64('["2025-01-01T00:00:00.000000Z", 7]'),
        b64(b"\xff\xfe\x00"),
        "é",
    ],
)
def test_malformed_cursor_raises_value_error(store: Store, cursor: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid cursor$"):
        store.list_sessions(cursor=cursor)


def test_limits_below_one_are_rejected(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list_sessions(limit=0)
    with pytest.raises(ValueError, match="limit"):
        store.session_ids(limit=0)


def test_session_ids_match_the_prefix_literally_newest_first(store: Store) -> None:
    for sid in ["a_b", "axb", "a_c", "A_b", "b", "a"]:
        store.append_turn(sid, model="m", user="hi", assistant="hello")
    assert store.session_ids("a_") == ["a_c", "a_b"]  # "_" is not a wildcard; case matters
    assert store.session_ids("a") == ["a", "a_c", "axb", "a_b"]
    assert store.session_ids("a", limit=2) == ["a", "a_c"]
    assert store.session_ids() == ["a", "b", "A_b", "a_c", "axb", "a_b"]
    for hostile in ["%", "a%", "a*", "' OR 1=1 --", "a/", "a\x00"]:
        assert store.session_ids(hostile) == [], hostile


# --- ids --------------------------------------------------------------------------------

HOSTILE_IDS = ["../x", "a/b", "a\\b", "a\x00b", "", "x" * 65, "x' OR 1=1 --", "abc\n", "é", "a b", "..", "."]

METHODS: dict[str, Callable[[Store, Any], object]] = {
    "get_session": lambda s, sid: s.get_session(sid),
    "recent_messages": lambda s, sid: s.recent_messages(sid, 5),
    "messages": lambda s, sid: s.messages(sid),
    "append_turn": lambda s, sid: s.append_turn(sid, model="m", user="u", assistant="a"),
    "delete_session": lambda s, sid: s.delete_session(sid),
    "clear_session": lambda s, sid: s.clear_session(sid),
}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_rejects_hostile_ids(store: Store, method: str) -> None:
    for session_id in [*HOSTILE_IDS, None, 42, b"abc"]:
        with pytest.raises(InvalidSessionId):
            METHODS[method](store, session_id)
    assert store.count_sessions() == 0


def test_valid_ids_pass_and_new_ids_are_valid_and_unique() -> None:
    for session_id in ["a", "A-b_9", "x" * 64, "--", "__"]:
        assert validate_session_id(session_id) == session_id
    fresh = {new_session_id() for _ in range(100)}
    assert len(fresh) == 100
    assert all(validate_session_id(sid) == sid and len(sid) == 32 for sid in fresh)


def test_invalid_id_error_names_the_id() -> None:
    with pytest.raises(InvalidSessionId, match=r"\.\./x"):
        validate_session_id("../x")


# --- delete and clear -------------------------------------------------------------------


def test_delete_session_removes_it_and_its_messages(store: Store, db: Db) -> None:
    add_turns(store, "gone", 3)
    add_turns(store, "kept", 1)
    assert store.delete_session("gone") is True
    assert store.get_session("gone") is None
    assert store.delete_session("gone") is False
    assert raw(db, "SELECT DISTINCT session_id FROM messages") == [("kept",)]
    assert store.session_ids() == ["kept"]


def test_clear_session_drops_messages_but_keeps_the_session(store: Store, db: Db) -> None:
    store.append_turn("s1", model="m", user="first topic", assistant="ok")
    add_turns(store, "s1", 2)
    before = store.get_session("s1")
    assert before is not None

    assert store.clear_session("s1") is True
    after = store.get_session("s1")
    assert after is not None
    assert (after.turn_count, after.message_count, after.title) == (0, 0, "")
    assert after.created_at == before.created_at
    assert after.updated_at >= before.updated_at
    assert store.messages("s1") == []
    assert raw(db, "SELECT count(*) FROM messages") == [(0,)]

    assert store.append_turn("s1", model="m", user="second topic", assistant="ok") is False
    again = store.get_session("s1")
    assert again is not None
    assert (again.turn_count, again.title) == (1, "second topic")
    assert raw(db, "SELECT turn FROM messages") == [(1,), (1,)]

    assert store.clear_session("nobody") is False
    assert store.get_session("nobody") is None


# --- titles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("Hello", "Hello"),
        ("  What\tis\n\n  WAL   mode? ", "What is WAL mode?"),
        ("x" * 60, "x" * 60),
        ("x" * 61, "x" * 59 + "…"),
        ("word " * 30, ("word " * 12).strip() + "…"),
        ("", ""),
        (" \n ", ""),
    ],
)
def test_title_is_the_first_user_message_collapsed_and_cut_to_60(message: str, title: str) -> None:
    assert derive_title(message) == title
    assert len(derive_title(message)) <= 60


def test_session_title_comes_from_the_first_turn_only(store: Store) -> None:
    store.append_turn("s1", model="m", user="Plan a trip\nto Lisbon", assistant="Sure")
    store.append_turn("s1", model="m", user="Something else", assistant="Ok")
    info = store.get_session("s1")
    assert info is not None
    assert info.title == "Plan a trip to Lisbon"


def test_a_task_without_a_session_is_recorded_too(store: Store) -> None:
    # A task whose call failed before it had a session (bad arguments): its record has no session.
    at = datetime.now(UTC)
    store.record_job(JobRecord("t1", "", "", "failed", "proc", at, at, "alice|conn1", at, principal="alice"))
    found = store.get_job("t1")
    assert found is not None and found.session_id == "" and found.principal == "alice"


# --- job records are per principal, and a running one outlives its ttl ---------------------------


def _job(job_id: str, session_id: str, status: str, principal: str = "local", **kw: Any) -> JobRecord:
    at = datetime.now(UTC)
    return JobRecord(job_id, session_id, "m", status, "proc", at, at, principal=principal, **kw)


def test_a_job_is_found_in_its_principals_session_only(store: Store) -> None:
    """After a restart, chat_result finds a job by (principal, session id): alice's job in her
    'demo' is hers, and the local user's 'demo' shows nothing of it."""
    store.record_job(_job("j-alice", "demo", "interrupted", principal="alice"))
    found = store.latest_job("demo", principal="alice")
    assert found is not None and found.id == "j-alice" and found.principal == "alice"
    assert store.latest_job("demo") is None
    assert store.latest_job("demo", principal="bob") is None
    store.record_job(_job("j-local", "demo", "running"))
    mine = store.latest_job("demo")
    assert mine is not None and mine.id == "j-local"
    again = store.latest_job("demo", principal="alice")
    assert again is not None and again.id == "j-alice"


def test_the_newest_chat_job_of_a_principal_is_found_in_any_session(store: Store) -> None:
    """``chat_result`` with no session_id, after a restart: the caller's newest chat job, no task's."""
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    assert store.latest_job_of("local") is None
    store.record_job(JobRecord("old", "a", "m", "complete", "proc", earlier, earlier))
    store.record_job(_job("new", "b", "interrupted"))
    store.record_job(_job("task", "c", "running", requester="local|r"))  # a task: tasks/result has it
    store.record_job(_job("hers", "d", "running", principal="alice"))
    found = store.latest_job_of("local")
    assert found is not None and (found.id, found.session_id) == ("new", "b")
    hers = store.latest_job_of("alice")
    assert hers is not None and hers.session_id == "d"
    assert store.latest_job_of("bob") is None


def test_a_clients_learned_timeout_is_kept_per_principal_and_replaced_by_the_next(store: Store) -> None:
    assert store.client_timeout("claude-ai") is None
    store.learn_client_timeout("claude-ai", 60.2)
    store.learn_client_timeout("claude-ai", 9.5, principal="alice")
    found = store.client_timeout("claude-ai")
    assert found is not None and found[0] == 60.2
    assert datetime.now(UTC) - found[1] < timedelta(minutes=5)
    store.learn_client_timeout("claude-ai", 30.0)
    assert (store.client_timeout("claude-ai") or (0.0,))[0] == 30.0
    assert (store.client_timeout("claude-ai", principal="alice") or (0.0,))[0] == 9.5
    assert store.client_timeout("claude-ai", principal="bob") is None


def test_a_running_task_record_outlives_its_ttl(store: Store) -> None:
    """A task still running past its ttl keeps its record: after a restart someone must learn that
    it was interrupted. Finished records past their ttl go."""
    past = datetime.now(UTC) - timedelta(hours=1)
    store.record_job(_job("running", "s1", "running", requester="r", expires_at=past))
    store.record_job(_job("done", "s2", "complete", requester="r", expires_at=past))
    store.record_job(_job("fresh", "s3", "complete", requester="r", expires_at=past + timedelta(hours=2)))
    assert store.delete_expired_jobs() == 1
    assert store.get_job("done") is None
    assert store.get_job("running") is not None and store.get_job("fresh") is not None
    listed, _ = store.list_tasks("r")
    assert sorted(record.id for record in listed) == ["fresh", "running"]


def test_a_running_jobs_progress_is_kept_until_it_ends(store: Store) -> None:
    """What another replica's chat_result shows: the answer so far and what the job is doing, saved
    in one call for several jobs; a job that has ended keeps its end, and its progress is dropped."""
    at = datetime.now(UTC)
    first = JobProgress("Once upon", "writing", tokens=2, message="m: 2 tokens so far", changed_at=at)
    store.record_job(_job("a", "s1", "running", progress=first))
    store.record_job(_job("b", "s2", "running"))
    store.record_job(_job("c", "s3", "complete"))
    assert (store.get_job("a") or _job("", "x", "")).progress == first
    assert (store.get_job("b") or _job("", "x", "")).progress is None
    later = replace(first, partial="Once upon a time\x00", tokens=5, thoughts=1)
    store.save_progress({"a": later, "b": JobProgress("", "queued"), "c": later})
    found = store.get_job("a")
    assert found is not None and found.progress is not None and found.heartbeat_at >= at
    assert found.progress.partial.startswith("Once upon a time") and found.progress.tokens == 5
    assert (found.progress.thoughts, found.progress.changed_at) == (1, at)
    assert (store.get_job("b") or _job("", "x", "")).progress == JobProgress("", "queued")
    assert (store.get_job("c") or _job("", "x", "")).progress is None  # ended: left as it was
    store.finish_job("a", "cancelled", "stopped")
    ended = store.get_job("a")
    assert ended is not None and ended.status == "cancelled" and ended.progress is None
    store.append_turn("s2", model="m", user="u", assistant="all of it", job_id="b")
    assert (store.get_job("b") or _job("", "x", "")).progress is None
    store.save_progress({})


# --- one protocol, two backends ---------------------------------------------------------


def test_both_stores_have_every_method_of_the_protocol_and_number_migrations_alike() -> None:
    from mcp_ollama.store.postgres import MIGRATIONS as PG_MIGRATIONS
    from mcp_ollama.store.postgres import PostgresStore

    wanted = [name for name in vars(Store) if not name.startswith("_") and callable(getattr(Store, name))]
    assert len(wanted) > 20
    for cls in (ChatStore, PostgresStore):
        assert [name for name in wanted if not callable(getattr(cls, name, None))] == [], cls
    assert [m.__name__ for m in PG_MIGRATIONS] == [m.__name__ for m in store_module.MIGRATIONS]


def test_begin_turn_gives_a_session_to_one_owner_at_a_time(store: Store) -> None:
    add_turns(store, "s1", 1)
    assert [m.content for m in store.begin_turn("s1", "a", 8, 10.0) or []] == ["u1", "a1"]
    assert store.begin_turn("s1", "b", 8, 10.0) is None  # a is writing a turn of it
    assert store.begin_turn("s1", "a", 8, 10.0) is not None  # its holder may ask again
    assert store.begin_turn("s2", "b", 8, 10.0) == []  # another session is free
    store.append_turn("s1", model="m", user="u2", assistant="a2", lease_owner="a")
    assert [m.content for m in store.begin_turn("s1", "b", 8, 10.0) or []] == ["u1", "a1", "u2", "a2"]
    store.release_lease("s1", "b")
    store.renew_leases("a", 10.0)
    assert store.begin_turn("s1", "a", 8, 10.0) is not None


def test_a_schema_a_newer_version_migrated_is_refused_and_left_as_it_was(db: Db) -> None:
    with db.open() as first:
        first.append_turn("s1", model="m", user="hello", assistant="hi")
    raw(db, "INSERT INTO _migrations (name, applied_at) VALUES ('m999_from_the_future', 'x')")
    with pytest.raises(StoreError, match="newer version of mcp-ollama") as caught:
        db.open()
    assert "m999_from_the_future" in str(caught.value) and "Upgrade" in str(caught.value)
    assert raw(db, "SELECT count(*) FROM messages") == [(2,)]


# --- PostgreSQL only: the schema, replicas, passwords ------------------------------------


def soon(predicate: Callable[[], bool], limit: float = 10.0) -> bool:
    """Whether ``predicate`` holds within ``limit`` seconds (generous: it is usually at once)."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def pg() -> Iterator[Db]:
    with fresh_schema() as url:
        yield Db("postgres", url)


def test_new_postgres_schema_has_the_pinned_tables_and_byte_order_keys(pg: Db) -> None:
    with pg.open():
        pass
    assert pg.tables() == ["_migrations", "client_timeouts", "jobs", "messages", "session_leases", "sessions"]
    assert pg.columns("sessions") == [
        "id",
        "title",
        "model",
        "created_at",
        "updated_at",
        "turn_count",
        "principal",
    ]
    assert pg.columns("messages") == [
        "id", "session_id", "turn", "role", "content", "created_at", "meta", "thinking", "images"
    ]  # fmt: skip
    assert pg.columns("jobs") == [
        "id", "session_id", "model", "status", "owner", "requester", "started_at", "heartbeat_at",
        "finished_at", "expires_at", "detail", "result", "principal", "partial", "progress",
    ]  # fmt: skip
    collations = raw(
        pg,
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND collation_name = 'C' ORDER BY table_name, column_name",
    )
    assert ("sessions", "id") in collations and ("sessions", "updated_at") in collations
    assert ("messages", "session_id") in collations and ("jobs", "started_at") in collations
    indexes = raw(pg, "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1")
    assert [name for (name,) in indexes if name.startswith("idx_")] == [
        "idx_jobs_expires_at",
        "idx_jobs_principal_started_at",
        "idx_jobs_requester",
        "idx_jobs_running",
        "idx_jobs_session_id",
        "idx_messages_session_id",
        "idx_sessions_principal_updated_at",
    ]


def test_postgres_refuses_another_applications_tables_named_like_ours(pg: Db) -> None:
    raw(pg, "CREATE TABLE sessions (theirs INTEGER)")
    raw(pg, "INSERT INTO sessions VALUES (7)")
    with pytest.raises(StoreError, match="another application's tables"):
        pg.open()
    assert pg.tables() == ["sessions"] and raw(pg, "SELECT theirs FROM sessions") == [(7,)]


def test_postgres_replicas_take_a_sessions_turns_one_after_another(pg: Db) -> None:
    """Two stores on one database stand for two replicas: the advisory lock, not a lease row, decides."""
    with pg.open() as a, pg.open() as b:
        a.append_turn("s1", model="m", user="u1", assistant="a1")
        assert a.begin_turn("s1", "replica-a", 8, 10.0) is not None
        assert b.begin_turn("s1", "replica-b", 8, 10.0) is None
        a.append_turn("s1", model="m", user="u2", assistant="a2", lease_owner="replica-a")
        seen = b.begin_turn("s1", "replica-b", 8, 10.0)
        assert [m.content for m in seen or []] == ["u1", "a1", "u2", "a2"]  # the turn before, always
        assert raw(pg, "SELECT count(*) FROM session_leases") == [(0,)]
    with pg.open() as c:
        holder = pg.open()
        assert holder.begin_turn("s1", "dies", 8, 10.0) is not None
        assert c.begin_turn("s1", "c", 8, 10.0) is None
        holder.close()  # its connection ends, as a SIGKILLed replica's does: the lock goes with it
        assert soon(lambda: c.begin_turn("s1", "c", 8, 10.0) is not None)


def test_postgres_a_dead_replicas_running_job_reads_as_interrupted_at_once(pg: Db) -> None:
    now = datetime.now(UTC)
    running = JobRecord("j1", "s1", "m", "running", "replica-a", now, now, requester="r", expires_at=now)
    with pg.open() as b:
        a = pg.open()
        a.record_job(running)
        seen = b.get_job("j1")
        assert seen is not None and seen.status == "running"  # a is alive: its heartbeat is fresh too
        a.close()  # PostgreSQL ends its session (and drops its locks) a moment later
        assert soon(lambda: (b.get_job("j1") or running).status == "interrupted")
        gone = b.get_job("j1")
        assert gone is not None and gone.status == "interrupted" and gone.finished_at is not None
        assert gone.detail is not None and "replica" in gone.detail
        latest = b.latest_job("s1")
        assert latest is not None and latest.status == "interrupted"
        assert raw(pg, "SELECT status FROM jobs") == [("interrupted",)]


def test_a_postgres_password_is_never_shown(pg: Db) -> None:
    from mcp_ollama.config import load_settings

    for url in ("postgresql://u:s3cret%2Fpw@127.0.0.1:1/x", "postgres://u@127.0.0.1:1/x?password=s3cret/pw"):
        settings = load_settings({"db_path": url}, environ={})
        assert settings.db_password is not None and settings.db_password.reveal() == "s3cret/pw"
        assert "s3cret" not in settings.db_path and "s3cret" not in repr(settings)
        with pytest.raises(StoreError) as caught:
            open_store(settings)
        assert "s3cret" not in str(caught.value) and "could not be reached" in str(caught.value)
    with pytest.raises(StoreError) as caught:  # Settings built by hand, the password still in the URL
        open_store(Settings(db_path="postgresql://u:s3cret@127.0.0.1:1/x"))
    assert "s3cret" not in str(caught.value) and caught.value.path == "postgresql://u@127.0.0.1:1/x"
    # trust auth ignores it, but the password is still handed to the connection, apart from the URL
    settings = load_settings({"db_path": pg.target.replace("postgres@", "postgres:any%40pw@")}, environ={})
    with open_store(settings) as opened:
        assert "any" not in opened.path and opened.count_sessions() == 0


def test_session_id_completion_lists_the_principals_own_ids_only(store: Store) -> None:
    store.append_turn("alpha", model="m", user="u", assistant="a", principal="alice")
    store.append_turn("alps", model="m", user="u", assistant="a")
    store.append_turn("alto", model="m", user="u", assistant="a", principal="bob")
    store.append_turn("alps", model="m", user="u", assistant="a", principal="bob")
    assert store.session_ids("al") == ["alps"]  # local's range would also hold 'alice/alpha'
    assert store.session_ids("") == ["alps"]
    assert store.session_ids("al", principal="alice") == ["alpha"]
    assert store.session_ids("", principal="alice") == ["alpha"]
    assert sorted(store.session_ids("al", principal="bob")) == ["alps", "alto"]
    assert store.session_ids("alp", principal="bob") == ["alps"]
