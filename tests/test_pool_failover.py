"""``OllamaPool`` failover beyond a 503 at stream open and a stopped server.

A rate-limiting proxy's 429, an error or a malformed line as the stream's very first line (status
200: only reading the first chunk tells), and a server that refuses connections, which must be set
aside after one refusal rather than be tried first by every chat. Two loopback fake Ollamas with
the same model; requests are counted per server, and nothing is timed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import anyio
import pytest

from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend.models import ChatMessage, ChatRequest
from mcp_ollama.backend.pool import OllamaPool, Tuning

from .fake_ollama import LLAMA3, Behavior, FakeOllama

pytestmark = pytest.mark.anyio

LIMIT = 30.0
"""Seconds a chat may take before the test fails; never a measure of speed."""
STEADY = Tuning(
    list_timeout=2.0,
    probe_timeout=2.0,
    busy_delay=(0.01, 0.05),
    refused_backoff=(600.0, 600.0),  # a server set aside stays aside for the whole test
    ps_seconds=600.0,  # no load-state read between chats: only the chats themselves judge a server
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def first() -> Iterator[FakeOllama]:
    with FakeOllama(models=[LLAMA3]) as server:
        yield server


@pytest.fixture
def second() -> Iterator[FakeOllama]:
    with FakeOllama(models=[LLAMA3]) as server:
        yield server


def pool_of(*fakes: FakeOllama) -> OllamaPool:
    clients = [OllamaClient(fake.url, connect_timeout=2.0, read_timeout=30.0) for fake in fakes]
    return OllamaPool(clients, max_parallel=4, tuning=STEADY)


async def answer(pool: OllamaPool, text: str = "hello there") -> str:
    request = ChatRequest(model="llama3:8b", messages=[ChatMessage(role="user", content=text)])
    with anyio.fail_after(LIMIT):
        async with pool.chat_stream(request) as chunks:
            return "".join([chunk.message.content async for chunk in chunks if chunk.message])


def asked(fake: FakeOllama) -> list[str]:
    """The chats ``fake`` received (a load, with no messages, is not one)."""
    return [body["messages"][-1]["content"] for body in fake.chat_requests if body["messages"]]


async def test_a_rate_limited_429_passes_the_chat_to_the_next_server(
    first: FakeOllama, second: FakeOllama
) -> None:
    first.enqueue(Behavior(status=429, error="rate limit exceeded, retry later"))
    async with pool_of(first, second) as pool:
        got = await answer(pool, "limited")
    assert got.startswith("You said: limited")
    assert (asked(first), asked(second)) == (["limited"], ["limited"])


@pytest.mark.parametrize(
    "behavior",
    [
        Behavior(error_after=0, error="llama runner process has terminated: exit status 2"),
        Behavior(malformed_after=0),
        Behavior(cut_after=0),
    ],
    ids=["error-line", "malformed-line", "cut"],
)
async def test_a_stream_that_fails_on_its_first_line_passes_the_chat_to_the_next_server(
    first: FakeOllama, second: FakeOllama, behavior: Behavior
) -> None:
    """Status 200, then an error line (or garbage, or nothing) first: the user never sees it."""
    first.enqueue(behavior)
    async with pool_of(first, second) as pool:
        got = await answer(pool, "first line")
    assert got.startswith("You said: first line")
    assert (asked(first), asked(second)) == (["first line"], ["first line"])


async def test_a_refusing_server_is_set_aside_after_one_refusal(
    first: FakeOllama, second: FakeOllama
) -> None:
    """Once a server refused a chat, the next chats go straight to the other one: none pays for the
    dead one again. (It comes back on the same port; a chat sent there would be seen.)"""
    async with OllamaClient(first.url) as direct:  # the model is in memory there: it comes first
        await direct.load(ChatRequest(model="llama3:8b", messages=[]))
    async with pool_of(first, second) as pool:
        assert await answer(pool, "both up")  # the model lists and what is loaded are read now
        assert asked(first) == ["both up"]
        port = first.port
        first.stop()
        assert await answer(pool, "refused")  # refused by the first, answered by the second
        with FakeOllama(port=port, models=[LLAMA3]) as back:
            for n in range(3):
                assert await answer(pool, f"after {n}")
            where = await pool.where()
    assert asked(back) == []
    assert asked(second) == ["refused", "after 0", "after 1", "after 2"]
    assert where[first.url].error is not None


async def test_a_single_rate_limited_server_is_waited_for(first: FakeOllama) -> None:
    first.enqueue(Behavior(status=429, error="rate limit exceeded"))
    told: list[str] = []
    async with OllamaPool(
        [OllamaClient(first.url, connect_timeout=2.0, read_timeout=30.0)],
        tuning=dataclasses.replace(STEADY, busy_wait=LIMIT),
    ) as pool:
        request = ChatRequest(model="llama3:8b", messages=[ChatMessage(role="user", content="wait")])
        with anyio.fail_after(LIMIT):
            async with pool.chat_stream(request, on_wait=told.append) as chunks:
                got = "".join([chunk.message.content async for chunk in chunks if chunk.message])
    assert got.startswith("You said: wait")
    assert asked(first) == ["wait", "wait"]
    assert told == [f"Ollama at {first.url[7:]} is busy; waiting…"]
