"""OllamaPool's slots and queue: per (server, model) slots, round-robin across principals, the
per-principal cap, and what a waiting chat is told; with the settings that configure them.

A fake that runs one chat per model at a time (``num_parallel=1``, like Ollama's default) records
the order chats reached it and how many ran at once; no test measures time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import anyio
import pytest

from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend.models import ChatMessage, ChatRequest
from mcp_ollama.backend.pool import OllamaPool
from mcp_ollama.config import load_settings
from mcp_ollama.errors import SettingsError, TooManyWaiting

from .fake_ollama import LLAMA3, QWEN3, Behavior, FakeOllama

pytestmark = pytest.mark.anyio

LIMIT = 10.0
"""Seconds a test waits for a condition before it fails; never a measure of speed."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[LLAMA3, QWEN3], num_parallel=1) as server:
        server.default = Behavior(token_count=3)
        yield server


def client(fake: FakeOllama) -> OllamaClient:
    return OllamaClient(fake.url, connect_timeout=2.0, read_timeout=30.0)


def chat(model: str, text: str) -> ChatRequest:
    return ChatRequest(model=model, messages=[ChatMessage(role="user", content=text)])


async def answer(pool: OllamaPool, text: str, who: str, told: list[str] | None = None) -> str:
    request = chat("llama3:8b", text)
    async with pool.chat_stream(
        request, principal=who, on_wait=told.append if told is not None else None
    ) as chunks:
        return "".join([c.message.content async for c in chunks if c.message])


async def until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(LIMIT):
        while not predicate():
            await anyio.sleep(0.01)


def received(fake: FakeOllama) -> list[str]:
    """What each chat said, in the order the fake received them."""
    return [body["messages"][-1]["content"] for body in fake.chat_requests if body.get("messages")]


# --- round-robin ---------------------------------------------------------------------------------


async def test_one_chat_of_alice_waits_behind_at_most_one_of_bobs_thirty(fake: FakeOllama) -> None:
    async with (
        OllamaPool([client(fake)], max_parallel=1, max_queued_per_user=64) as pool,
        anyio.create_task_group() as tg,
        pool.slot("llama3:8b", principal="bob"),  # bob's chat in flight
    ):
        for n in range(30):  # one at a time, so that bob's line is in this order
            tg.start_soon(answer, pool, f"bob {n}", "bob")
            await until(lambda n=n: pool.queued() == {"bob": n + 1})
        tg.start_soon(answer, pool, "alice", "alice")
        await until(lambda: pool.queued() == {"bob": 30, "alice": 1})
        assert fake.chat_requests == []
    order = received(fake)
    assert len(order) == 31
    assert order.index("alice") <= 1  # at most one of bob's reached Ollama before alice's
    assert [m for m in order if m != "alice"] == [f"bob {n}" for n in range(30)]  # bob's in his order
    assert fake.peak_generating == {"llama3:8b": 1}
    assert pool.queued() == {} and pool.in_flight() == {fake.url: 0}


async def test_users_take_turns(fake: FakeOllama) -> None:
    async with (
        OllamaPool([client(fake)], max_parallel=1) as pool,
        anyio.create_task_group() as tg,
        pool.slot("llama3:8b", principal="x"),
    ):
        for who, count in (("bob", 3), ("carol", 2), ("alice", 1)):
            for n in range(count):
                tg.start_soon(answer, pool, f"{who} {n}", who)
                await until(lambda who=who, n=n: pool.queued().get(who) == n + 1)
    assert received(fake) == ["bob 0", "carol 0", "alice 0", "bob 1", "carol 1", "bob 2"]


# --- the cap -------------------------------------------------------------------------------------


async def test_past_the_cap_bob_is_refused_and_alice_is_still_served(fake: FakeOllama) -> None:
    async with (
        OllamaPool([client(fake)], max_parallel=1, max_queued_per_user=3) as pool,
        anyio.create_task_group() as tg,
        pool.slot("llama3:8b", principal="bob"),
    ):
        for n in range(3):
            tg.start_soon(answer, pool, f"bob {n}", "bob")
            await until(lambda n=n: pool.queued() == {"bob": n + 1})
        with pytest.raises(TooManyWaiting) as refused:
            await answer(pool, "bob 3", "bob")
        tg.start_soon(answer, pool, "alice", "alice")
        await until(lambda: pool.queued() == {"bob": 3, "alice": 1})
    assert str(refused.value) == (
        "3 of your chats are already waiting for a free model slot; try again when one of them finishes."
    )
    assert sorted(received(fake)) == ["alice", "bob 0", "bob 1", "bob 2"]
    assert received(fake).index("alice") <= 1


async def test_a_chat_given_a_slot_at_once_does_not_count_against_the_cap(fake: FakeOllama) -> None:
    async with OllamaPool([client(fake)], max_parallel=1, max_queued_per_user=1) as pool:
        for n in range(3):
            assert await answer(pool, f"bob {n}", "bob")
    assert received(fake) == ["bob 0", "bob 1", "bob 2"]


# --- slots per (server, model) -------------------------------------------------------------------


async def test_two_models_on_one_server_run_at_the_same_time(fake: FakeOllama) -> None:
    fake.default = Behavior(first_token_delay=30.0)  # each holds its slot until cancelled
    async with OllamaPool([client(fake)], max_parallel=1) as pool, anyio.create_task_group() as tg:

        async def hold(model: str) -> None:
            async with pool.chat_stream(chat(model, "hold")) as chunks:
                async for _ in chunks:
                    pass

        tg.start_soon(hold, "llama3:8b")
        tg.start_soon(hold, "qwen3:8b")
        await until(lambda: fake.generating() == {"llama3:8b": 1, "qwen3:8b": 1})
        tg.start_soon(hold, "llama3:8b")  # a second llama3 chat waits for llama3's slot
        await until(lambda: pool.queued() == {"": 1})
        assert pool.in_flight() == {fake.url: 2}
        tg.cancel_scope.cancel()
    assert fake.peak_models == 2
    assert fake.peak_generating == {"llama3:8b": 1, "qwen3:8b": 1}
    assert len(fake.chat_requests) == 2


async def test_a_model_may_have_its_own_slot_count(fake: FakeOllama) -> None:
    fake.num_parallel = None
    fake.default = Behavior(first_token_delay=30.0)
    async with (
        OllamaPool([client(fake)], max_parallel=1, model_parallel={"qwen3:8b": 2}) as pool,
        anyio.create_task_group() as tg,
    ):

        async def hold(model: str) -> None:
            async with pool.chat_stream(chat(model, "hold")):
                pass

        for model in ("qwen3:8b", "qwen3:8b", "qwen3:8b", "llama3:8b", "llama3:8b"):
            tg.start_soon(hold, model)
        await until(lambda: fake.generating() == {"qwen3:8b": 2, "llama3:8b": 1})
        await until(lambda: pool.queued() == {"": 2})
        tg.cancel_scope.cancel()
    assert fake.peak_generating == {"qwen3:8b": 2, "llama3:8b": 1}


# --- what a waiting chat is told -----------------------------------------------------------------


async def test_a_waiting_chat_is_told_how_many_are_ahead_and_when_that_drops(fake: FakeOllama) -> None:
    told: dict[str, list[str]] = {"bob 1": [], "bob 2": [], "carol": []}
    host = fake.url.removeprefix("http://")
    async with OllamaPool([client(fake)], max_parallel=1) as pool:
        async with anyio.create_task_group() as tg, pool.slot("llama3:8b", principal="bob"):
            for text, who in (("bob 1", "bob"), ("bob 2", "bob"), ("carol", "carol")):
                tg.start_soon(answer, pool, text, who, told[text])
                await until(lambda text=text: bool(told[text]))
        assert told["bob 1"] == [f"waiting for a free slot on {host} (1 chat in flight)…"]
        assert told["bob 2"][0] == f"waiting for a free slot on {host}: 1 chat ahead…"
        assert told["carol"][0] == f"waiting for a free slot on {host}: 1 chat ahead…"  # bob 1 only
    for messages in told.values():  # a new message only when fewer are ahead: never twice the same
        assert len(messages) == len(set(messages)) <= 2
    assert received(fake) == ["bob 1", "carol", "bob 2"]


# --- settings ------------------------------------------------------------------------------------


def test_max_parallel_takes_a_count_and_counts_per_model() -> None:
    plain = load_settings({"max_parallel": "3"}, environ={})
    assert (plain.max_parallel, plain.max_parallel_models) == (3, ())
    mixed = load_settings({}, environ={"MCP_OLLAMA_MAX_PARALLEL": "2, qwen3:8b=1 ,llama3:70b=4"})
    assert mixed.max_parallel == 2
    assert mixed.max_parallel_models == (("qwen3:8b", 1), ("llama3:70b", 4))
    only = load_settings({"max_parallel": "gpt-oss:20b=2"}, environ={})
    assert (only.max_parallel, only.max_parallel_models) == (1, (("gpt-oss:20b", 2),))
    for bad in ("0", "2,3", "=2", "qwen3=0", "x", "qwen3=1,QWEN3=2", ","):
        with pytest.raises(SettingsError, match="--max-parallel"):
            load_settings({"max_parallel": bad}, environ={})


def test_first_token_timeout_and_queue_cap_settings() -> None:
    default = load_settings({}, environ={})
    assert (default.first_token_timeout, default.max_queued_per_user) == (120.0, 16)
    given = load_settings({"first_token_timeout": "30"}, environ={"MCP_OLLAMA_MAX_QUEUED_PER_USER": "4"})
    assert (given.first_token_timeout, given.max_queued_per_user) == (30.0, 4)
    assert load_settings({}, environ={"MCP_OLLAMA_FIRST_TOKEN_TIMEOUT": "0"}).first_token_timeout == 0.0
    with pytest.raises(SettingsError, match="MCP_OLLAMA_MAX_QUEUED_PER_USER"):
        load_settings({"max_queued_per_user": "0"}, environ={})
    with pytest.raises(SettingsError, match="--first-token-timeout"):
        load_settings({"first_token_timeout": "-1"}, environ={})
