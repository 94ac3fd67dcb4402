"""Hosts that give up before the answer: a cancel naming the host's own timeout keeps the answer for
``chat_result`` (no arguments needed), a user's cancel still stops the model, and the server learns
each client's timeout and answers ``generating`` before it from then on (``server/patience.py``).

The clients here are the SDK's own: their ``read_timeout_seconds`` sends ``notifications/cancelled``
with the reason "timed out after …s", as hosts' SDKs do. Nothing asserts how long anything took:
the tests check statuses and what the fake Ollama and the store saw.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp_types import REQUEST_TIMEOUT, Implementation

from mcp_ollama.config import Settings
from mcp_ollama.server import build_server
from mcp_ollama.server.patience import answer_before, is_timeout
from mcp_ollama.store import ChatStore

from .conftest import client_for, connect, eventually, stdio_params
from .fake_ollama import Behavior, FakeOllama
from .test_server import stored, text_of

pytestmark = pytest.mark.anyio

IMPATIENT = Implementation(name="impatient-host", version="1")
LONG_TOKENS = 40
LONG = Behavior(token_count=LONG_TOKENS, token_delay=0.1)
"""At least 4 s of answer: longer than the clients here wait."""
WHOLE = "".join(f"tok{i} " for i in range(LONG_TOKENS))


async def time_out(client: Client, arguments: dict[str, Any], timeout: float) -> None:
    """Call chat and give up after ``timeout`` seconds, as a host's SDK does."""
    with pytest.raises(MCPError) as caught:
        await client.call_tool("chat", arguments, read_timeout_seconds=timeout)
    assert caught.value.error.code == REQUEST_TIMEOUT


def learned_timeout(settings: Settings) -> tuple[float, Any] | None:
    with ChatStore.open(settings.db_path) as store:
        return store.client_timeout("impatient-host")


async def collect(client: Client, arguments: dict[str, Any], limit: int = 400) -> dict[str, Any]:
    """Call chat_result with ``arguments`` until the answer is no longer being written."""
    for _ in range(limit):
        result = await client.call_tool("chat_result", arguments)
        assert result.is_error is not True, text_of(result)
        assert result.structured_content is not None
        if result.structured_content["status"] != "generating":
            return result.structured_content
    raise AssertionError(f"still generating after {limit} chat_result calls")


def test_timeout_reasons_are_told_from_a_users_stop() -> None:
    for reason in (
        "SdkError: Request timed out",  # @modelcontextprotocol/client 2.x
        "SdkError [RequestTimeout]: Request timed out",
        "McpError: MCP error -32001: Request timed out",  # the 1.x SDKs
        "timed out after 10.0s",  # the Python SDK 2.x
        "Timeout",
    ):
        assert is_timeout(reason), reason
    for reason in (None, "", "caller cancelled", "AbortError: This operation was aborted", "user stopped"):
        assert not is_timeout(reason), reason
    for timeout in (1.5, 3.0, 10.0, 60.0, 300.0):
        assert 0 < answer_before(timeout) < timeout
    assert answer_before(60.0) > 45.0  # a margin, not half the host's patience


async def test_a_host_that_times_out_gets_the_whole_answer_from_chat_result_with_no_arguments(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    """Over stdio, both eras: the host gives up at 1 s, never having seen the session id."""
    fake.enqueue(Behavior(token_count=LONG_TOKENS, token_delay=0.05))  # at least 2 s
    async with client_for(stdio_params(settings), era, client_info=IMPATIENT) as client:
        await time_out(client, {"message": "tell me a long story"}, 1.0)
        final = await collect(client, {})
    assert final["status"] == "complete"
    assert final["answer"] == WHOLE
    assert final["new_session"] is True
    assert fake.hangups == 0  # the model was never stopped
    assert len(fake.chat_requests) == 1
    assert stored(settings, final["session_id"]) == [("user", "tell me a long story"), ("assistant", WHOLE)]


async def test_a_plain_cancel_still_stops_the_model_at_once(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    """A user's stop ("caller cancelled" from the SDK, or no reason at all) closes Ollama's stream."""
    fake.enqueue(Behavior(token_count=10_000, token_delay=0.01))
    async with connect(settings, era, client_info=IMPATIENT) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "chat", {"message": "stop me", "session_id": "stop-me"})
            assert await eventually(lambda: fake.active_streams == 1)
            tg.cancel_scope.cancel()
        assert await eventually(lambda: fake.hangups >= 1, timeout=10)
        result = await client.call_tool("chat_result", {})
    assert result.structured_content is not None
    assert result.structured_content["status"] == "cancelled"
    assert result.structured_content["saved"] is False
    assert stored(settings, "stop-me") == []
    with ChatStore.open(settings.db_path) as store:
        assert store.client_timeout("impatient-host") is None  # a stop teaches nothing


async def test_after_one_timeout_the_clients_next_calls_answer_generating_before_it(
    settings: Settings, fake: FakeOllama
) -> None:
    """Learned once, kept in the store: a restarted server answers that client in time, others as
    configured. The later calls wait far longer than the first did, so a `generating` answer (the
    model still writing) can only come from the learned deadline, not from the client giving up."""
    fake.enqueue(LONG)
    async with Client(build_server(settings), mode="legacy", client_info=IMPATIENT) as client:
        await time_out(client, {"message": "first", "session_id": "learn-1"}, 2.0)
        assert await eventually(lambda: learned_timeout(settings) is not None)  # the cancel is on its way
        learned = learned_timeout(settings)
        # The server times the wait from the request's arrival to the cancel's, so it may read a
        # little under or over the client's 2 s (both messages cross a busy machine): a second either
        # way is the margin, and the margin answer_before leaves covers it.
        assert learned is not None and 1.0 < learned[0] < 3.0
        assert answer_before(learned[0]) < 2.0  # the host that gave up at 2 s is now answered in time

        fake.enqueue(LONG)
        second = await client.call_tool("chat", {"message": "second", "session_id": "learn-2"}, 30.0)
        assert second.structured_content is not None
        assert second.structured_content["status"] == "generating"
        assert second.structured_content["tokens_so_far"] < LONG_TOKENS
        assert "learn-2" in text_of(second)
        first = await collect(client, {"session_id": "learn-1"})  # the first answer went on meanwhile
        assert first["status"] == "complete" and first["answer"] == WHOLE

    fake.enqueue(LONG)
    async with Client(build_server(settings), mode="legacy", client_info=IMPATIENT) as client:
        again = await client.call_tool("chat", {"message": "third", "session_id": "learn-3"}, 30.0)
    assert again.structured_content is not None and again.structured_content["status"] == "generating"
    fake.enqueue(Behavior(token_count=20, token_delay=0.1))  # longer than the impatient host's deadline
    other = Implementation(name="patient-host", version="1")
    async with Client(build_server(settings), mode="legacy", client_info=other) as client:
        patient = await client.call_tool("chat", {"message": "fourth", "session_id": "learn-4"}, 30.0)
    assert patient.structured_content is not None and patient.structured_content["status"] == "complete"
    assert len(stored(settings, "learn-1")) == 2  # the timed-out turn, stored once


async def test_chat_result_with_no_arguments_finds_the_callers_newest_chat(
    settings: Settings, fake: FakeOllama
) -> None:
    async with connect(settings, "legacy") as client:
        nothing = await client.call_tool("chat_result", {})
        assert nothing.is_error is True
        assert "chat" in text_of(nothing)
        await client.call_tool("chat", {"message": "older", "session_id": "older"})
        await client.call_tool("chat", {"message": "newer", "session_id": "newer"})
        here = await client.call_tool("chat_result", {})
    assert here.structured_content is not None
    assert here.structured_content["session_id"] == "newer"
    async with connect(settings, "modern") as client:  # a new process: only the store knows
        later = await client.call_tool("chat_result", {})
    assert later.structured_content is not None
    assert later.structured_content["session_id"] == "newer"
    assert later.structured_content["status"] == "stored"


async def test_an_answer_interrupted_by_a_restart_reports_what_is_known(
    settings: Settings, fake: FakeOllama
) -> None:
    """The Inspector CLI starts a server per call: the second finds the first's job interrupted."""
    fake.enqueue(LONG)
    short = dataclasses.replace(settings, answer_deadline=0.3)
    async with connect(short, "legacy") as client:
        started = await client.call_tool("chat", {"message": "slow", "session_id": "cut"})
        assert started.structured_content is not None
        assert started.structured_content["status"] == "generating"
        assert started.structured_content["saved"] is False
        assert started.structured_content["new_session"] is True
        assert "new session cut" in text_of(started)
    async with connect(short, "legacy") as client:
        result = await client.call_tool("chat_result", {})
    assert result.structured_content is not None
    assert result.structured_content["session_id"] == "cut"
    assert result.structured_content["status"] == "interrupted"
    assert result.structured_content["tokens_so_far"] is None  # not 0: this process never saw it
    assert result.structured_content["saved"] is False
