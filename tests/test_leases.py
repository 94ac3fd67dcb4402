"""Session leases: how two processes on one database take a session's turns one after the other.

The store's side (``store/sessions.py``: ``begin_turn``, ``release_lease``, ``renew_leases`` and the
release inside ``append_turn``) on a real SQLite file, with a second ``ChatStore`` on the same file
standing in for another process; then ``core/chat.py``'s side: a turn gives its lease back when it
is stored, fails, is cancelled or cannot be written. A lease that outlived its holder is made by
moving its expiry into the past (no test waits for a clock); every wait has a generous limit, so a
lease that blocks for ever fails the test instead of hanging it.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend.pool import OllamaPool
from mcp_ollama.backend_errors import OllamaStatusError
from mcp_ollama.config import Settings
from mcp_ollama.core.chat import ChatService
from mcp_ollama.core.planning import plan_turn
from mcp_ollama.core.turns import LEASE_SECONDS, Unobserved
from mcp_ollama.store import ChatStore, StoredMessage

from .conftest import eventually
from .fake_ollama import Behavior, FakeOllama

LIMIT = 20.0
"""Seconds a test waits for a condition; a lease that never ends fails the test after it."""
HISTORY = 8


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "leases.sqlite3"


@pytest.fixture
def first(path: Path) -> Iterator[ChatStore]:
    with ChatStore.open(path) as store:
        yield store


@pytest.fixture
def second(path: Path, first: ChatStore) -> Iterator[ChatStore]:
    """The same database opened again: another process's store."""
    with ChatStore.open(path) as store:
        yield store


def begin(store: ChatStore, sid: str, owner: str, principal: str = "local") -> list[StoredMessage] | None:
    return store.begin_turn(sid, owner, HISTORY, LEASE_SECONDS, principal=principal)


def lease_rows(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT session_id, owner FROM session_leases ORDER BY session_id").fetchall()
    return [(str(sid), str(owner)) for sid, owner in rows]


def expire(path: Path, owner: str) -> None:
    """``owner`` died: its leases ran out a minute ago (as if it stopped renewing them)."""
    past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE session_leases SET expires_at = ? WHERE owner = ?", (past, owner))
        conn.commit()


# --- the store ------------------------------------------------------------------------------------


def test_begin_turn_takes_the_lease_and_reads_the_history_together(
    first: ChatStore, second: ChatStore, path: Path
) -> None:
    first.append_turn("s1", model="m", user="u1", assistant="a1")
    history = begin(first, "s1", "A")
    assert history is not None and [m.content for m in history] == ["u1", "a1"]
    assert lease_rows(path) == [("s1", "A")]
    assert begin(second, "s1", "B") is None  # A is writing a turn of s1
    assert begin(first, "s1", "A") is not None  # its own lease does not stop A
    assert begin(second, "s2", "B") == []  # another session is free; a new one has no history


def test_storing_the_turn_ends_its_lease_in_the_same_transaction(
    first: ChatStore, second: ChatStore, path: Path
) -> None:
    assert begin(first, "s1", "A") == []
    first.append_turn("s1", model="m", user="u1", assistant="a1", lease_owner="A")
    assert lease_rows(path) == []
    history = begin(second, "s1", "B")
    assert history is not None and [m.content for m in history] == ["u1", "a1"]  # B sees A's turn


def test_a_turn_stored_by_someone_else_leaves_the_holders_lease(
    first: ChatStore, second: ChatStore, path: Path
) -> None:
    assert begin(first, "s1", "A") == []
    second.append_turn("s1", model="m", user="u", assistant="a", lease_owner="B")
    second.append_turn("s1", model="m", user="u", assistant="a")
    assert lease_rows(path) == [("s1", "A")]
    assert begin(second, "s1", "B") is None


def test_release_ends_only_the_owners_lease(first: ChatStore, second: ChatStore, path: Path) -> None:
    assert begin(first, "s1", "A") == []
    second.release_lease("s1", "B")  # B holds nothing: A's lease stays
    assert begin(second, "s1", "B") is None
    first.release_lease("s1", "A")  # A's turn failed
    assert lease_rows(path) == []
    assert begin(second, "s1", "B") == []


def test_a_lease_whose_holder_stopped_renewing_it_does_not_block(
    first: ChatStore, second: ChatStore, path: Path
) -> None:
    assert begin(first, "s1", "A") == []
    expire(path, "A")
    assert begin(second, "s1", "B") == []
    assert lease_rows(path) == [("s1", "B")]
    assert begin(first, "s1", "A") is None  # A came back to life too late: B holds it now


def test_renewal_pushes_back_the_renewers_own_leases_only(
    first: ChatStore, second: ChatStore, path: Path
) -> None:
    assert begin(first, "s1", "A") == []
    assert begin(second, "s2", "B") == []
    expire(path, "A")
    expire(path, "B")
    second.renew_leases("B", LEASE_SECONDS)  # B is alive and writing s2; A is dead
    with ChatStore.open(path) as third:
        assert begin(third, "s1", "C") == []  # A's lease still ran out
        assert begin(third, "s2", "C") is None  # B's is good again
    first.renew_leases("nobody", LEASE_SECONDS)
    assert begin(second, "s2", "D") is None


def test_leases_are_per_principal(first: ChatStore, second: ChatStore) -> None:
    assert begin(first, "demo", "A", principal="alice") == []
    assert begin(second, "demo", "B") == []  # local's demo is another session
    assert begin(second, "demo", "B", principal="bob") == []
    assert begin(second, "demo", "B", principal="alice") is None


# --- a turn gives its lease back -------------------------------------------------------------------


class Watching(Unobserved):
    def __init__(self) -> None:
        self.queued_count = 0

    def queued(self) -> None:
        self.queued_count += 1


@pytest.fixture
async def service(settings: Settings, path: Path, first: ChatStore) -> AsyncIterator[ChatService]:
    configured = dataclasses.replace(settings, db_path=str(path))
    client = OllamaClient(configured.ollama_url, connect_timeout=2, read_timeout=30)
    async with OllamaPool([client]) as pool:
        yield ChatService(configured, pool, first)


pytestmark = pytest.mark.anyio


async def test_a_stored_turn_leaves_no_lease(service: ChatService, second: ChatStore, path: Path) -> None:
    outcome = await service.turn("hello", session_id="s1")
    assert outcome.store_error is None
    assert lease_rows(path) == []
    assert begin(second, "s1", "other") is not None


async def test_a_failed_turn_gives_its_lease_back(
    service: ChatService, fake: FakeOllama, second: ChatStore, path: Path
) -> None:
    fake.enqueue(Behavior(status=500, error="llama runner process has terminated"))
    with pytest.raises(OllamaStatusError):
        await service.turn("hello", session_id="s1")
    assert lease_rows(path) == []
    assert begin(second, "s1", "other") == []  # and nothing was stored


async def test_a_cancelled_turn_gives_its_lease_back(
    service: ChatService, fake: FakeOllama, second: ChatStore, path: Path
) -> None:
    fake.enqueue(Behavior(token_count=5000, token_delay=0.05))
    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: service.turn("write for ever", session_id="s1"))
            assert await anyio.to_thread.run_sync(fake.wait_for_active, 1, LIMIT)
            assert lease_rows(path) == [("s1", service.owner)]
            tg.cancel_scope.cancel()
    assert lease_rows(path) == []
    assert begin(second, "s1", "other") == []


async def test_a_turn_that_cannot_be_stored_gives_its_lease_back(
    service: ChatService, second: ChatStore, path: Path
) -> None:
    with closing(sqlite3.connect(path)) as conn:  # every write of a message fails, as on a full disk
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'full'); END")
        conn.commit()
    outcome = await service.turn("hello", session_id="s1")
    assert outcome.store_error is not None and outcome.answer
    assert lease_rows(path) == []
    assert begin(second, "s1", "other") == []


async def test_a_turn_waits_for_another_process_and_sees_its_turn(
    service: ChatService, settings: Settings, fake: FakeOllama, second: ChatStore, path: Path
) -> None:
    assert begin(second, "s1", "other") == []  # the other process is writing a turn of s1
    observer = Watching()
    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: service.run(plan_turn(settings, "mine", session_id="s1"), observer))
            assert await eventually(lambda: observer.queued_count > 0, LIMIT)
            assert fake.chat_requests == []  # it has not read the history yet
            second.append_turn("s1", model="m", user="theirs", assistant="their answer", lease_owner="other")
    sent = [m["content"] for m in fake.chat_requests[-1]["messages"]]
    assert sent[1:] == ["theirs", "their answer", "mine"]
    assert lease_rows(path) == []


async def test_a_dead_processs_lease_does_not_hold_up_the_next_turn(
    service: ChatService, settings: Settings, second: ChatStore, path: Path
) -> None:
    assert begin(second, "s1", "dead") == []
    expire(path, "dead")
    observer = Watching()
    with anyio.fail_after(LIMIT):
        outcome = await service.run(plan_turn(settings, "hello", session_id="s1"), observer)
    assert outcome.store_error is None and observer.queued_count == 0
    assert lease_rows(path) == []
