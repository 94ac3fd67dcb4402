"""OllamaClient against the loopback fake Ollama: request bodies, streaming, and every failure mapping."""

from __future__ import annotations

import gc
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import SocketStream
from pydantic import ValidationError

from mcp_ollama.backend.admin_models import ModelShow
from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend.models import ChatChunk, ChatMessage, ChatRequest, GenerationOptions
from mcp_ollama.backend_errors import (
    ModelNotFound,
    OllamaStatusError,
    OllamaTimeout,
    OllamaUnreachable,
    StreamError,
)

from .conftest import eventually
from .fake_ollama import Behavior, FakeModel, FakeOllama
from .raw_ollama import STREAM_HEAD, http_chunk, never_accepting, no_finalizers, raw_ollama

pytestmark = pytest.mark.anyio

MODEL = "llama3:8b"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture
async def client(fake: FakeOllama) -> AsyncIterator[OllamaClient]:
    async with OllamaClient(fake.url, connect_timeout=2.0, read_timeout=10.0) as opened:
        yield opened


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def request(*contents: str, **kwargs: Any) -> ChatRequest:
    """A chat request whose messages alternate user/assistant, starting and ending with the user."""
    messages = [
        ChatMessage(role="user" if i % 2 == 0 else "assistant", content=content)
        for i, content in enumerate(contents)
    ]
    return ChatRequest(model=kwargs.pop("model", MODEL), messages=messages, **kwargs)


async def collect(
    client: OllamaClient, chat: ChatRequest, into: list[ChatChunk] | None = None
) -> list[ChatChunk]:
    """Read a whole stream; ``into`` keeps what arrived when the stream fails part-way."""
    received = [] if into is None else into
    async with client.chat_stream(chat) as chunks:
        async for chunk in chunks:
            received.append(chunk)
    return received


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(c.message.content for c in chunks if c.message is not None)


# --- what is sent -------------------------------------------------------------------------------


async def test_chat_sends_model_messages_stream_options_and_keep_alive_exactly(
    fake: FakeOllama, client: OllamaClient
) -> None:
    chat = ChatRequest(
        model=MODEL,
        messages=[
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="hello"),
        ],
        options=GenerationOptions(temperature=0.2, num_ctx=4096, stop=["###"]),
        keep_alive="10m",
    )

    await collect(client, chat)

    assert fake.chat_requests == [
        {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello"},
            ],
            "stream": True,
            "options": {"temperature": 0.2, "num_ctx": 4096, "stop": ["###"]},
            "keep_alive": "10m",
        }
    ]


async def test_chat_without_options_or_keep_alive_sends_neither_key(
    fake: FakeOllama, client: OllamaClient
) -> None:
    await collect(client, request("hi"))

    assert fake.chat_requests == [
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ]


async def test_keep_alive_zero_is_sent_not_dropped(fake: FakeOllama, client: OllamaClient) -> None:
    await collect(client, request("hi", keep_alive=0))

    assert fake.chat_requests[0]["keep_alive"] == 0


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
            async with client.chat_stream(request("hi")) as chunks:
                answer = [chunk async for chunk in chunks]
            await client.list_models()

    assert answer[-1].done
    assert proxy.connections == 0
    assert len(fake.requests) == 2


# --- streaming ------------------------------------------------------------------------------------


async def test_stream_yields_each_token_in_order_then_a_final_chunk_with_counters(
    client: OllamaClient, fake: FakeOllama
) -> None:
    chunks = await collect(client, request("first", "answer", "second question"))

    *tokens, final = chunks
    assert [c.message.content for c in tokens if c.message] == [
        "You ",
        "said: ",
        "second ",
        "question. ",
        "I ",
        "have ",
        "seen ",
        "2 ",
        "earlier ",
        "messages.",
    ]
    assert not any(c.done for c in tokens)
    assert final.done
    assert final.done_reason == "stop"
    assert final.message == ChatMessage(role="assistant", content="")
    assert final.model == MODEL
    assert final.eval_count == len(tokens)
    assert final.prompt_eval_count == fake.prompt_tokens(fake.chat_requests[0])  # as its tokenizer counts
    assert final.total_duration > 0
    assert final.eval_duration > 0
    assert final.load_duration > 0


@pytest.mark.parametrize("ending", ["read to the end", "left early"])
async def test_a_closed_stream_leaves_no_response_for_the_garbage_collector(
    client: OllamaClient, ending: str
) -> None:
    """httpx's response and its stream point at each other: once closed, the cycle is cut, so the
    response goes with its last reference (no collector pass: it is paused here)."""
    await collect(client, request("warm up"))  # the pooled connection is made outside the count
    gc.collect()
    gc.disable()
    try:
        async with client.chat_stream(request("hello")) as chunks:
            async for chunk in chunks:
                if ending == "left early" or chunk.done:
                    break
        del chunks

        def gone() -> bool:  # left early, the loop closes httpx's inner generators a moment later
            return not any(isinstance(o, httpx.Response | httpx.Request) for o in gc.get_objects())

        freed = await eventually(gone, timeout=30)
    finally:
        gc.enable()
    assert freed


async def test_num_predict_limit_ends_the_stream_with_done_reason_length(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(reply="one two three four five")

    chunks = await collect(client, request("hi", options=GenerationOptions(num_predict=2)))

    assert text_of(chunks) == "one two "
    assert chunks[-1].done_reason == "length"
    assert chunks[-1].eval_count == 2


async def test_tokens_with_unicode_line_separators_are_not_split(
    fake: FakeOllama, client: OllamaClient
) -> None:
    # Go leaves U+0085 unescaped inside JSON strings; a splitlines()-style reader would break here.
    tokens = ["a\u0085b ", "c\u2028d ", "e\x1cf"]
    fake.default = Behavior(tokens=tokens)

    chunks = await collect(client, request("hi"))

    assert text_of(chunks) == "".join(tokens)


async def test_non_streaming_request_yields_the_whole_answer_as_one_done_chunk(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(reply="all at once")

    chunks = await collect(client, request("hi", stream=False))

    assert len(chunks) == 1
    assert chunks[0].done
    assert text_of(chunks) == "all at once"
    assert fake.chat_requests[0]["stream"] is False


async def test_fifty_concurrent_streams_each_get_their_own_answer(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(token_delay=0.001)
    answers: dict[int, str] = {}

    async def one(i: int) -> None:
        answers[i] = text_of(await collect(client, request(f"question {i}")))

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(one, i)

    assert answers == {i: f"You said: question {i}. I have seen 0 earlier messages." for i in range(50)}
    assert fake.hangups == 0


# --- connections ------------------------------------------------------------------------------


async def test_a_stream_read_to_the_end_leaves_its_connection_for_reuse(
    fake: FakeOllama, client: OllamaClient
) -> None:
    await collect(client, request("hi"))
    await collect(client, request("again"))
    await client.version()

    assert fake.connections == 1
    assert [r.connection for r in fake.requests] == [1, 1, 1]


async def test_leaving_a_stream_early_drops_its_connection_and_the_fake_sees_the_hangup(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(reply="one two three", token_delay=60)

    async with client.chat_stream(request("hi")) as chunks:
        async for chunk in chunks:
            assert chunk.message is not None
            break

    assert fake.wait_for_hangup(timeout=5)
    assert await client.version() == "0.12.6"
    assert fake.connections == 2  # the half-read stream's connection was not pooled


async def test_cancelling_the_consumer_mid_stream_closes_the_connection(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(reply="one two three", token_delay=60)
    received: list[ChatChunk] = []

    with anyio.move_on_after(0.2) as scope:
        async with client.chat_stream(request("hi")) as chunks:
            async for chunk in chunks:
                received.append(chunk)

    assert scope.cancelled_caught
    assert [c.message.content for c in received if c.message] == ["one "]
    assert fake.wait_for_hangup(timeout=5)
    assert fake.wait_for_idle(timeout=5)


async def test_cancelling_while_waiting_for_the_first_token_closes_the_connection(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(first_token_delay=60)

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                await collect(client, request("hi"))

            tg.start_soon(consume)
            assert await anyio.to_thread.run_sync(fake.wait_for_active)
            scope.cancel()

    assert fake.wait_for_hangup(timeout=5)


async def test_a_reader_cancelled_while_awaiting_something_else_closes_the_stream(fake: FakeOllama) -> None:
    """Cancelled in its own await (an async callback, say), not in httpcore's read."""
    fake.default = Behavior(token_count=1000, token_delay=0.05)
    async with OllamaClient(fake.url, connect_timeout=2, read_timeout=10) as client, no_finalizers():
        received: list[ChatChunk] = []
        with anyio.move_on_after(0.3):
            async with client.chat_stream(request("hi")) as chunks:
                async for chunk in chunks:
                    received.append(chunk)
                    await anyio.sleep_forever()  # the callback the cancellation lands in
        assert len(received) == 1
        assert await anyio.to_thread.run_sync(lambda: fake.wait_for_hangup(timeout=3))


# --- error statuses ---------------------------------------------------------------------------


async def test_unknown_model_maps_to_model_not_found_suggesting_ollama_pull(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound) as raised:
        await collect(client, request("hi", model="mistral:7b"))

    assert raised.value.model == "mistral:7b"
    assert "ollama pull mistral:7b" in str(raised.value)


async def test_any_404_on_chat_is_model_not_found_whatever_the_text(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.enqueue(Behavior(status=404, error="model 'llama3:8b' not found"))

    with pytest.raises(ModelNotFound):
        await collect(client, request("hi"))


async def test_server_error_maps_to_status_error_quoting_ollamas_text(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.enqueue(Behavior(status=500, error="llama runner process has terminated: signal: killed"))

    with pytest.raises(OllamaStatusError) as raised:
        await collect(client, request("hi"))

    assert raised.value.status == 500
    assert raised.value.error == "llama runner process has terminated: signal: killed"
    assert "signal: killed" in str(raised.value)


async def test_bad_request_maps_to_status_error_400(client: OllamaClient) -> None:
    with pytest.raises(OllamaStatusError) as raised:
        await collect(client, request("hi", model=""))

    assert raised.value.status == 400
    assert raised.value.error == "model is required"


async def test_busy_server_status_error_says_to_try_again(fake: FakeOllama, client: OllamaClient) -> None:
    fake.enqueue(
        Behavior(status=503, error="server busy, please try again.  maximum pending requests exceeded")
    )

    with pytest.raises(OllamaStatusError, match="try again in a moment"):
        await collect(client, request("hi"))


async def test_non_json_error_body_is_quoted_raw(fake: FakeOllama) -> None:
    # A path prefix makes every request miss Ollama's routes: gin answers plain text.
    async with OllamaClient(fake.url + "/not-ollama") as client:
        with pytest.raises(OllamaStatusError) as raised:
            await client.list_models()

    assert raised.value.status == 404
    assert raised.value.error == "404 page not found"


async def test_an_error_status_leaves_the_connection_reusable(fake: FakeOllama, client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound):
        await collect(client, request("hi", model="nope:1b"))
    await collect(client, request("hi"))

    assert fake.connections == 1


# --- broken streams ------------------------------------------------------------------------------


async def test_error_line_mid_stream_raises_stream_error_after_the_earlier_tokens(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(reply="one two three", error_after=2, error="CUDA error: out of memory")
    received: list[ChatChunk] = []

    with pytest.raises(StreamError) as raised:
        await collect(client, request("hi"), into=received)

    assert text_of(received) == "one two "
    assert raised.value.detail == "Ollama reported: CUDA error: out of memory"


async def test_cut_connection_raises_stream_error_connection_closed(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(reply="one two three", cut_after=1)

    with pytest.raises(StreamError) as raised:
        await collect(client, request("hi"))

    assert raised.value.detail == "the connection closed before the answer was complete"
    assert isinstance(raised.value.__cause__, httpx.TransportError)


async def test_cut_before_any_token_raises_stream_error_connection_closed(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(cut_after=0)

    with pytest.raises(StreamError, match="closed before the answer was complete"):
        await collect(client, request("hi"))


async def test_stream_ending_without_a_done_chunk_raises_stream_error(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(reply="one two three", end_after=2)
    received: list[ChatChunk] = []

    with pytest.raises(StreamError) as raised:
        await collect(client, request("hi"), into=received)

    assert len(received) == 2
    assert raised.value.detail == "the connection closed before the answer was complete"


async def test_malformed_line_raises_stream_error_quoting_the_line(
    fake: FakeOllama, client: OllamaClient
) -> None:
    fake.default = Behavior(reply="one two three", malformed_after=1)

    with pytest.raises(StreamError) as raised:
        await collect(client, request("hi"))

    assert raised.value.detail.startswith('malformed line from Ollama: {"model":"llama3:8b"')
    assert len(raised.value.detail) <= len("malformed line from Ollama: ") + 100


async def test_hang_before_headers_raises_ollama_timeout_and_hangs_up(fake: FakeOllama) -> None:
    fake.default = Behavior(hang=True)

    async with OllamaClient(fake.url, read_timeout=0.2) as client:
        with pytest.raises(OllamaTimeout) as raised:
            await collect(client, request("hi"))

    assert raised.value.seconds == 0.2
    assert isinstance(raised.value.__cause__, httpx.ReadTimeout)
    assert fake.wait_for_hangup(timeout=5)


async def test_stall_mid_stream_raises_ollama_timeout(fake: FakeOllama) -> None:
    fake.default = Behavior(reply="one two", token_delay=60)
    received: list[ChatChunk] = []

    async with OllamaClient(fake.url, read_timeout=0.2) as client:
        with pytest.raises(OllamaTimeout):
            await collect(client, request("hi"), into=received)

    assert len(received) == 1
    assert fake.wait_for_hangup(timeout=5)


async def test_nothing_listening_raises_unreachable_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async with OllamaClient(url) as client:
        with pytest.raises(OllamaUnreachable) as raised:
            await collect(client, request("hi"))
        with pytest.raises(OllamaUnreachable):
            await client.list_models()

    assert raised.value.url == url
    assert url in str(raised.value)
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


async def test_connect_timeout_bounds_the_wait_for_a_connection() -> None:
    with never_accepting() as url:
        async with OllamaClient(url, connect_timeout=0.3, read_timeout=60) as client:
            with anyio.fail_after(10):
                with pytest.raises(OllamaUnreachable, match="connection attempt timed out"):
                    await client.version()


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
                async with client.chat_stream(request("hi")) as chunks:
                    [chunk async for chunk in chunks]
        with anyio.fail_after(5):
            await server.hung_up.wait()


# --- models and version ---------------------------------------------------------------------------


async def test_list_models_parses_tags(client: OllamaClient) -> None:
    models = await client.list_models()

    assert [m.name for m in models] == [MODEL]
    model = models[0]
    assert model.size == 4661224676
    assert model.digest.startswith("365c0bd3")
    assert model.modified_at
    assert model.details.family == "llama"
    assert model.details.parameter_size == "8.0B"
    assert model.details.quantization_level == "Q4_0"


async def test_list_models_with_none_pulled_is_empty() -> None:
    with FakeOllama(models=[]) as fake:
        async with OllamaClient(fake.url) as client:
            assert await client.list_models() == []


async def test_show_parses_context_length_details_and_capabilities(
    fake: FakeOllama, client: OllamaClient
) -> None:
    shown = await client.show(MODEL)

    assert shown == ModelShow(
        context_length=8192,
        family="llama",
        parameter_size="8.0B",
        quantization_level="Q4_0",
        capabilities=["completion"],
    )
    assert fake.requests[-1].body == {"model": MODEL}


async def test_show_finds_the_context_length_of_any_architecture() -> None:
    qwen = FakeModel(
        name="qwen3:4b", family="qwen3", context_length=40960, capabilities=("completion", "tools")
    )
    with FakeOllama(models=[qwen]) as fake:
        async with OllamaClient(fake.url) as client:
            shown = await client.show("qwen3:4b")

    assert shown.context_length == 40960
    assert shown.capabilities == ["completion", "tools"]


async def test_show_of_unknown_model_maps_to_model_not_found(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound, match="ollama pull phi3"):
        await client.show("phi3")


async def test_version_parses(client: OllamaClient) -> None:
    assert await client.version() == "0.12.6"


def test_model_show_without_model_info_has_no_context_length() -> None:
    shown = ModelShow.from_ollama({"details": {"family": "llama"}})

    assert shown.context_length is None
    assert shown.family == "llama"
    assert shown.capabilities == []


def test_chat_chunk_ignores_fields_it_does_not_know() -> None:
    chunk = ChatChunk.model_validate(
        {"model": MODEL, "created_at": "2025-01-01T00:00:00Z", "done": False, "thinking": "hmm"}
    )

    assert chunk.message is None
    assert chunk.eval_count == 0


# --- options validation -------------------------------------------------------------------------


def test_generation_options_to_ollama_drops_unset_fields() -> None:
    options = GenerationOptions(temperature=0.0, seed=0, num_predict=-1)

    assert options.to_ollama() == {"temperature": 0.0, "seed": 0, "num_predict": -1}


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": -0.1},
        {"temperature": 2.5},
        {"temperature": float("nan")},
        {"top_p": 1.5},
        {"top_k": 0},
        {"num_predict": -3},
        {"num_ctx": 128},
        {"num_ctx": 2_000_000},
        {"stop": [str(i) for i in range(17)]},
        {"repeat_penalty": -1.0},
        {"min_p": 2.0},
        {"seed": "random"},
    ],
)
def test_generation_options_reject_out_of_range_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GenerationOptions.model_validate(bad)


def test_generation_options_reject_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="extra"):
        GenerationOptions.model_validate({"temperature": 0.5, "mirostat": 2})


def test_generation_options_schema_describes_every_field_for_the_model() -> None:
    properties = GenerationOptions.model_json_schema()["properties"]

    assert set(properties) == {
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "num_predict",
        "num_ctx",
        "stop",
        "repeat_penalty",
        "min_p",
    }
    assert all(len(p.get("description", "")) > 20 for p in properties.values())
