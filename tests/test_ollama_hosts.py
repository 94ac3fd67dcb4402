"""Several Ollama servers behind one mcp-ollama, through the SDK client in both eras: each chat goes to
a server that has its model, fails over when one is down, and waits (saying so) for a free slot."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import anyio
import pytest
from mcp_types import CallToolResult

from mcp_ollama.config import Settings, load_settings
from mcp_ollama.config.hosts import parse_ollama_host

from .conftest import connect
from .fake_ollama import LLAMA3, QWEN3, Behavior, FakeOllama

pytestmark = pytest.mark.anyio


@pytest.fixture
def other() -> Iterator[FakeOllama]:
    """A second Ollama server, with qwen3:8b and llama3:8b."""
    with FakeOllama(models=[QWEN3, LLAMA3]) as second:
        yield second


def two_hosts(settings: Settings, other: FakeOllama) -> Settings:
    return dataclasses.replace(settings, other_ollama_hosts=(parse_ollama_host(other.url),))


async def test_each_chat_goes_to_a_server_that_has_its_model(
    settings: Settings, fake: FakeOllama, other: FakeOllama, era: str
) -> None:
    fake.models[:] = [LLAMA3]
    async with connect(two_hosts(settings, other), era) as client:
        qwen = await client.call_tool("chat", {"message": "hi qwen", "model": "qwen3:8b"})
        listed = await client.call_tool("list_models", {})
    assert qwen.is_error is not True
    assert [r["messages"][-1]["content"] for r in other.chat_requests] == ["hi qwen"]
    assert fake.chat_requests == []
    assert listed.structured_content is not None
    hosts = {m["name"]: m["hosts"] for m in listed.structured_content["models"]}
    assert hosts == {"llama3:8b": [fake.url, other.url], "qwen3:8b": [other.url]}


async def test_a_chat_fails_over_when_a_server_is_down(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    second = FakeOllama(models=[LLAMA3]).start()
    second_url = second.url
    second.stop()  # listed, but down: chats go to the one that answers
    down_first = dataclasses.replace(
        settings, ollama_url=second_url, other_ollama_hosts=(parse_ollama_host(fake.url),)
    )
    async with connect(down_first, era) as client:
        answer = await client.call_tool("chat", {"message": "still answered"})
    assert answer.is_error is not True, answer.content
    assert fake.chat_requests[-1]["messages"][-1]["content"] == "still answered"


async def test_a_chat_waits_for_a_free_slot_and_says_so(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    one_slot = dataclasses.replace(settings, max_parallel=1, progress_interval=0.0)
    fake.enqueue(Behavior(hang=True))  # the first chat holds the only slot until it is cancelled
    messages: list[str] = []
    answers: list[CallToolResult] = []
    first_scope = anyio.CancelScope()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with connect(one_slot, era) as client, anyio.create_task_group() as tg:

        async def first() -> None:
            with first_scope:
                await client.call_tool("chat", {"message": "first"})

        async def second() -> None:
            answers.append(
                await client.call_tool("chat", {"message": "second"}, progress_callback=on_progress)
            )

        tg.start_soon(first)
        with anyio.fail_after(10):
            while fake.active_streams < 1:
                await anyio.sleep(0.01)
        tg.start_soon(second)
        with anyio.fail_after(10):
            while not any("waiting for a free slot" in m for m in messages):
                await anyio.sleep(0.01)
        assert len(fake.chat_requests) == 1  # the second has not reached Ollama
        first_scope.cancel()  # the host gives up on the first: its slot is free again
        with anyio.fail_after(10):
            while not answers:
                await anyio.sleep(0.01)
    assert answers[0].is_error is not True
    assert fake.chat_requests[-1]["messages"][-1]["content"] == "second"
    host = fake.url.removeprefix("http://")
    assert any(m.startswith(f"waiting for a free slot on {host} (1 chat in flight)…") for m in messages)


def test_several_hosts_from_the_environment_and_the_flag() -> None:
    from_env = load_settings({}, environ={"OLLAMA_HOST": "gpu1:11434,gpu2:11434"})
    assert from_env.ollama_url == "http://gpu1:11434"
    assert [h.url for h in from_env.other_ollama_hosts] == ["http://gpu2:11434"]
    assert from_env.max_parallel == 1  # Ollama's own default OLLAMA_NUM_PARALLEL
