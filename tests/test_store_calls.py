"""``core.store_calls.run_store``: a turn's store work on the event loop when it waits for nobody,
in a worker thread when it would wait, and never done twice or half.

Each test learns where the work ran from the thread it ran in, and proves the loop stayed free
by a task that keeps running while the work waits; nothing here times anything.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from mcp_ollama.core.store_calls import keep_checkpointing, run_store
from mcp_ollama.errors import StoreError
from mcp_ollama.store import NOT_NOW, ChatStore, Store, base
from mcp_ollama.store.postgres import PostgresStore

from .postgres import fresh_schema

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChatStore]:
    with ChatStore.open(tmp_path / "chat.db") as opened:
        yield opened


def turn(store: Store, sid: str, text: str) -> tuple[bool, int]:
    """Store one turn; whether it made the session, and the thread it was stored in."""
    created = store.append_turn(sid, model="m", user=text, assistant=f"You said: {text}")
    return created, threading.get_ident()


def stored(path: str, sid: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT content FROM messages WHERE session_id = ? AND role = 'user' ORDER BY id", (sid,)
        ).fetchall()
    return [content for (content,) in rows]


async def test_a_turn_nobody_else_writes_is_stored_on_the_event_loop(store: ChatStore) -> None:
    created, thread = await run_store(store, lambda: turn(store, "s", "hello"))
    assert created is True
    assert thread == threading.get_ident()  # no worker thread: the loop's own
    assert stored(store.path, "s") == ["hello"]


async def test_a_database_another_program_writes_sends_the_turn_to_a_thread_and_the_loop_runs_on(
    store: ChatStore,
) -> None:
    await run_store(store, lambda: turn(store, "s", "first"))
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another program holds SQLite's write lock
    ticks = 0
    results: list[tuple[bool, int]] = []
    try:
        async with anyio.create_task_group() as tg:

            async def write() -> None:
                results.append(await run_store(store, lambda: turn(store, "s", "second")))

            tg.start_soon(write)
            await wait_all_tasks_blocked()  # the turn now waits for the lock, off the loop
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
                ticks += 1  # the loop runs meanwhile
            assert results == []  # still waiting for the lock
            blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    assert ticks == 5
    [(created, thread)] = results
    assert created is False and thread != threading.get_ident()  # a worker thread stored it
    assert stored(store.path, "s") == ["first", "second"]  # once, not twice


async def test_a_cancelled_caller_stores_nothing(store: ChatStore) -> None:
    """As with ``anyio.to_thread.run_sync``: a job its request cancelled must not store on the way out."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        await run_store(store, lambda: turn(store, "s", "hello"))
    assert scope.cancelled_caught
    assert stored(store.path, "s") == []


def test_work_that_would_wait_for_sqlite_says_not_now_and_changes_nothing(store: ChatStore) -> None:
    store.append_turn("s", model="m", user="first", assistant="ok")
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert store.now_or_not(lambda: turn(store, "s", "second")) is NOT_NOW
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert stored(store.path, "s") == ["first"]
    # and the connection waits again as a worker thread's should (SQLite's busy timeout is back)
    assert store._conn.execute("PRAGMA busy_timeout").fetchone() == (base.BUSY_TIMEOUT_MS,)


def test_work_finding_a_thread_on_the_connection_says_not_now_without_waiting(store: ChatStore) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._transaction():  # a worker thread is in the middle of a transaction
            holding.set()
            release.wait(60)

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        assert holding.wait(60)
        assert store.now_or_not(lambda: turn(store, "s", "hello")) is NOT_NOW
    finally:
        release.set()
        worker.join(60)
    assert stored(store.path, "s") == []


def test_a_worker_threads_busy_database_stays_its_own_error_while_the_loop_works_at_once(
    store: ChatStore,
) -> None:
    """The loop being inside ``now_or_not`` says nothing about a worker thread's own transaction."""
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    store._conn.execute("PRAGMA busy_timeout = 0")  # fail at once rather than after 5 s
    store._quick_in = threading.get_ident() + 1  # another thread (the loop's) is inside now_or_not
    try:
        with pytest.raises(StoreError, match="locked"):
            store.append_turn("s", model="m", user="hello", assistant="ok")
    finally:
        store._quick_in = None
        blocker.execute("ROLLBACK")
        blocker.close()


def test_work_of_two_transactions_busy_after_the_first_waits_rather_than_redo_it(store: ChatStore) -> None:
    """Once part of the work is stored, a busy database cannot send it to a thread (it would run twice)."""
    done: list[str] = []

    def two() -> None:
        store.append_turn("s", model="m", user="one", assistant="ok")
        done.append("one")
        blocker.execute("BEGIN IMMEDIATE")
        threading.Timer(1.0, lambda: blocker.execute("ROLLBACK")).start()  # lets go while we wait
        store.append_turn("s", model="m", user="two", assistant="ok")
        done.append("two")

    blocker = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    try:
        assert store.now_or_not(two) is None
    finally:
        blocker.close()
    assert done == ["one", "two"]
    assert stored(store.path, "s") == ["one", "two"]


async def test_checkpoints_run_in_a_background_thread_never_on_a_turns_path(
    store: ChatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "CHECKPOINT_EVERY", 3)
    threads: list[int] = []
    checkpoint = store.checkpoint

    def counted() -> None:
        threads.append(threading.get_ident())
        checkpoint()

    monkeypatch.setattr(store, "checkpoint", counted)
    for n in range(4):
        await run_store(store, partial(turn, store, f"s{n}", "hello"))
    assert threads == [] and store.checkpoint_due()  # the turns stored on the loop left it due
    async with anyio.create_task_group() as tg:
        tg.start_soon(keep_checkpointing, store, 0.01)
        with anyio.fail_after(60):
            while not threads:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert threading.get_ident() not in threads and not store.checkpoint_due()
    with sqlite3.connect(store.path) as conn:  # everything in the log was copied: nothing is stuck
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and frames == copied


def test_a_write_in_a_thread_checkpoints_when_one_is_due(
    store: ChatStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "CHECKPOINT_EVERY", 3)
    for n in range(3):
        turn(store, f"s{n}", "hello")  # as a worker thread does: no now_or_not around it
    assert not store.checkpoint_due()


async def test_the_postgresql_store_always_works_in_a_thread() -> None:
    with fresh_schema() as url, PostgresStore.open(url) as store:
        assert store.now_or_not(lambda: 1) is NOT_NOW
        created, thread = await run_store(store, lambda: turn(store, "s", "hello"))
    assert created is True and thread != threading.get_ident()
