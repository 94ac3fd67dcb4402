"""Two server replicas (``serve --http`` processes) on one PostgreSQL database, the SDK's streamable HTTP
client in both eras: a session's turns from both stay whole and in order, a chat started on one is
collected on the other, a replica killed mid-answer leaves no half turn and a job that the other
reads as interrupted, and a subscriber on one hears of a change made through the other. Each test
has a fresh schema (``tests/postgres.py``; skipped where no PostgreSQL answers, never under
CI=true)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import INVALID_PARAMS, ResourceListChangedNotification, ResourceUpdatedNotification

from mcp_ollama.transports.auth import add_token

from .conftest import client_for, free_port
from .fake_ollama import Behavior, FakeOllama
from .postgres import fresh_schema, pg_raw
from .test_tasks import TaskHandle, TasksRequester, expect_error, request, task_call

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # two server processes per test

READY_LIMIT = 60.0
"""Generous: a loaded machine may take long to import the SDK; the loop returns once it is up."""
TOKEN = "replica-test-token"
"""The operator's token (principal ``local``), the same on both replicas."""
ANSWER_DEADLINE = "1"
"""Seconds ``chat`` waits before answering "generating": short, so jobs outlive their request."""


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]


def _child_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MCP_OLLAMA_", "OLLAMA_")) and k != "HOME"
    }
    return {
        **env,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "MCP_OLLAMA_ANSWER_DEADLINE": ANSWER_DEADLINE,
        "MCP_OLLAMA_HTTP_TOKEN": TOKEN,
        "MCP_OLLAMA_TOKENS_FILE": str(home / "tokens"),
    }


def _spawn(db: str, fake: FakeOllama, home: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    argv = [sys.executable, "-m", "mcp_ollama", "serve", "--http", "--port", str(port), "--db", db]
    argv += ["--ollama-host", fake.url, "--preload", "off", "--max-parallel", "16"]
    quiet = subprocess.DEVNULL
    return f"http://127.0.0.1:{port}", subprocess.Popen(
        argv, env=_child_env(home), stdout=quiet, stderr=quiet
    )


def _ready(url: str, process: subprocess.Popen[bytes]) -> Replica:
    deadline = time.monotonic() + READY_LIMIT
    while time.monotonic() < deadline:
        assert process.poll() is None, "the replica exited while starting"
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return Replica(url, process)
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the replica did not answer /healthz within {READY_LIMIT:g} s")


@dataclass
class Pair:
    db: str
    a: Replica
    b: Replica
    bob: str
    """The token of another principal, ``bob``, on both replicas (the tokens file)."""

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return pg_raw(self.db, sql, params)


@pytest.fixture
def pair(fake: FakeOllama, tmp_path: Path) -> Iterator[Pair]:
    """Replicas A and B, both on one fresh PostgreSQL schema and the test's fake Ollama (started
    together: each start is mostly imports)."""
    bob = add_token(tmp_path / "tokens", "bob")
    with fresh_schema() as db:
        spawned = [_spawn(db, fake, tmp_path) for _ in range(2)]
        try:
            a, b = (_ready(url, process) for url, process in spawned)
            yield Pair(db, a, b, bob)
        finally:
            for _, process in spawned:
                process.terminate()
            for _, process in spawned:
                process.communicate(timeout=15)


@asynccontextmanager
async def client(replica: Replica, era: str, token: str = TOKEN, **kwargs: Any) -> AsyncIterator[Client]:
    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http,
        client_for(
            streamable_http_client(replica.url + "/mcp", http_client=http), era, **kwargs
        ) as connected,
    ):
        yield connected


async def until(predicate: Callable[[], bool], limit: float = 60.0) -> None:
    with anyio.fail_after(limit):
        while not predicate():
            await anyio.sleep(0.05)


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


async def test_concurrent_turns_on_one_session_from_two_replicas_are_all_kept_in_order(
    pair: Pair, fake: FakeOllama
) -> None:
    """Six turns sent at once, three to each replica: each request to Ollama carries every turn
    stored before it (one writer at a time, across processes), and the session holds all seven
    turns, each user message beside its own answer, numbered 1 to 7."""
    fake.default = Behavior(token_delay=0.02)  # a slow echo: the turns overlap unless serialised
    async with client(pair.a, "legacy") as a, client(pair.b, "modern") as b:
        first = await a.call_tool("chat", {"message": "turn zero"})
        assert first.is_error is not True, text_of(first)
        sid = first.structured_content["session_id"]
        async with anyio.create_task_group() as tg:
            for n in range(6):
                target = a if n % 2 == 0 else b
                tg.start_soon(target.call_tool, "chat", {"message": f"turn {n + 1}", "session_id": sid})
    await until(lambda: pair.rows("SELECT turn_count FROM sessions WHERE id = ?", (sid,)) == [(7,)])
    rows = pair.rows("SELECT turn, role, content FROM messages WHERE session_id = ? ORDER BY id", (sid,))
    assert [turn for turn, _, _ in rows] == [n // 2 + 1 for n in range(14)]
    users = [content for _, role, content in rows if role == "user"]
    answers = [content for _, role, content in rows if role == "assistant"]
    assert sorted(users) == sorted(["turn zero", *(f"turn {n}" for n in range(1, 7))])
    assert all(user in answer for user, answer in zip(users, answers, strict=True))  # the fake echoes
    # What each turn sent to Ollama: every earlier stored turn, in the stored order.
    sent = {r["messages"][-1]["content"]: r["messages"] for r in fake.chat_requests if r.get("messages")}
    for index, user in enumerate(users):
        history = [m["content"] for m in sent[user] if m["role"] == "user"]
        assert history == users[: index + 1], (user, history)


async def test_a_chat_started_on_one_replica_is_collected_on_the_other(pair: Pair, fake: FakeOllama) -> None:
    fake.default = Behavior(token_count=40, token_delay=0.05)  # ~2 s: longer than the answer deadline
    async with client(pair.a, "modern") as a:
        started = await a.call_tool("chat", {"message": "a long one"})
    assert started.structured_content["status"] == "generating", text_of(started)
    sid = started.structured_content["session_id"]
    statuses: list[str] = []
    async with client(pair.b, "legacy") as b:

        async def collected() -> bool:
            result = await b.call_tool("chat_result", {"session_id": sid})
            statuses.append(result.structured_content["status"])
            return statuses[-1] == "stored"

        with anyio.fail_after(60):
            while not await collected():
                await anyio.sleep(0.1)
        final = await b.call_tool("chat_result", {"session_id": sid})
    assert final.structured_content["answer"] == "".join(f"tok{n} " for n in range(40))
    assert set(statuses) <= {"generating", "stored"}


async def test_chat_result_on_the_other_replica_shows_the_answer_so_far_then_all_of_it(
    pair: Pair, fake: FakeOllama
) -> None:
    """A keeps the answer so far in the job's record (at most once a second): B's chat_result shows
    a growing prefix of it, with status generating, as A's own would, then the stored answer."""
    fake.default = Behavior(token_count=120, token_delay=0.05)  # ~6 s: several saves of its progress
    whole = "".join(f"tok{n} " for n in range(120))
    async with client(pair.a, "modern") as a:
        started = await a.call_tool("chat", {"message": "a long one"})
    assert started.structured_content["status"] == "generating", text_of(started)
    sid = started.structured_content["session_id"]
    seen: list[dict[str, Any]] = []
    async with client(pair.b, "legacy") as b:
        with anyio.fail_after(60):
            while not seen or seen[-1]["status"] != "stored":
                result = await b.call_tool("chat_result", {"session_id": sid})
                seen.append(result.structured_content)
                if seen[-1]["answer"] and seen[-1]["status"] == "generating":
                    assert "So far:\n" + seen[-1]["answer"] in text_of(result)
    assert seen[-1]["answer"] == whole
    partial = [found["answer"] for found in seen[:-1]]
    assert {found["status"] for found in seen[:-1]} <= {"generating"}
    assert len(set(filter(None, partial))) >= 2, partial  # saved again as it grew, not only once
    assert all(whole.startswith(answer) for answer in partial), partial
    assert partial == sorted(partial, key=len)  # it only grows
    assert all(found["tokens_so_far"] > 0 for found in seen[:-1] if found["answer"])
    # The job's record keeps no progress once the turn is stored.
    assert pair.rows("SELECT status, partial, progress FROM jobs") == [("complete", None, None)]


async def test_a_handshake_era_task_on_one_replica_is_found_and_collected_on_the_other(
    pair: Pair, fake: FakeOllama
) -> None:
    """tasks/get and tasks/result on B for a task A runs: through its record (another connection of
    the same principal may; another principal gets what an unknown id gets), and the same result."""
    fake.default = Behavior(token_count=60, token_delay=0.05)  # ~3 s
    whole = "".join(f"tok{n} " for n in range(60))
    async with client(pair.a, "legacy") as a:
        task_id = (await task_call(a, "chat", {"message": "as a task"}))["task"]["taskId"]
        async with client(pair.b, "legacy") as b, client(pair.b, "legacy", token=pair.bob) as bob:
            working = await request(b, "tasks/get", {"taskId": task_id})
            unknown = await expect_error(INVALID_PARAMS, bob, "tasks/get", {"taskId": "f" * 32})
            for method in ("tasks/get", "tasks/result", "tasks/cancel"):
                foreign = await expect_error(INVALID_PARAMS, bob, method, {"taskId": task_id})
                assert (foreign.message, foreign.error.data) == (unknown.message, unknown.error.data)
            there = await request(b, "tasks/result", {"taskId": task_id})
            after = await request(b, "tasks/get", {"taskId": task_id})
        here = await request(a, "tasks/result", {"taskId": task_id})
    assert working["status"] == "working" and working["taskId"] == task_id
    assert there["structuredContent"]["answer"] == whole and there["isError"] is False
    assert there["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task_id}
    assert there == here
    assert after["status"] == "completed"


async def test_a_handshake_era_task_is_cancelled_from_the_other_replica(pair: Pair, fake: FakeOllama) -> None:
    fake.default = Behavior(token_count=100_000, token_delay=0.05)  # never ends by itself
    async with client(pair.a, "legacy") as a:
        task_id = (await task_call(a, "chat", {"message": "stop me"}))["task"]["taskId"]
        await until(lambda: fake.active_streams >= 1)
        async with client(pair.b, "legacy") as b:
            cancelled = await request(b, "tasks/cancel", {"taskId": task_id})
            again = await expect_error(INVALID_PARAMS, b, "tasks/cancel", {"taskId": task_id})
            result = await request(b, "tasks/result", {"taskId": task_id})
        await until(lambda: fake.hangups >= 1, limit=30)  # A closed Ollama's stream: the model stopped
        mine = await request(a, "tasks/get", {"taskId": task_id})
    assert cancelled["status"] == "cancelled", cancelled
    assert "tasks/cancel on another server replica" in cancelled.get("statusMessage", "")
    assert "terminal status 'cancelled'" in again.error.message
    assert result["structuredContent"]["status"] == "cancelled"
    assert mine["status"] == "cancelled"
    assert pair.rows("SELECT status FROM jobs") == [("cancelled",)]


async def test_a_2026_task_on_one_replica_is_polled_and_collected_on_the_other(
    pair: Pair, fake: FakeOllama
) -> None:
    """A 2026-07-28 chat that outlasts DIRECT_ANSWER_SECONDS becomes a task on A; tasks/get on B
    shows it working (with what it is doing), then completed with the result inline."""
    fake.default = Behavior(token_count=80, token_delay=0.05)  # ~4 s
    whole = "".join(f"tok{n} " for n in range(80))
    async with client(pair.a, "modern", extensions=[TasksRequester()]) as a:
        handle = await a.session.call_tool("chat", {"message": "as a task"}, allow_claimed=True)
    assert isinstance(handle, TaskHandle), handle
    seen: list[dict[str, Any]] = []
    async with (
        client(pair.b, "modern", extensions=[TasksRequester()]) as b,
        client(pair.b, "modern", token=pair.bob, extensions=[TasksRequester()]) as bob,
    ):
        with anyio.fail_after(60):
            while not seen or seen[-1]["status"] == "working":
                seen.append(await request(b, "tasks/get", {"taskId": handle.task_id}))
                await anyio.sleep(0.2)
        unknown = await expect_error(INVALID_PARAMS, bob, "tasks/get", {"taskId": "f" * 32})
        foreign = await expect_error(INVALID_PARAMS, bob, "tasks/get", {"taskId": handle.task_id})
    assert (foreign.message, foreign.error.data) == (unknown.message, unknown.error.data)
    assert seen[-1]["status"] == "completed", seen[-1]
    assert seen[-1]["result"]["structuredContent"]["answer"] == whole
    assert seen[-1]["result"]["resultType"] == "complete"
    assert any("so far" in found.get("statusMessage", "") for found in seen[:-1]), seen


async def test_a_replica_killed_mid_answer_leaves_no_half_turn_and_reads_interrupted_on_the_other(
    pair: Pair, fake: FakeOllama
) -> None:
    fake.enqueue(Behavior(), Behavior(token_count=100_000, token_delay=0.05))  # the second never ends
    async with client(pair.a, "legacy") as a:
        first = await a.call_tool("chat", {"message": "kept"})
        sid = first.structured_content["session_id"]
        started = await a.call_tool("chat", {"message": "cut short", "session_id": sid})
    assert started.structured_content["status"] == "generating", text_of(started)
    assert pair.rows("SELECT status FROM jobs") == [("running",)]
    pair.a.process.send_signal(signal.SIGKILL)
    pair.a.process.wait(timeout=15)
    seen: list[str] = []
    async with client(pair.b, "modern") as b:
        with anyio.fail_after(30):  # PostgreSQL notices the dead connection a moment after the kill
            while not seen or seen[-1] != "interrupted":
                after = await b.call_tool("chat_result", {"session_id": sid})
                seen.append(after.structured_content["status"])
                await anyio.sleep(0.05)
    assert set(seen) <= {"generating", "interrupted"}, seen
    assert "interrupted" in text_of(after) and "chat" in text_of(after)
    rows = pair.rows("SELECT content FROM messages WHERE session_id = ? ORDER BY id", (sid,))
    assert [content for (content,) in rows][:1] == ["kept"] and len(rows) == 2  # no half turn
    assert pair.rows("SELECT status FROM jobs") == [("interrupted",)]


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed:mcp.MCPDeprecationWarning")
async def test_a_subscriber_on_one_replica_hears_a_change_made_through_the_other(
    pair: Pair, fake: FakeOllama
) -> None:
    """B's client subscribes to a session; a turn stored through A updates it, and a session made or
    deleted through A changes B's list (PostgreSQL NOTIFY from A, LISTEN on B)."""
    heard: list[object] = []

    async def on_message(message: object) -> None:
        heard.append(message)

    def updated() -> list[str]:
        return [m.params.uri for m in heard if isinstance(m, ResourceUpdatedNotification)]

    def list_changes() -> int:
        return sum(isinstance(m, ResourceListChangedNotification) for m in heard)

    async with client(pair.a, "modern") as a, client(pair.b, "legacy", message_handler=on_message) as b:
        await b.list_resources()  # B's connection has a list that can go stale
        await b.call_tool("chat", {"message": "start", "session_id": "watched"})
        await b.subscribe_resource("chat://sessions/watched")
        heard.clear()
        await a.call_tool("chat", {"message": "through A", "session_id": "watched"})
        await until(lambda: updated() == ["chat://sessions/watched"], limit=30)
        before = list_changes()
        await a.call_tool("chat", {"message": "a new session on A"})
        await until(lambda: list_changes() > before, limit=30)
        await a.call_tool("delete_session", {"session_id": "watched"})
        await until(lambda: updated() == ["chat://sessions/watched"] * 2, limit=30)


async def test_cancel_chat_on_one_replica_stops_the_answer_the_other_is_writing(
    pair: Pair, fake: FakeOllama
) -> None:
    fake.enqueue(Behavior(), Behavior(token_count=100_000, token_delay=0.05))  # the second never ends
    async with client(pair.a, "modern") as a:
        first = await a.call_tool("chat", {"message": "kept"})
        sid = first.structured_content["session_id"]
        started = await a.call_tool("chat", {"message": "stop me", "session_id": sid})
        assert started.structured_content["status"] == "generating", text_of(started)
        async with client(pair.b, "legacy") as b:
            stopped = await b.call_tool("cancel_chat", {"session_id": sid})
            assert stopped.structured_content["cancelled"] is True, text_of(stopped)
            assert "another server replica" in text_of(stopped)
            after = await b.call_tool("chat_result", {"session_id": sid})
        assert after.structured_content["status"] == "cancelled", text_of(after)
        await until(lambda: fake.hangups >= 1, limit=30)  # A closed Ollama's stream: the model stopped
    rows = pair.rows("SELECT content FROM messages WHERE session_id = ? ORDER BY id", (sid,))
    assert len(rows) == 2 and rows[0] == ("kept",)  # nothing of the stopped answer
    assert pair.rows("SELECT status FROM jobs") == [("cancelled",)]
