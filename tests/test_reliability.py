"""Nothing lost, nothing unbounded, every failure told: runaway streams, hostile text, a locked store."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from mcp import MCPError

from mcp_ollama.config import Settings
from mcp_ollama.store import ChatStore

from .conftest import connect, eventually
from .fake_ollama import Behavior, FakeOllama
from .rawstdio import RawServer
from .test_server import stored, text_of
from .test_server_stdio import raw_env

pytestmark = pytest.mark.anyio


async def test_an_endless_answer_is_cut_at_the_length_cap_and_the_model_stopped(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    capped = dataclasses.replace(settings, max_answer_chars=1000)
    fake.enqueue(Behavior(token_count=10**9))  # a model stuck in a loop: it never ends
    async with connect(capped, era) as client:
        result = await client.call_tool("chat", {"message": "loop", "session_id": "loop"})
    assert result.is_error is not True
    answer = result.structured_content["answer"]
    assert len(answer) == 1000
    assert result.structured_content["done_reason"] == "max_answer_chars"
    assert "MCP_OLLAMA_MAX_ANSWER_CHARS" in text_of(result)
    assert fake.hangups >= 1 or fake.active_streams == 0  # the stream was closed, not read to the end
    assert stored(capped, "loop")[1] == ("assistant", answer)


async def test_a_slow_drip_is_cut_at_the_time_cap(settings: Settings, fake: FakeOllama, era: str) -> None:
    capped = dataclasses.replace(settings, max_generation_seconds=0.5, answer_deadline=0.0)
    fake.enqueue(Behavior(token_count=10**6, token_delay=0.05))  # a byte now and then, for ever
    async with connect(capped, era) as client:
        result = await client.call_tool("chat", {"message": "drip", "session_id": "drip"})
    assert result.structured_content["done_reason"] == "max_generation_seconds"
    assert "MCP_OLLAMA_MAX_GENERATION_SECONDS" in text_of(result)
    assert stored(capped, "drip")[1][1] == result.structured_content["answer"]


async def test_a_huge_error_line_becomes_a_readable_error(settings: Settings, fake: FakeOllama) -> None:
    fake.enqueue(Behavior(tokens=["a "], error_after=1, error="E" * 1_000_000))
    async with connect(settings, "legacy") as client:
        result = await client.call_tool("chat", {"message": "hi"})
    assert result.is_error is True
    assert len(text_of(result)) < 1000


async def test_ollama_is_asked_for_uncompressed_bodies(settings: Settings, fake: FakeOllama) -> None:
    async with connect(settings, "legacy") as client:
        await client.call_tool("chat", {"message": "hi"})
    chat = [r for r in fake.requests if r.path == "/api/chat"][-1]
    assert chat.headers["accept-encoding"] == "identity"


async def test_control_sequences_and_lone_surrogates_never_reach_the_host(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.enqueue(Behavior(tokens=["Hello ", "\x1b[2J\x1b[31mred\x1b[0m", " bell\x07", " \ud800 end\n\tok"]))
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "paint", "session_id": "paint"})
    assert result.is_error is not True, text_of(result)
    expected = "Hello red bell \ufffd end\n\tok"
    assert result.structured_content["answer"] == expected
    assert stored(settings, "paint")[1] == ("assistant", expected)


async def test_absurd_counters_are_not_stored_as_given(settings: Settings, fake: FakeOllama) -> None:
    fake.enqueue(Behavior(final_fields={"eval_count": -5_000_000_000, "total_duration": 1e40}))
    async with connect(settings, "legacy") as client:
        result = await client.call_tool("chat", {"message": "count"})
    assert result.is_error is not True, text_of(result)
    assert result.structured_content["usage"]["completion_tokens"] is None
    assert result.structured_content["timings"]["total_ms"] is None


@pytest.mark.slow  # waits out SQLite's 5 s busy timeout twice (the lease, then the turn)
async def test_an_answer_the_store_cannot_keep_is_returned_marked_unsaved(
    settings: Settings, fake: FakeOllama
) -> None:
    # One era: the store is below the protocol, and each run waits out SQLite's 5 s busy timeout.
    async with connect(settings, "modern") as client:
        await client.call_tool("chat", {"message": "first", "session_id": "locked"})
        blocker = sqlite3.connect(settings.db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another program holds the write lock past the busy timeout
        try:
            result = await client.call_tool("chat", {"message": "second", "session_id": "locked"})
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    assert result.is_error is not True
    assert result.structured_content["saved"] is False
    assert result.structured_content["answer"].startswith("You said: second")
    text = text_of(result)
    assert "NOT saved" in text and "locked" in text and settings.db_path in text
    assert [m for _, m in stored(settings, "locked")] == ["first", stored(settings, "locked")[1][1]]


# --- whatever the disk state ------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs of our own, to fill up or make read-only; skipped where mounting is not allowed."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a small filesystem here: {mounted.stderr.decode(errors='replace').strip()}"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(directory: Path) -> None:
    with contextlib.suppress(OSError), (directory / "ballast").open("wb") as ballast:
        while True:
            ballast.write(b"\0" * 4096)
            ballast.flush()


def _untouched(path: Path, before: bytes) -> bool:
    return path.read_bytes() == before and not Path(f"{path}-wal").exists()


def _remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


FOREIGN_FILES = {
    "not-a-database": (b"This is a text file, not SQLite.\n" * 100, "not a healthy SQLite database"),
    "another-application": (None, "another application's database"),
    "a-newer-version": (None, "newer version of mcp-ollama"),
}


def _make_foreign(path: Path, kind: str) -> None:
    content, _ = FOREIGN_FILES[kind]
    if content is not None:
        path.write_bytes(content)
        return
    conn = sqlite3.connect(path)
    if kind == "another-application":
        conn.execute("CREATE TABLE contacts (name TEXT)")
        conn.execute("INSERT INTO contacts VALUES ('Ada')")
    else:
        with ChatStore.open(path):
            pass
        conn.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', '2030-01-01T00:00:00.000000Z')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("kind", sorted(FOREIGN_FILES))
async def test_a_file_that_is_not_ours_is_left_untouched_and_explained(
    settings: Settings, fake: FakeOllama, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "other.db"
    _make_foreign(path, kind)
    before = path.read_bytes()
    foreign = dataclasses.replace(settings, db_path=str(path))
    async with connect(foreign, "legacy") as client:  # the server starts all the same
        listed = await client.list_tools()
        answer = await client.call_tool("chat", {"message": "still there?"})
        with pytest.raises(MCPError) as refused:
            await client.list_resources()
    assert "chat" in {t.name for t in listed.tools}
    assert answer.is_error is not True
    assert answer.structured_content["saved"] is False
    assert answer.structured_content["answer"].startswith("You said: still there?")
    expected = FOREIGN_FILES[kind][1]
    assert expected in text_of(answer) and str(path) in text_of(answer)
    assert refused.value.code not in (0, None) and expected in refused.value.message
    assert _untouched(path, before)


async def test_a_full_disk_loses_no_answer(settings: Settings, fake: FakeOllama, small_fs: Path) -> None:
    full = dataclasses.replace(settings, db_path=str(small_fs / "sessions.sqlite3"))
    async with connect(full, "legacy") as client:
        first = await client.call_tool("chat", {"message": "before", "session_id": "disk"})
        _fill(small_fs)
        big = "x" * 10_000  # a turn that needs pages the disk no longer has
        second = await client.call_tool("chat", {"message": big, "session_id": "disk"})
    assert first.structured_content["saved"] is True
    assert second.is_error is not True
    assert second.structured_content["saved"] is False
    assert "disk is full" in text_of(second)
    assert second.structured_content["answer"].startswith("You said: xxx")


async def test_a_read_only_disk_still_answers(settings: Settings, fake: FakeOllama, small_fs: Path) -> None:
    _remount_read_only(small_fs)
    stuck = dataclasses.replace(settings, db_path=str(small_fs / "data" / "sessions.sqlite3"))
    async with connect(stuck, "modern") as client:
        answer = await client.call_tool("chat", {"message": "read only?"})
    assert answer.structured_content["saved"] is False
    assert "read-only" in text_of(answer) and str(small_fs / "data") in text_of(answer)


# --- the commit and the answer are one decision ------------------------------------------


@pytest.mark.slow  # 600 cancels swept across the moment an answer completes: ~20 s
def test_a_cancel_racing_the_answer_never_leaves_a_turn_the_client_was_not_told_of(
    settings: Settings, fake: FakeOllama
) -> None:
    env = {**raw_env(settings), "MCP_OLLAMA_LOG_LEVEL": "WARNING"}
    answered: set[str] = set()
    sent: list[str] = []
    with RawServer(env) as server:
        server.initialize()
        server.request("logging/setLevel", {"level": "debug"})  # more notifications in the window
        for i in range(600):
            sid = f"g{i}"
            sent.append(sid)
            chat_id = server.next_id()
            server.send(
                {
                    "jsonrpc": "2.0",
                    "id": chat_id,
                    "method": "tools/call",
                    "params": {"name": "chat", "arguments": {"message": f"race {i}", "session_id": sid}},
                }
            )
            time.sleep((i % 40) * 0.0004)  # sweep the cancel across the answer's completion
            server.send(
                {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": chat_id}}
            )
            ping_id = server.next_id()
            server.send({"jsonrpc": "2.0", "id": ping_id, "method": "ping"})
            while True:  # everything up to the ping's answer: the cancel has been read by then
                message = server.read(timeout=30)
                if message.get("id") == chat_id and "method" not in message:
                    assert "result" in message, message
                    answered.add(sid)
                elif message.get("id") == ping_id and "method" not in message:
                    break
        last = server.request("ping")
        assert last["result"] == {}
        late = [m for m in server.stdout_raw if b'"result"' in m and b"race " in m]
        server.close_stdin()
        assert server.wait(30) == 0
    with ChatStore.open(settings.db_path) as store:
        stored = {sid for sid in sent if store.get_session(sid) is not None}
    assert len(late) == len(answered)  # no answer arrived after its cancel had been read
    assert stored == answered, (
        f"{len(stored - answered)} stored, never answered; {len(answered - stored)} answered, not stored"
    )
    assert 0 < len(answered) < 600  # the sweep really crossed the moment of completion


async def test_a_store_held_by_another_program_does_not_stall_other_requests(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    events: list[str] = []
    async with connect(settings, era) as client:
        await client.call_tool("chat", {"message": "first", "session_id": "held"})
        blocker = sqlite3.connect(settings.db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the turn below waits for this lock (up to SQLite's 5 s)
        try:
            async with anyio.create_task_group() as tg:

                async def chat() -> None:
                    await client.call_tool("chat", {"message": "second", "session_id": "held"})
                    events.append("chat")

                tg.start_soon(chat)
                await wait_all_tasks_blocked()  # the turn now waits for the lock, in a worker thread
                for _ in range(3):
                    await client.list_tools()  # answered all the same
                    events.append("list")
                blocker.execute("ROLLBACK")
        finally:
            blocker.close()
    assert events == ["list", "list", "list", "chat"]
    assert [m for _, m in stored(settings, "held")][2] == "second"


def test_three_processes_take_a_shared_sessions_turns_one_after_another(
    settings: Settings, fake: FakeOllama
) -> None:
    """Two hosts can run the server on one database: each turn must see the one stored before it."""
    fake.enqueue(*(Behavior(token_count=20, token_delay=0.01) for _ in range(6)))
    failures: list[str] = []

    def host(name: str) -> None:
        try:
            with RawServer(raw_env(settings)) as server:
                server.initialize()
                for turn in range(2):
                    reply = server.request(
                        "tools/call",
                        {"name": "chat", "arguments": {"message": f"{name}-{turn}", "session_id": "shared"}},
                        timeout=60,
                    )
                    if reply["result"]["isError"]:
                        failures.append(str(reply))
                server.close_stdin()
                server.wait(30)
        except Exception as exc:  # surfaced by the assertion below
            failures.append(f"{name}: {exc!r}")

    hosts = [threading.Thread(target=host, args=(f"h{i}",)) for i in range(3)]
    for thread in hosts:
        thread.start()
    for thread in hosts:
        thread.join(120)
    assert failures == []
    transcript = [content for _, content in stored(settings, "shared")]
    assert len(transcript) == 12
    for request in fake.chat_requests:
        sent = [m["content"] for m in request["messages"][1:]]  # after the system prompt
        turn = transcript.index(sent[-1])
        assert sent[:-1] == transcript[:turn], f"{sent[-1]} was generated without the turns stored before it"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_memory_stays_bounded_under_an_endless_stream(settings: Settings, fake: FakeOllama) -> None:
    fake.enqueue(Behavior(tokens=["x" * 4096] * 10**6))  # 4 GB if nothing stopped it
    with RawServer(raw_env(settings)) as server:
        server.initialize()
        reply = server.request("tools/call", {"name": "chat", "arguments": {"message": "go on"}}, timeout=120)
        peak = _peak_rss_mib(server.proc.pid)
        server.close_stdin()
        server.wait(30)
    assert reply["result"]["structuredContent"]["done_reason"] == "max_answer_chars"
    assert len(reply["result"]["structuredContent"]["answer"]) == 100_000
    assert peak < 200, f"peak RSS {peak:.0f} MiB"


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


async def test_a_decompression_bomb_does_not_freeze_the_server(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    """A proxy that gzips anyway: 50 MiB of blank lines from a small body. Other requests go on."""
    fake.enqueue(Behavior(gzip_blank_mib=50))
    events: list[str] = []
    async with connect(settings, era) as client, anyio.create_task_group() as tg:

        async def chat() -> None:
            result = await client.call_tool("chat", {"message": "bomb", "session_id": "bomb"})
            events.append("chat")
            assert result.is_error is True
            assert "Ollama" in text_of(result) and "try again" in text_of(result)

        tg.start_soon(chat)
        assert await eventually(lambda: fake.active_streams == 0 and len(fake.chat_requests) == 1)
        await client.list_tools()  # answered while the blank lines are being skipped
        events.append("list")
    assert "list" in events and "chat" in events
    assert stored(settings, "bomb") == []


async def test_a_redirect_is_not_followed(settings: Settings, fake: FakeOllama) -> None:
    fake.enqueue(Behavior(redirect_to=f"{fake.url}/elsewhere/api/chat"))
    async with connect(settings, "legacy") as client:
        result = await client.call_tool("chat", {"message": "where?"})
    assert result.is_error is True
    assert "307" in text_of(result)
    assert [r.path for r in fake.requests if "elsewhere" in r.path] == []  # prompts stay where they were sent


async def test_deeply_nested_json_is_told_as_what_it_is(settings: Settings, fake: FakeOllama) -> None:
    import base64

    nested = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode().rstrip("=")
    fake.enqueue(
        Behavior(
            tokens=["a "], final_fields={"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
        )
    )
    async with connect(settings, "legacy") as client:
        with pytest.raises(MCPError) as refused:
            await client.list_resources(cursor=nested)
    assert refused.value.code == -32602 and "cursor" in refused.value.message.lower()
