"""Promises a mutation audit found unguarded: each test here fails if its promise is broken.

- the configured ``num_ctx`` and ``keep_alive`` reach Ollama, on every chat and on the preload;
- ``connect_timeout`` bounds the wait for a connection (a listener whose queue is full never accepts);
- a proxy in the environment never sees a request (``trust_env=False``);
- a line longer than 16 MiB ends the stream instead of growing the buffer for ever;
- a message of exactly ``max_message_chars`` is accepted, one more character is refused;
- Ollama's stream is closed however the reader stops, also when the cancellation lands somewhere
  other than httpcore's network read (where httpcore closes the connection by itself).

Where the fake Ollama cannot misbehave the way a test needs, a few lines of HTTP on an anyio
listener in the test's own event loop stand in for it.
"""

from __future__ import annotations

import dataclasses
import gc
import socket
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from mcp_ollama.backend import ChatChunk, ChatMessage, ChatRequest, OllamaClient
from mcp_ollama.config import Settings
from mcp_ollama.core.chat import ChatService, TurnPlan, preload_request
from mcp_ollama.core.jobs import Job
from mcp_ollama.errors import InputTooLarge, OllamaUnreachable, StreamError
from mcp_ollama.store import ChatStore

from .conftest import connect, eventually
from .fake_ollama import Behavior, FakeOllama

pytestmark = pytest.mark.anyio

MODEL = "llama3:8b"


def chat_request() -> ChatRequest:
    return ChatRequest(model=MODEL, messages=[ChatMessage(role="user", content="hi")])


# --- a scripted Ollama in the test's own event loop ----------------------------------------------


@dataclass
class RawOllama:
    """What the scripted server saw: connections, and whether the client hung up."""

    url: str = ""
    connections: int = 0
    hung_up: anyio.Event = field(default_factory=anyio.Event)


Script = Callable[[SocketStream], Awaitable[None]]

STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def ndjson(token: str, done: bool = False) -> bytes:
    content = token.replace('"', '\\"')
    return (
        f'{{"model":"{MODEL}","created_at":"2024-01-01T00:00:00Z",'
        f'"message":{{"role":"assistant","content":"{content}"}},"done":{str(done).lower()}}}\n'
    ).encode()


@asynccontextmanager
async def raw_ollama(script: Script) -> AsyncIterator[RawOllama]:
    """Serve every connection: read one request and run ``script`` until the client hangs up."""
    seen = RawOllama()

    async def handle(stream: SocketStream) -> None:
        seen.connections += 1

        async def until_hangup(scope: anyio.CancelScope) -> None:
            try:
                while True:  # whatever else the client sends, until it closes
                    await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
            seen.hung_up.set()
            scope.cancel()

        async def run_script() -> None:
            try:
                await script(stream)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                seen.hung_up.set()

        async with stream:
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    head += await stream.receive()
                if not head.startswith(b"POST /api/chat "):  # the model's details: a plain model
                    body = b'{"capabilities":["completion"],"model_info":{}}'
                    await stream.send(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                    )
                    return
                async with anyio.create_task_group() as tg:
                    tg.start_soon(until_hangup, tg.cancel_scope)
                    tg.start_soon(run_script)
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                seen.hung_up.set()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    seen.url = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield seen
        tg.cancel_scope.cancel()


@asynccontextmanager
async def no_finalizers() -> AsyncIterator[list[AsyncGenerator[object, None]]]:
    """Keep, unclosed, every async generator dropped before it was closed (and turn the garbage
    collector off). asyncio's finalizer hook would otherwise close a dropped response body (and
    with it the connection) as soon as the last reference goes, which hides a stream left open
    whenever anything still holds it. The promise is an explicit close, whoever holds what.
    (httpx itself leaves its inner body generators to the hook once the response is closed: those
    are kept too, harmlessly, and closed on the way out.)"""
    hooks = sys.get_asyncgen_hooks()
    kept: list[AsyncGenerator[object, None]] = []
    collecting = gc.isenabled()
    gc.disable()
    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=kept.append)
    try:
        yield kept
    finally:
        sys.set_asyncgen_hooks(*hooks)
        if collecting:
            gc.enable()
        with anyio.CancelScope(shield=True):
            for generator in kept:
                with suppress(Exception):
                    await generator.aclose()


# --- (1) num_ctx and keep_alive reach Ollama ------------------------------------------------------


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


# --- (2) connect_timeout --------------------------------------------------------------------------


@contextmanager
def never_accepting() -> Iterator[str]:
    """A loopback address whose listen queue is full: a connection attempt waits, unanswered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for sock in (*fillers, server):
            sock.close()


async def test_connect_timeout_bounds_the_wait_for_a_connection() -> None:
    with never_accepting() as url:
        async with OllamaClient(url, connect_timeout=0.3, read_timeout=60) as client:
            with anyio.fail_after(10):
                with pytest.raises(OllamaUnreachable, match="connection attempt timed out"):
                    await client.version()


async def test_the_server_passes_connect_timeout_to_its_client(settings: Settings) -> None:
    with never_accepting() as url:
        configured = dataclasses.replace(
            settings, ollama_url=url, connect_timeout=0.3, generation_timeout=60, answer_deadline=0
        )
        async with connect(configured, "legacy") as client:
            with anyio.fail_after(3):  # the client's default is 5 s
                result = await client.call_tool("list_models", {})
    assert result.is_error is True
    assert "connection attempt timed out" in result.content[0].text  # type: ignore[union-attr]


# --- (3) a proxy in the environment is not used ---------------------------------------------------


async def test_a_proxy_in_the_environment_never_sees_a_prompt(
    fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(stream: SocketStream) -> None:
        await stream.aclose()

    async with raw_ollama(refuse) as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        async with OllamaClient(fake.url, connect_timeout=2, read_timeout=10) as client:
            async with client.chat_stream(chat_request()) as chunks:
                answer = [chunk async for chunk in chunks]
            await client.list_models()

    assert answer[-1].done
    assert proxy.connections == 0
    assert len(fake.requests) == 2


# --- (4) the line cap -----------------------------------------------------------------------------


async def test_an_endless_line_ends_the_stream_at_the_cap() -> None:
    async def endless_line(stream: SocketStream) -> None:
        await stream.send(STREAM_HEAD)
        block = http_chunk(b"x" * (1024 * 1024))
        while True:  # no newline, ever
            await stream.send(block)

    async with (
        raw_ollama(endless_line) as server,
        OllamaClient(server.url, connect_timeout=2, read_timeout=10) as client,
    ):
        with anyio.fail_after(30):  # without the cap: reading for ever
            with pytest.raises(StreamError, match="malformed line from Ollama: xxx"):
                async with client.chat_stream(chat_request()) as chunks:
                    [chunk async for chunk in chunks]
        with anyio.fail_after(5):
            await server.hung_up.wait()


# --- (5) the message-length limit -----------------------------------------------------------------


async def test_a_message_of_exactly_the_limit_is_accepted_and_one_more_character_is_not(
    settings: Settings,
) -> None:
    limited = dataclasses.replace(settings, max_message_chars=100)
    store = ChatStore.open(":memory:")
    async with OllamaClient(limited.ollama_url) as client:
        service = ChatService(limited, client, store)
        assert service.plan("x" * 100).message == "x" * 100
        with pytest.raises(InputTooLarge, match="101 characters; the limit is 100"):
            service.plan("x" * 101)
    store.close()


# --- (6) the stream is closed however reading stops -----------------------------------------------


async def test_a_reader_cancelled_while_awaiting_something_else_closes_the_stream(fake: FakeOllama) -> None:
    """Cancelled in its own await (an async callback, say), not in httpcore's read."""
    fake.default = Behavior(token_count=1000, token_delay=0.05)
    async with OllamaClient(fake.url, connect_timeout=2, read_timeout=10) as client, no_finalizers():
        received: list[ChatChunk] = []
        with anyio.move_on_after(0.3):
            async with client.chat_stream(chat_request()) as chunks:
                async for chunk in chunks:
                    received.append(chunk)
                    await anyio.sleep_forever()  # the callback the cancellation lands in
        assert len(received) == 1
        assert await anyio.to_thread.run_sync(lambda: fake.wait_for_hangup(timeout=3))


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
            service = ChatService(configured, client, store)
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
            outcome = await ChatService(configured, client, store).turn("hi", session_id="s1")
            with anyio.fail_after(3):
                await server.hung_up.wait()
        store.close()
    assert outcome.done_reason == "max_answer_chars"
    assert len(outcome.answer) == 20
