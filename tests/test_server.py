"""The MCP surface of the core issue, driven by the SDK's own client in memory, in both protocol eras."""

from __future__ import annotations

import anyio
import pytest
from mcp import MCPError
from mcp_types import INVALID_PARAMS, LoggingMessageNotificationParams, TextContent

from mcp_ollama.config import Settings
from mcp_ollama.core.prompts import DEFAULT_SYSTEM_PROMPT
from mcp_ollama.store import ChatStore

from .conftest import connect, eventually, free_port
from .fake_ollama import Behavior, FakeModel, FakeOllama

pytestmark = pytest.mark.anyio


def text_of(result) -> str:
    assert result.content, "a tool result must carry content"
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def stored(settings: Settings, session_id: str) -> list[tuple[str, str]]:
    with ChatStore.open(settings.db_path) as store:
        if store.get_session(session_id) is None:
            return []
        return [(m.role, m.content) for m in store.messages(session_id)]


async def test_chat_tool_is_described_with_schema_title_and_annotations(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    chat = tools["chat"]
    assert chat.title == "Chat with a local model"
    assert chat.description and "session_id" in chat.description
    assert chat.annotations is not None and chat.annotations.read_only_hint is False
    assert chat.annotations.open_world_hint is False
    props = chat.input_schema["properties"]
    assert chat.input_schema["required"] == ["message"]
    assert {"message", "session_id", "model", "options"} <= set(props)
    assert chat.output_schema is not None
    out = chat.output_schema["properties"]
    assert {"session_id", "model", "answer", "done_reason", "usage", "timings"} <= set(out)
    assert {"list_models", "delete_session", "clear_session"} <= set(tools)
    for tool in tools.values():
        assert tool.title and tool.description and tool.annotations and tool.output_schema


async def test_chat_starts_a_session_and_answers_with_text_and_structured_content(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "Hello there"})
    assert result.is_error is not True
    answer = text_of(result)
    assert answer == "You said: Hello there. I have seen 0 earlier messages."
    data = result.structured_content
    assert data is not None
    assert data["answer"] == answer
    assert data["model"] == "llama3:8b"
    assert data["done_reason"] == "stop"
    assert data["new_session"] is True
    assert data["usage"]["completion_tokens"] == len(answer.split())
    assert data["usage"]["prompt_tokens"] > 0
    assert data["timings"]["total_ms"] > 0
    sent = fake.chat_requests[-1]
    assert sent["model"] == "llama3:8b"
    assert sent["stream"] is True
    assert sent["messages"] == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "Hello there"},
    ]
    assert stored(settings, data["session_id"]) == [("user", "Hello there"), ("assistant", answer)]


async def test_second_call_in_a_session_carries_the_history(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        first = await client.call_tool("chat", {"message": "My name is Ada."})
        sid = first.structured_content["session_id"]
        second = await client.call_tool("chat", {"message": "What is my name?", "session_id": sid})
    assert second.structured_content["session_id"] == sid
    assert second.structured_content["new_session"] is False
    assert second.structured_content["history_messages"] == 2
    assert "seen 2 earlier messages" in text_of(second)
    messages = fake.chat_requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "My name is Ada."
    assert messages[2]["content"] == text_of(first)


async def test_history_window_keeps_only_the_last_n_turns(settings: Settings, fake: FakeOllama) -> None:
    narrow = Settings(**{**settings.__dict__, "history_turns": 2})
    async with connect(narrow, "legacy") as client:
        sid = "window-test"
        for i in range(4):
            await client.call_tool("chat", {"message": f"turn {i}", "session_id": sid})
    messages = fake.chat_requests[-1]["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["turn 1", "turn 2", "turn 3"]
    assert len(stored(narrow, sid)) == 8


async def test_history_is_trimmed_oldest_first_to_fit_the_context(
    settings: Settings, fake: FakeOllama
) -> None:
    async with connect(settings, "legacy") as client:
        sid = "budget"
        await client.call_tool("chat", {"message": "old " * 1500, "session_id": sid})
        await client.call_tool("chat", {"message": "recent", "session_id": sid})
        await client.call_tool("chat", {"message": "now", "session_id": sid, "options": {"num_ctx": 1024}})
    users = [m["content"] for m in fake.chat_requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["recent", "now"]
    assert fake.chat_requests[-1]["options"] == {"num_ctx": 1024}


async def test_history_survives_a_restart(settings: Settings, fake: FakeOllama) -> None:
    async with connect(settings, "legacy") as client:
        first = await client.call_tool("chat", {"message": "remember the number 42"})
    sid = first.structured_content["session_id"]
    async with connect(settings, "modern") as client:
        second = await client.call_tool("chat", {"message": "which number?", "session_id": sid})
    assert "seen 2 earlier messages" in text_of(second)
    assert fake.chat_requests[-1]["messages"][1]["content"] == "remember the number 42"


async def test_generation_options_and_model_are_passed_to_ollama(
    settings: Settings, fake: FakeOllama
) -> None:
    fake.models.append(FakeModel(name="mistral:7b", family="mistral", parameter_size="7.2B"))
    options = {
        "temperature": 0.2,
        "seed": 7,
        "num_predict": 50,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "num_ctx": 2048,
    }
    async with connect(settings, "legacy") as client:
        result = await client.call_tool("chat", {"message": "hi", "model": "mistral:7b", "options": options})
    assert result.structured_content["model"] == "mistral:7b"
    sent = fake.chat_requests[-1]
    assert sent["model"] == "mistral:7b"
    assert sent["options"] == options


async def test_invalid_generation_options_are_refused_before_reaching_ollama(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", "options": {"temperature": "hot"}})
        extra = await client.call_tool("chat", {"message": "hi", "options": {"bogus": 1}})
    assert result.is_error is True and "temperature" in text_of(result)
    assert extra.is_error is True and "bogus" in text_of(extra)
    assert fake.chat_requests == []


async def test_progress_arrives_in_order_during_a_slow_stream(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.enqueue(Behavior(tokens=[f"t{i} " for i in range(12)], token_delay=0.05))
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "count"}, progress_callback=on_progress)
    assert result.is_error is not True
    assert len(seen) >= 2, seen
    values = [p for p, _ in seen]
    assert values == sorted(set(values)), "progress must strictly increase"
    assert values[0] == 1
    suffix = f" (session {result.structured_content['session_id']})"  # where to look, if the host gives up
    assert seen[0][1] == "llama3:8b: 1 token so far" + suffix  # counted in words a person reads
    assert all(m and m.endswith(" so far" + suffix) for _, m in seen)
    # bounded rate: 12 tokens over ~0.6 s at >= 0.1 s apart can never give one notification per token
    assert len(seen) < 12


async def test_cancel_closes_the_ollama_stream_and_leaves_history_unchanged(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        first = await client.call_tool("chat", {"message": "keep me"})
        sid = first.structured_content["session_id"]
        before = stored(settings, sid)
        fake.enqueue(Behavior(tokens=["slow "] * 200, token_delay=0.05))
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await client.call_tool("chat", {"message": "never stored", "session_id": sid})

            tg.start_soon(call)
            with anyio.fail_after(5):
                while fake.active_streams == 0:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        assert await eventually(lambda: fake.hangups >= 1), "Ollama must see the client hang up"
        assert stored(settings, sid) == before
        after = await client.call_tool("chat", {"message": "still here", "session_id": sid})
    assert "seen 2 earlier messages" in text_of(after)


@pytest.mark.parametrize(
    ("behavior", "expected"),
    [
        (
            Behavior(status=500, error="llama runner process has terminated"),
            "llama runner process has terminated",
        ),
        (Behavior(tokens=["a ", "b ", "c "], error_after=2, error="out of memory"), "out of memory"),
        (Behavior(tokens=["a ", "b ", "c "], cut_after=2), "broke off"),
        (Behavior(tokens=["a ", "b ", "c "], malformed_after=1), "malformed"),
    ],
    ids=["http-500", "error-line-mid-stream", "cut-connection", "malformed-line"],
)
async def test_ollama_failures_are_tool_errors_that_lose_nothing(
    settings: Settings, fake: FakeOllama, era: str, behavior: Behavior, expected: str
) -> None:
    async with connect(settings, era) as client:
        first = await client.call_tool("chat", {"message": "first"})
        sid = first.structured_content["session_id"]
        before = stored(settings, sid)
        fake.enqueue(behavior)
        failed = await client.call_tool("chat", {"message": "doomed", "session_id": sid})
        assert failed.is_error is True
        assert expected in text_of(failed)
        assert fake.url in text_of(failed)
        assert stored(settings, sid) == before
        again = await client.call_tool("chat", {"message": "again", "session_id": sid})
    assert again.is_error is not True
    assert "seen 2 earlier messages" in text_of(again)


async def test_a_busy_ollama_is_waited_for_not_an_error(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    """Ollama's 503 (its queue is full) means "wait": the chat is asked again and answered."""
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    fake.enqueue(
        Behavior(status=503, error="server busy, please try again.  maximum pending requests exceeded")
    )
    async with connect(settings, era) as client:
        answered = await client.call_tool("chat", {"message": "when you can"}, progress_callback=on_progress)
    assert answered.is_error is not True, text_of(answered)
    assert [r["messages"][-1]["content"] for r in fake.chat_requests] == ["when you can", "when you can"]
    assert any("busy" in m for m in seen), seen


async def test_missing_model_says_how_to_pull_it(settings: Settings, fake: FakeOllama, era: str) -> None:
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", "model": "llama3:70b"})
    assert result.is_error is True
    assert "ollama pull llama3:70b" in text_of(result)


async def test_unreachable_ollama_names_the_url_and_ollama_serve(settings: Settings, era: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    down = Settings(**{**settings.__dict__, "ollama_url": url})
    async with connect(down, era) as client:
        result = await client.call_tool("chat", {"message": "anyone there?"})
        assert result.is_error is True
        assert url in text_of(result)
        assert "ollama serve" in text_of(result)
        assert (await client.list_tools()).tools, "the server keeps serving"


async def test_silent_ollama_times_out_with_advice(settings: Settings, fake: FakeOllama, era: str) -> None:
    quick = Settings(**{**settings.__dict__, "generation_timeout": 0.3})
    fake.enqueue(Behavior(hang=True))
    async with connect(quick, era) as client:
        result = await client.call_tool("chat", {"message": "hello?"})
    assert result.is_error is True
    assert "sent nothing for 0.3 s" in text_of(result)
    assert "MCP_OLLAMA_GENERATION_TIMEOUT" in text_of(result)


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "x\x00y", "", "z" * 65, "x' OR 1=1 --"])
async def test_hostile_session_ids_are_refused_clearly(
    settings: Settings, fake: FakeOllama, bad: str
) -> None:
    async with connect(settings, "legacy") as client:
        result = await client.call_tool("chat", {"message": "hi", "session_id": bad})
    assert result.is_error is True
    assert "Invalid session id" in text_of(result)
    assert fake.chat_requests == []


async def test_oversized_message_is_refused_without_calling_ollama(
    settings: Settings, fake: FakeOllama
) -> None:
    async with connect(settings, "legacy") as client:
        result = await client.call_tool("chat", {"message": "x" * (settings.max_message_chars + 1)})
        too_long_for_ctx = await client.call_tool("chat", {"message": "y" * 40_000})
    assert result.is_error is True and "limit is 200,000" in text_of(result)
    assert too_long_for_ctx.is_error is True and "context window" in text_of(too_long_for_ctx)
    assert fake.chat_requests == []


async def test_unknown_tool_is_a_jsonrpc_invalid_params_error(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("no_such_tool", {})
    assert caught.value.code == INVALID_PARAMS
    assert "no_such_tool" in caught.value.message


async def test_two_calls_on_one_session_are_serialised(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.default = Behavior(token_delay=0.01)
    sid = "serial"
    async with connect(settings, era) as client, anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(client.call_tool, "chat", {"message": f"m{i}", "session_id": sid})
    history = stored(settings, sid)
    assert [role for role, _ in history] == ["user", "assistant"] * 5
    # each call saw every turn stored before it: 0, 2, 4, 6, 8 earlier messages in some order
    seen = sorted(len(r["messages"]) - 2 for r in fake.chat_requests)
    assert seen == [0, 2, 4, 6, 8]


@pytest.mark.filterwarnings("ignore:The logging capability is deprecated:mcp.MCPDeprecationWarning")
async def test_logging_capability_and_set_level_filter_notifications(
    settings: Settings, fake: FakeOllama
) -> None:
    received: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        received.append(params)

    async with connect(settings, "legacy", logging_callback=on_log) as client:
        assert client.server_capabilities.logging is not None
        await client.set_logging_level("error")
        await client.call_tool("chat", {"message": "quiet please"})
        assert received == []
        fake.enqueue(Behavior(status=500, error="boom"))
        await client.call_tool("chat", {"message": "fail loudly"})
        assert [r.level for r in received] == ["error"]
        await client.set_logging_level("debug")
        await client.call_tool("chat", {"message": "chatty"})
    assert [r.level for r in received] == ["error", "info"]
    assert "answered" in str(received[-1].data)


async def test_modern_logs_only_when_the_request_opts_in(settings: Settings, fake: FakeOllama) -> None:
    received: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        received.append(params)

    async with connect(settings, "modern", logging_callback=on_log) as client:
        await client.call_tool("chat", {"message": "no opt-in"})
    assert received == []
    async with connect(settings, "modern", logging_callback=on_log, log_level="info") as client:
        await client.call_tool("chat", {"message": "opted in"})
    assert [r.level for r in received] == ["info"]
