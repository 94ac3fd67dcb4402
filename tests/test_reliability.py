"""Nothing lost, nothing unbounded, every failure told: runaway streams, hostile text, a locked store."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from mcp_ollama.settings import Settings

from .conftest import connect
from .fake_ollama import Behavior, FakeOllama
from .test_server import stored, text_of

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


async def test_an_answer_the_store_cannot_keep_is_returned_marked_unsaved(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
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
