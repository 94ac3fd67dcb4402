"""``core/chat.py``'s ``ChatService``: what every turn sends Ollama, the message-length limit, and
Ollama's stream closed however a turn stops.

Promises a mutation audit found unguarded: each test here fails if its promise is broken.

- the configured ``num_ctx`` and ``keep_alive`` reach Ollama, on every chat and on the preload;
- a message of exactly ``max_message_chars`` is accepted, one more character is refused;
- Ollama's stream is closed when a turn is cancelled from its observer or stopped at the answer cap,
  also when the cancellation lands somewhere other than httpcore's network read.
"""

from __future__ import annotations

import dataclasses

import anyio
import pytest
from anyio.abc import SocketStream

from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend.connect import preload_request
from mcp_ollama.backend.pool import OllamaPool
from mcp_ollama.config import Settings
from mcp_ollama.core.chat import ChatService
from mcp_ollama.core.job import Job
from mcp_ollama.core.planning import plan_turn
from mcp_ollama.core.turns import TurnPlan
from mcp_ollama.errors import InputTooLarge
from mcp_ollama.store import ChatStore

from .conftest import connect, eventually
from .fake_ollama import FakeOllama
from .raw_ollama import MODEL, STREAM_HEAD, http_chunk, ndjson, no_finalizers, raw_ollama

pytestmark = pytest.mark.anyio


# --- num_ctx and keep_alive reach Ollama ----------------------------------------------------------


async def test_configured_num_ctx_and_keep_alive_are_sent_with_every_chat_and_the_preload(
    settings: Settings, fake: FakeOllama
) -> None:
    configured = dataclasses.replace(settings, num_ctx=2048, keep_alive="17m", preload=True)
    async with connect(configured, "legacy") as client:
        assert await eventually(lambda: len(fake.chat_requests) == 1)  # the preload
        first = await client.call_tool("chat", {"message": "hello"})
        sid = first.structured_content["session_id"]
        await client.call_tool("chat", {"message": "again", "session_id": sid, "options": {"seed": 3}})
        await client.call_tool("chat", {"message": "own", "options": {"num_ctx": 1024}})

    preload, plain, with_options, own = fake.chat_requests
    assert preload["messages"] == []
    for body in (preload, plain, with_options):
        assert body["options"]["num_ctx"] == 2048
        assert body["keep_alive"] == "17m"
    assert with_options["options"]["seed"] == 3
    assert own["options"]["num_ctx"] == 1024  # a call's own choice wins
    assert own["keep_alive"] == "17m"
    assert preload_request(configured, None).to_ollama()["options"] == {"num_ctx": 2048}


async def test_without_configuration_the_models_own_window_is_sent_and_no_keep_alive(
    settings: Settings, fake: FakeOllama
) -> None:
    async with connect(settings, "legacy") as client:
        await client.call_tool("chat", {"message": "hello"})
    assert fake.chat_requests[0]["options"] == {"num_ctx": 8192}  # llama3:8b's context_length
    assert "keep_alive" not in fake.chat_requests[0]


# --- the message-length limit ---------------------------------------------------------------------


async def test_a_message_of_exactly_the_limit_is_accepted_and_one_more_character_is_not(
    settings: Settings,
) -> None:
    limited = dataclasses.replace(settings, max_message_chars=100)
    assert plan_turn(limited, "x" * 100).message == "x" * 100
    with pytest.raises(InputTooLarge, match="101 characters; the limit is 100"):
        plan_turn(limited, "x" * 101)


# --- the stream is closed however a turn stops ----------------------------------------------------


async def test_a_turn_cancelled_from_its_observer_closes_the_stream(settings: Settings) -> None:
    """The job is cancelled while its observer handles a token; the cancellation then lands in the
    reader's own checkpoint (a run of blank lines), not in httpcore's read."""

    async def token_then_blank_lines(stream: SocketStream) -> None:
        # one write: the token and the blank lines arrive together, so the next await is ours
        await stream.send(STREAM_HEAD + http_chunk(ndjson("one ") + b"\n" * 5000))
        await anyio.sleep_forever()  # a model that goes on generating

    async with raw_ollama(token_then_blank_lines) as server:
        configured = dataclasses.replace(settings, ollama_url=server.url)
        store = ChatStore.open(":memory:")
        async with OllamaClient(server.url, connect_timeout=2, read_timeout=10) as client:
            service = ChatService(configured, OllamaPool([client]), store)
            job = Job(id="j", plan=TurnPlan(message="hi", session_id="s1", model=MODEL, options=None))

            class CancellingObserver:
                def queued(self) -> None:
                    pass

                def requested(self, prompt_tokens: int) -> None:
                    pass

                def thinking(self, text: str) -> None:
                    pass

                def waiting(self, text: str) -> None:
                    pass

                def token(self, text: str) -> None:
                    job.token(text)
                    job.cancel("the user cancelled")  # as cancel_chat does, mid-callback

            async with no_finalizers():
                with job._scope:
                    await service.run(job.plan, CancellingObserver())
                assert job._scope.cancelled_caught
                assert job.pieces == ["one "]
                with anyio.fail_after(3):
                    await server.hung_up.wait()
        assert store.recent_messages("s1", 8) == []
        store.close()


async def test_a_turn_stopped_at_the_answer_cap_closes_the_stream(settings: Settings) -> None:
    async def many_tokens(stream: SocketStream) -> None:
        await stream.send(STREAM_HEAD + http_chunk(b"".join(ndjson(f"t{i} ") for i in range(50))))
        await anyio.sleep_forever()

    async with raw_ollama(many_tokens) as server:
        configured = dataclasses.replace(settings, ollama_url=server.url, max_answer_chars=20)
        store = ChatStore.open(":memory:")
        async with OllamaClient(server.url, connect_timeout=2, read_timeout=10) as client:
            outcome = await ChatService(configured, OllamaPool([client]), store).turn("hi", session_id="s1")
            with anyio.fail_after(3):
                await server.hung_up.wait()
        store.close()
    assert outcome.done_reason == "max_answer_chars"
    assert len(outcome.answer) == 20
