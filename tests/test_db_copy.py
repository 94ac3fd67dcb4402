"""``mcp-ollama db copy``: a SQLite store into a fresh PostgreSQL schema; whole, again, resumed, checked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcp_ollama.cli import main
from mcp_ollama.config import Settings
from mcp_ollama.store import ChatStore, ImageNote, JobRecord, Store, open_store

from .postgres import fresh_schema, pg_raw


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema() as made:
        yield made


@pytest.fixture
def sqlite_file(tmp_path: Path) -> str:
    path = str(tmp_path / "old.sqlite3")
    note = ImageNote("image/png", 16, "ab" * 32)
    with ChatStore.open(path) as store:
        for n in range(30):
            store.append_turn(f"s{n:02}", model="llama3:8b", user=f"hello {n}", assistant=f"hi {n}")
        store.append_turn(
            "s00", model="qwen3:8b", user="look\x00", assistant="a cat", thinking="hmm", images=(note,)
        )
        store.append_turn("demo", model="m", user="alice's", assistant="yes", principal="alice")
        at = datetime.now(UTC)
        store.record_job(JobRecord("j1", "s01", "m", "complete", "old-process", at, at, finished_at=at))
    return path


def transcript(store: Store, sid: str, principal: str = "local") -> list[tuple[object, ...]]:
    return [
        (m.role, m.content, m.thinking, m.images, m.created_at)
        for m in store.messages(sid, principal=principal)
    ]


def test_a_sqlite_store_is_copied_whole_then_again_changes_nothing(
    sqlite_file: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "copy", sqlite_file, url]) == 0
    assert "copied 31 sessions (64 messages) and 1 job records" in capsys.readouterr().out
    with ChatStore.open(sqlite_file) as old, open_store(Settings(db_path=url)) as new:
        assert new.count_sessions() == old.count_sessions() == 31
        for sid in ("s00", "s29"):
            assert transcript(new, sid) == [
                (r, c.replace("\x00", "\ufffd"), t, i, w) for r, c, t, i, w in transcript(old, sid)
            ]
            assert new.get_session(sid) == old.get_session(sid)
        assert transcript(new, "demo", "alice") == transcript(old, "demo", "alice")
        assert new.get_job("j1") == old.get_job("j1")
        assert new.list_sessions(limit=5) == old.list_sessions(limit=5)
    assert main(["db", "copy", sqlite_file, url]) == 0
    assert "copied 0 sessions (0 messages) and 0 job records; 31 sessions were there already" in (
        capsys.readouterr().out
    )


def test_a_copy_resumes_and_leaves_a_session_changed_in_postgres_alone(
    sqlite_file: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "copy", sqlite_file, url]) == 0
    pg_raw(url, "DELETE FROM sessions WHERE id IN ('s05', 's06')")  # as if the first run stopped there
    with open_store(Settings(db_path=url)) as new:
        new.append_turn("s07", model="m", user="after the move", assistant="ok")
    capsys.readouterr()
    assert main(["db", "copy", sqlite_file, url]) == 0
    captured = capsys.readouterr()
    assert (
        "copied 2 sessions (4 messages)" in captured.out and "28 sessions were there already" in captured.out
    )
    assert "1 newer in PostgreSQL left alone" in captured.out and "s07 is newer" in captured.err
    assert pg_raw(url, "SELECT turn_count FROM sessions WHERE id = 's07'") == [(2,)]
    assert pg_raw(url, "SELECT count(*) FROM messages") == [(66,)]


def test_a_copy_names_what_is_wrong_in_a_sentence_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "none.sqlite3")
    assert main(["db", "copy", missing, "postgresql://u:s3cret@127.0.0.1:1/x"]) == 1
    err = capsys.readouterr().err
    assert "could not be reached" in err and "s3cret" not in err
    assert main(["db", "copy", missing, "/tmp/not-a-url"]) == 2
    assert "postgresql:// URL" in capsys.readouterr().err
