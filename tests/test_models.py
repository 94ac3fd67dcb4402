"""The models people run (issue 10), through the SDK client in both eras: each model's own window
(``num_ctx``) and a calibrated budget, thinking kept apart, JSON answers, helpful model errors (images:
``test_image_limits.py``).

The fake Ollama counts prompt tokens and drops what does not fit ``num_ctx`` silently, as Ollama
does (``fake.truncations``): that is how these tests see a budget that trims too late.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult, TextContent, TextResourceContents

from mcp_ollama.backend.models import ChatMessage
from mcp_ollama.config import Settings
from mcp_ollama.core.budget import answer_reserve, fit_history
from mcp_ollama.core.prompts import render_system_prompt
from mcp_ollama.store import ChatStore

from .conftest import connect, eventually
from .fake_ollama import (
    DEEPSEEK_R1,
    DEFAULT_THINKING,
    GPT_OSS,
    LLAMA3,
    LLAMA31,
    LLAVA,
    QWEN3,
    Behavior,
    FakeModel,
    FakeOllama,
)

pytestmark = pytest.mark.anyio


def text_of(result: CallToolResult) -> str:
    assert result.content, "a tool result must carry content"
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def structured(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error is not True, text_of(result)
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    return data


def chats(fake: FakeOllama) -> list[dict[str, Any]]:
    """The bodies of the chat requests that generate (preloads and unloads left out)."""
    return [body for body in fake.chat_requests if body.get("messages")]


async def refused(settings: Settings, fake: FakeOllama, era: str, arguments: dict[str, Any]) -> str:
    """Call chat with ``arguments`` (message "hi" unless given); it must fail before any /api/chat."""
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", **arguments})
    assert result.is_error is True
    assert chats(fake) == []
    return text_of(result)


def show_requests(fake: FakeOllama) -> list[str]:
    """The model named by each ``/api/show`` request, in order."""
    return [
        str((r.body or {}).get("model") or (r.body or {}).get("name"))
        for r in fake.requests
        if r.path == "/api/show"
    ]


async def session_docs(client: Client, sid: str) -> tuple[dict[str, Any], str]:
    """The session resource: its JSON document and its Markdown transcript."""
    read = await client.read_resource(f"chat://sessions/{sid}")
    as_json, as_md = read.contents
    assert isinstance(as_json, TextResourceContents) and isinstance(as_md, TextResourceContents)
    return json.loads(as_json.text), as_md.text


# --- num_ctx: each model's own window --------------------------------------------------------


async def test_llama3_gets_its_own_8192_window_on_every_chat_and_the_preload(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(dataclasses.replace(settings, preload=True), era) as client:
        assert await eventually(lambda: any(not b.get("messages") for b in fake.chat_requests), 10)
        sid = structured(await client.call_tool("chat", {"message": "one"}))["session_id"]
        structured(await client.call_tool("chat", {"message": "two", "session_id": sid}))
    preloads = [b for b in fake.chat_requests if not b.get("messages")]
    assert [p["options"] for p in preloads] == [{"num_ctx": 8192}]
    assert [b["options"]["num_ctx"] for b in chats(fake)] == [8192, 8192]
    # The same num_ctx everywhere: Ollama loaded the model once, at the preload.
    assert fake.loads == ["llama3:8b"]


async def test_a_model_larger_than_max_context_is_capped_at_16384(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(QWEN3)
    async with connect(settings, era) as client:
        result = structured(await client.call_tool("chat", {"message": "hi", "model": "qwen3:8b"}))
    assert chats(fake)[-1]["options"] == {"num_ctx": 16384}
    assert chats(fake)[-1]["model"] == "qwen3:8b"
    assert result["model"] == "qwen3:8b"


async def test_max_context_setting_caps_the_window(settings: Settings, fake: FakeOllama, era: str) -> None:
    fake.models.append(LLAMA31)
    async with connect(dataclasses.replace(settings, max_context=32768), era) as client:
        structured(await client.call_tool("chat", {"message": "hi", "model": "llama3.1:8b"}))
        structured(await client.call_tool("chat", {"message": "hi"}))
    assert [b["options"]["num_ctx"] for b in chats(fake)] == [32768, 8192]


async def test_configured_num_ctx_wins_for_every_model_and_the_preload(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(QWEN3)
    configured = dataclasses.replace(settings, num_ctx=2048, preload=True)
    async with connect(configured, era) as client:
        assert await eventually(lambda: any(not b.get("messages") for b in fake.chat_requests), 10)
        structured(await client.call_tool("chat", {"message": "hi"}))
        structured(await client.call_tool("chat", {"message": "hi", "model": "qwen3:8b"}))
    preload = next(b for b in fake.chat_requests if not b.get("messages"))
    assert preload["options"] == {"num_ctx": 2048}
    assert [b["options"]["num_ctx"] for b in chats(fake)] == [2048, 2048]


async def test_a_calls_own_num_ctx_wins_but_is_capped_at_the_models_maximum(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        small = await client.call_tool("chat", {"message": "hi", "options": {"num_ctx": 3000}})
        large = await client.call_tool("chat", {"message": "hi", "options": {"num_ctx": 100_000}})
    structured(small)
    structured(large)
    assert [b["options"]["num_ctx"] for b in chats(fake)] == [3000, 8192]


async def test_model_details_are_read_once_per_model_across_chats(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(QWEN3)
    async with connect(settings, era) as client:
        sid = structured(await client.call_tool("chat", {"message": "a"}))["session_id"]
        for word in ("b", "c"):
            structured(await client.call_tool("chat", {"message": word, "session_id": sid}))
        for word in ("d", "e"):
            structured(await client.call_tool("chat", {"message": word, "model": "qwen3:8b"}))
    assert len(chats(fake)) == 5
    assert sorted(show_requests(fake)) == ["llama3:8b", "qwen3:8b"]


async def test_model_details_are_read_once_when_chats_start_together(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client, anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(client.call_tool, "chat", {"message": f"m{n}"})
    assert len(chats(fake)) == 4
    assert show_requests(fake) == ["llama3:8b"]


# --- the budget uses the real window --------------------------------------------------------


async def test_a_20000_character_message_fits_llama3_whole(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    message = "word " * 4000
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": message})
    structured(result)
    (body,) = chats(fake)
    assert body["messages"][-1] == {"role": "user", "content": message}
    assert fake.truncations == []


async def test_a_40000_character_message_is_too_long_for_llama3s_window_and_never_sent(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "y" * 40_000})
    assert result.is_error is True
    text = text_of(result)
    assert "too long" in text and "llama3:8b's context window of 8,192 tokens" in text
    assert chats(fake) == []


async def test_a_configured_num_ctx_beyond_the_models_maximum_is_budgeted_at_the_maximum(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(dataclasses.replace(settings, num_ctx=32768), era) as client:
        result = await client.call_tool("chat", {"message": "y" * 40_000})
    # 10,000 tokens cannot fit llama3:8b's 8192, whatever num_ctx says: refuse, do not let Ollama cut.
    assert fake.truncations == []
    assert result.is_error is True and "too long" in text_of(result)


# --- calibration ----------------------------------------------------------------------------

DENSE = FakeModel(name="dense:8b", chars_per_token=2.0, context_length=8192)
"""A model whose tokenizer makes twice the tokens of the 4-characters-a-token estimate."""


async def test_calibration_trims_a_dense_models_history_before_ollama_would_cut_it(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(DENSE)
    fake.default = Behavior(reply="ok")
    messages = [f"{n}" + "x" * 5999 for n in range(4)]
    async with connect(settings, era) as client:
        sid = structured(await client.call_tool("chat", {"message": messages[0], "model": "dense:8b"}))[
            "session_id"
        ]
        for message in messages[1:]:
            args = {"message": message, "model": "dense:8b", "session_id": sid}
            structured(await client.call_tool("chat", args))
    assert fake.truncations == [], "the calibrated budget must trim before Ollama has to"
    last = chats(fake)[-1]
    assert len(last["messages"]) < 1 + 2 * 3 + 1, "the oldest turns were trimmed"
    assert last["messages"][-1]["content"] == messages[-1]
    assert last["options"]["num_ctx"] == 8192

    # Without calibration: the whole history fits the 4-characters-a-token estimate...
    system = ChatMessage(role="system", content=render_system_prompt(settings.system_prompt))
    history = []
    for message in messages[:-1]:
        history += [ChatMessage(role="user", content=message), ChatMessage(role="assistant", content="ok")]
    user = ChatMessage(role="user", content=messages[-1])
    budget = 8192 - answer_reserve(8192, None)
    assert fit_history(system, history, user, budget) == history
    # ...and sent whole, it would have overflowed the window: Ollama would have cut it silently.
    untrimmed = {
        "model": "dense:8b",
        "messages": [m.model_dump(exclude_none=True) for m in (system, *history, user)],
    }
    assert fake.prompt_tokens(untrimmed) > 8192


async def test_a_normal_models_history_that_fits_is_sent_whole(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.default = Behavior(reply="ok")
    messages = [f"{n}" + "x" * 5999 for n in range(4)]  # about 6,000 of the 7,168 prompt tokens
    async with connect(settings, era) as client:
        sid = structured(await client.call_tool("chat", {"message": messages[0]}))["session_id"]
        for message in messages[1:]:
            last = structured(await client.call_tool("chat", {"message": message, "session_id": sid}))
    assert last["history_messages"] == 6
    body = chats(fake)[-1]
    assert [m["content"] for m in body["messages"][1:]] == [
        messages[0],
        "ok",
        messages[1],
        "ok",
        messages[2],
        "ok",
        messages[3],
    ]
    assert fake.truncations == []


# --- thinking -------------------------------------------------------------------------------

THOUGHT = "first I consider the question then I weigh the answer carefully"


async def test_qwen3_thinks_when_asked_and_the_thinking_streams_apart_from_the_answer(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(QWEN3)
    fake.enqueue(Behavior(thinking=THOUGHT, reply="The answer is 4.", token_delay=0.03))
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    fast = dataclasses.replace(settings, progress_interval=0.0)
    async with connect(fast, era) as client:
        result = await client.call_tool(
            "chat",
            {"message": "2+2?", "model": "qwen3:8b", "think": True},
            progress_callback=on_progress,
        )
    data = structured(result)
    (body,) = chats(fake)
    assert body["think"] is True
    assert data["answer"] == "The answer is 4."
    assert text_of(result) == "The answer is 4."
    assert data.get("thinking") is None, "thinking is returned only with include_thinking"
    assert any("thinking…" in m for m in seen), seen


async def test_include_thinking_returns_the_thinking(settings: Settings, fake: FakeOllama, era: str) -> None:
    fake.models.append(QWEN3)
    fake.enqueue(Behavior(thinking=THOUGHT, reply="Four."))
    async with connect(settings, era) as client:
        args = {"message": "2+2?", "model": "qwen3:8b", "think": True, "include_thinking": True}
        result = await client.call_tool("chat", args)
    data = structured(result)
    assert data["thinking"] == THOUGHT
    assert data["answer"] == "Four."
    assert THOUGHT in text_of(result) and "Four." in text_of(result)


async def test_think_levels_go_to_gpt_oss_as_given(settings: Settings, fake: FakeOllama, era: str) -> None:
    fake.models.append(GPT_OSS)
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", "model": "gpt-oss:20b", "think": "high"})
    structured(result)
    assert chats(fake)[-1]["think"] == "high"
    assert chats(fake)[-1]["options"] == {"num_ctx": 16384}


async def test_think_for_a_model_that_cannot_is_refused_naming_those_that_can(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models[:] = [LLAMA3, QWEN3, LLAVA]
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", "think": True})
    assert result.is_error is True
    text = text_of(result)
    assert "llama3:8b" in text and "'thinking'" in text
    assert "qwen3:8b" in text and "llava:7b" not in text
    assert chats(fake) == []


async def test_think_false_to_a_model_that_cannot_think_sends_no_think(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", "think": False})
    structured(result)
    assert "think" not in chats(fake)[-1]


async def test_think_false_to_a_thinking_model_is_sent(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(QWEN3)
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", "model": "qwen3:8b", "think": False})
    assert structured(result)["answer"] == "You said: hi. I have seen 0 earlier messages."
    assert chats(fake)[-1]["think"] is False


async def test_thinking_is_stored_but_never_sent_back_as_history(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(QWEN3)
    fake.enqueue(Behavior(thinking=THOUGHT, reply="Four."))
    async with connect(settings, era) as client:
        first = structured(
            await client.call_tool("chat", {"message": "2+2?", "model": "qwen3:8b", "think": True})
        )
        sid = first["session_id"]
        structured(
            await client.call_tool("chat", {"message": "and 3+3?", "model": "qwen3:8b", "session_id": sid})
        )
        doc, markdown = await session_docs(client, sid)
    second = chats(fake)[-1]
    assert "think" not in second
    assert second["messages"][1:] == [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "Four."},
        {"role": "user", "content": "and 3+3?"},
    ]
    assert THOUGHT not in json.dumps(second)
    assert doc["messages"][1]["thinking"] == THOUGHT
    assert "<summary>Thinking</summary>" in markdown and THOUGHT in markdown


async def test_inline_think_blocks_are_kept_out_of_the_answer_stored_and_folded(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(DEEPSEEK_R1)
    async with connect(settings, era) as client:
        result = await client.call_tool(
            "chat", {"message": "hello", "model": "deepseek-r1:7b", "include_thinking": False}
        )
        data = structured(result)
        sid = data["session_id"]
        structured(
            await client.call_tool("chat", {"message": "again", "model": "deepseek-r1:7b", "session_id": sid})
        )
        doc, markdown = await session_docs(client, sid)
    first_body, second_body = chats(fake)
    assert "think" not in first_body
    assert data["answer"] == "You said: hello. I have seen 0 earlier messages."
    assert "<think>" not in text_of(result) and "</think>" not in text_of(result)
    assert data.get("thinking") is None
    assert doc["messages"][1]["content"] == data["answer"]
    assert doc["messages"][1]["thinking"] == DEFAULT_THINKING
    assert doc["messages"][0].get("thinking") is None
    # Folded in the transcript: a <details> block headed "Thinking", then the answer.
    fold = f"<details>\n<summary>Thinking</summary>\n\n{DEFAULT_THINKING}\n\n</details>"
    assert fold in markdown
    assert markdown.index(fold) < markdown.index(data["answer"], markdown.index("## Assistant"))
    # The next turn's history holds the answer alone.
    assert second_body["messages"][2] == {"role": "assistant", "content": data["answer"]}
    assert "think>" not in json.dumps(second_body) and DEFAULT_THINKING not in json.dumps(second_body)


async def test_inline_thinking_is_returned_with_include_thinking(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(DEEPSEEK_R1)
    fake.enqueue(Behavior(thinking=THOUGHT, reply="Hi."))
    async with connect(settings, era) as client:
        args = {"message": "hello", "model": "deepseek-r1:7b", "include_thinking": True}
        data = structured(await client.call_tool("chat", args))
    assert (data["answer"], data["thinking"]) == ("Hi.", THOUGHT)


async def test_an_inline_block_streamed_token_by_token_leaves_a_clean_answer(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.enqueue(Behavior(tokens=["<think>", "\n", "a plan", "\n", "</think>", "\n\n", "The", " answer."]))
    async with connect(settings, era) as client:
        data = structured(await client.call_tool("chat", {"message": "hi", "include_thinking": True}))
    assert data["thinking"] == "a plan"
    assert data["answer"] == "The answer."


async def test_a_think_level_for_a_model_without_levels_is_ollamas_error(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(QWEN3)
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", "model": "qwen3:8b", "think": "low"})
    assert result.is_error is True
    assert 'think value "low" is not supported for this model' in text_of(result)
    assert chats(fake)[-1]["think"] == "low"


# --- JSON answers ---------------------------------------------------------------------------


async def test_format_json_is_passed_and_the_answer_parsed(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", "format": "json"})
    data = structured(result)
    assert chats(fake)[-1]["format"] == "json"
    assert data["data"] == {"answer": "You said: hi. I have seen 0 earlier messages."}
    assert json.loads(data["answer"]) == data["data"]


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 1000}},
    "required": ["city", "population"],
}


async def test_a_format_schema_is_passed_and_the_data_matches_it(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "biggest city?", "format": SCHEMA})
    data = structured(result)
    assert chats(fake)[-1]["format"] == SCHEMA
    assert data["data"] == {"city": "text", "population": 1000}


async def test_an_answer_that_is_not_json_is_an_error_with_the_raw_text_and_nothing_is_stored(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.enqueue(Behavior(reply="not json {"))
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", "format": "json", "session_id": "fmt"})
    assert result.is_error is True
    text = text_of(result)
    assert "not json {" in text
    assert "not valid JSON" in text and "Expecting value" in text
    with ChatStore.open(settings.db_path) as store:
        assert store.get_session("fmt") is None


async def test_a_json_answer_off_the_schema_is_an_error_with_the_validation_message(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    raw = '{"city": "Paris", "population": "two million"}'
    fake.enqueue(Behavior(reply="ok"), Behavior(reply=raw))
    async with connect(settings, era) as client:
        sid = structured(await client.call_tool("chat", {"message": "first"}))["session_id"]
        result = await client.call_tool("chat", {"message": "city?", "format": SCHEMA, "session_id": sid})
    assert result.is_error is True
    text = text_of(result)
    assert "does not match the schema" in text
    assert "at /population" in text and "'two million' is not of type 'integer'" in text
    assert raw in text
    with ChatStore.open(settings.db_path) as store:
        assert [m.content for m in store.messages(sid)] == ["first", "ok"]


async def test_an_invalid_schema_is_refused_before_ollama_is_asked(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    assert "not a valid JSON Schema" in await refused(settings, fake, era, {"format": {"type": 12}})


async def test_json_from_a_model_that_thinks_inline_is_parsed_without_the_thinking(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(DEEPSEEK_R1)
    async with connect(settings, era) as client:
        args = {"message": "hi", "model": "deepseek-r1:7b", "format": SCHEMA, "include_thinking": True}
        data = structured(await client.call_tool("chat", args))
    assert data["data"] == {"city": "text", "population": 1000}
    assert data["thinking"] == DEFAULT_THINKING


async def test_the_chat_tool_declares_think_format_images_and_their_results(
    settings: Settings, era: str
) -> None:
    async with connect(settings, era) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    chat = tools["chat"]
    assert {"think", "include_thinking", "format", "images"} <= set(chat.input_schema["properties"])
    assert chat.output_schema is not None
    assert {"thinking", "data"} <= set(chat.output_schema["properties"])


# --- model errors and listings --------------------------------------------------------------


async def test_an_unknown_model_names_the_closest_pulled_one(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        result = await client.call_tool("chat", {"message": "hi", "model": "llama3"})
    assert result.is_error is True
    text = text_of(result)
    assert "Did you mean 'llama3:8b'?" in text
    assert "Pulled models: llama3:8b." in text
    assert chats(fake) == []


async def test_list_models_shows_capabilities_and_windows(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models[:] = [LLAMA3, QWEN3, LLAVA, LLAMA31]
    async with connect(settings, era) as client:
        result = await client.call_tool("list_models", {})
    models = {m["name"]: m for m in structured(result)["models"]}
    expected = {
        "llama3:8b": (["completion"], 8192, 8192),
        "qwen3:8b": (["completion", "tools", "thinking"], 40960, 16384),
        "llava:7b": (["completion", "vision"], 4096, 4096),
        "llama3.1:8b": (["completion", "tools"], 131072, 16384),
    }
    assert {n: (m["capabilities"], m["context_length"], m["num_ctx"]) for n, m in models.items()} == expected
    assert "qwen3:8b" in text_of(result) and "thinking" in text_of(result)


async def test_the_model_resource_shows_capabilities_and_windows(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(QWEN3)
    async with connect(settings, era) as client:
        read = await client.read_resource("ollama://models/qwen3:8b")
    content = read.contents[0]
    assert isinstance(content, TextResourceContents)
    doc = json.loads(content.text)
    assert doc["model"] == "qwen3:8b"
    assert doc["capabilities"] == ["completion", "tools", "thinking"]
    assert doc["context_length"] == 40960
    assert doc["num_ctx"] == 16384
