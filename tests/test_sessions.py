"""Sessions as resources, prompts, completions and the session tools, in both protocol eras."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import MCPError
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp_types import (
    INVALID_PARAMS,
    PromptReference,
    ResourceListChangedNotification,
    ResourceTemplateReference,
    ResourceUpdatedNotification,
    TextContent,
    TextResourceContents,
)

from mcp_ollama.backend.connect import open_pool
from mcp_ollama.config import Settings
from mcp_ollama.core.chat import ChatService
from mcp_ollama.core.prompts import DEFAULT_SYSTEM_PROMPT, STYLES
from mcp_ollama.store import ChatStore

from .conftest import connect, eventually
from .fake_ollama import FakeModel, FakeOllama

pytestmark = pytest.mark.anyio

SUBSCRIBE_IS_DEPRECATED = pytest.mark.filterwarnings(
    "ignore:resources/(un)?subscribe is removed:mcp.MCPDeprecationWarning"
)


def not_found_code(era: str) -> int:
    return -32002 if era == "legacy" else INVALID_PARAMS


def fill(settings: Settings, sessions: int, turns: int = 1) -> list[str]:
    """Store ``sessions`` sessions directly; returns their ids, oldest first."""
    ids = [f"s{i:05d}" for i in range(sessions)]
    with ChatStore.open(settings.db_path) as store:
        for sid in ids:
            for t in range(turns):
                store.append_turn(
                    sid, model="llama3:8b", user=f"question {t} in {sid}", assistant=f"answer {t}"
                )
    return ids


async def chat(client, message: str, session_id: str | None = None) -> str:
    args = {"message": message} if session_id is None else {"message": message, "session_id": session_id}
    result = await client.call_tool("chat", args)
    assert result.is_error is not True, result.content
    return str(result.structured_content["session_id"])


# ---------------------------------------------------------------------------- resources


async def test_sessions_are_listed_newest_first_with_title_and_description(
    settings: Settings, era: str
) -> None:
    async with connect(settings, era) as client:
        first = await chat(client, "How do   magnets work? " + "x" * 100)
        second = await chat(client, "Bonjour")
        await chat(client, "more", first)  # first is now the most recently active
        listed = (await client.list_resources()).resources
    assert [r.uri for r in listed] == [f"chat://sessions/{first}", f"chat://sessions/{second}"]
    top = listed[0]
    assert top.title is not None
    assert top.title.startswith("How do magnets work? x")
    assert len(top.title) <= 60
    assert top.mime_type == "application/json"
    assert top.description is not None
    assert "2 turns" in top.description
    assert "llama3:8b" in top.description


async def test_listing_thousands_of_sessions_pages_with_opaque_cursors(settings: Settings, era: str) -> None:
    ids = fill(settings, 1050)
    seen: list[str] = []
    pages = 0
    async with connect(settings, era) as client:
        cursor = None
        while True:
            page = await client.list_resources(cursor=cursor, cache_mode="bypass")
            pages += 1
            seen += [r.uri.removeprefix("chat://sessions/") for r in page.resources]
            cursor = page.next_cursor
            if cursor is None:
                break
            assert "s0" not in cursor, "cursors are opaque, not offsets or ids in clear"
        with pytest.raises(MCPError) as bad:
            await client.list_resources(cursor="not-a-cursor", cache_mode="bypass")
    assert pages == 11
    assert seen == list(reversed(ids))
    assert bad.value.code == INVALID_PARAMS


async def test_the_session_template_is_offered(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        templates = (await client.list_resource_templates()).resource_templates
    uris = {t.uri_template for t in templates}
    assert uris == {"chat://sessions/{session_id}", "ollama://models/{model}"}


async def test_reading_a_session_gives_json_then_markdown(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        sid = await chat(client, "What is 2+2?")
        await chat(client, "And 3+3?", sid)
        read = await client.read_resource(f"chat://sessions/{sid}")
    assert len(read.contents) == 2
    as_json, as_md = read.contents
    assert isinstance(as_json, TextResourceContents)
    assert isinstance(as_md, TextResourceContents)
    assert as_json.mime_type == "application/json"
    assert as_md.mime_type == "text/markdown"
    doc = json.loads(as_json.text)
    assert doc["session_id"] == sid
    assert doc["model"] == "llama3:8b"
    assert doc["turn_count"] == 2
    assert [(m["role"], m["content"]) for m in doc["messages"]][:2] == [
        ("user", "What is 2+2?"),
        ("assistant", "You said: What is 2+2?. I have seen 0 earlier messages."),
    ]
    assert all(m["created_at"].endswith("+00:00") for m in doc["messages"])
    assert doc["created_at"] <= doc["updated_at"]
    assert "## User" in as_md.text
    assert "And 3+3?" in as_md.text


async def test_unknown_session_is_resource_not_found_for_the_era(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource("chat://sessions/doesnotexist")
    assert caught.value.code == not_found_code(era)


@pytest.mark.parametrize(
    "uri",
    [
        "chat://sessions/../../etc/passwd",
        "chat://sessions/a/b",
        "chat://sessions/a%2Fb",
        "chat://sessions/x\x00y",
        "chat://sessions/" + "a" * 65,
        "chat://sessions/x' OR '1'='1",
        "chat://sessions/",
        "file:///etc/passwd",
    ],
)
async def test_hostile_resource_uris_are_refused_as_not_found(settings: Settings, era: str, uri: str) -> None:
    async with connect(settings, era) as client:
        await chat(client, "exists", "a")
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
    assert caught.value.code == not_found_code(era)


async def test_model_resources_describe_pulled_models(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        read = await client.read_resource("ollama://models/llama3:8b")
        with pytest.raises(MCPError) as missing:
            await client.read_resource("ollama://models/nope:1b")
    content = read.contents[0]
    assert isinstance(content, TextResourceContents)
    doc = json.loads(content.text)
    assert doc["model"] == "llama3:8b"
    assert doc["context_length"] == 8192
    assert doc["family"] == "llama"
    assert missing.value.code == not_found_code(era)


# ---------------------------------------------------------------------------- notifications


@SUBSCRIBE_IS_DEPRECATED
async def test_handshake_clients_get_updated_and_list_changed_notifications(settings: Settings) -> None:
    received: list[object] = []

    async def on_message(message: object) -> None:
        received.append(message)

    async with connect(settings, "legacy", message_handler=on_message) as client:
        caps = client.server_capabilities.resources
        assert caps is not None
        assert caps.subscribe is True
        await client.list_resources()  # a connection that has a list hears when it changes
        sid = await chat(client, "first")
        assert await eventually(lambda: any(isinstance(m, ResourceListChangedNotification) for m in received))
        uri = f"chat://sessions/{sid}"
        await client.subscribe_resource(uri)
        received.clear()
        await chat(client, "second", sid)
        assert await eventually(lambda: any(isinstance(m, ResourceUpdatedNotification) for m in received))
        updated = [m for m in received if isinstance(m, ResourceUpdatedNotification)]
        assert [m.params.uri for m in updated] == [uri]
        assert not any(isinstance(m, ResourceListChangedNotification) for m in received), "no new session"
        other = await chat(client, "elsewhere")
        assert await eventually(lambda: any(isinstance(m, ResourceListChangedNotification) for m in received))
        assert [m.params.uri for m in received if isinstance(m, ResourceUpdatedNotification)] == [uri]
        received.clear()
        await client.call_tool("delete_session", {"session_id": other})
        assert await eventually(lambda: any(isinstance(m, ResourceListChangedNotification) for m in received))
        await client.unsubscribe_resource(uri)
        received.clear()
        await chat(client, "third", sid)
        # A barrier instead of a sleep: a new session's list_changed comes after anything the
        # third turn would have sent, so once it is here, a resource_updated would be too.
        await chat(client, "fourth, in a new session")
        assert await eventually(lambda: any(isinstance(m, ResourceListChangedNotification) for m in received))
    assert not any(isinstance(m, ResourceUpdatedNotification) for m in received)


@SUBSCRIBE_IS_DEPRECATED
async def test_subscribing_to_an_unknown_session_is_not_found(settings: Settings) -> None:
    async with connect(settings, "legacy") as client:
        with pytest.raises(MCPError) as caught:
            await client.subscribe_resource("chat://sessions/ghost")
    assert caught.value.code == -32002


async def test_modern_clients_get_notifications_through_listen(settings: Settings) -> None:
    async with connect(settings, "modern") as client:
        sid = await chat(client, "first")
        uri = f"chat://sessions/{sid}"
        events: list[object] = []
        async with client.listen(resources_list_changed=True, resource_subscriptions=[uri]) as sub:

            async def collect() -> None:
                async for event in sub:
                    events.append(event)

            async with anyio.create_task_group() as tg:
                tg.start_soon(collect)
                await chat(client, "second", sid)
                assert await eventually(lambda: ResourceUpdated(uri=uri) in events)
                await chat(client, "new one")
                assert await eventually(lambda: any(isinstance(e, ResourcesListChanged) for e in events))
                tg.cancel_scope.cancel()


# ---------------------------------------------------------------------------- session tools


async def test_delete_and_clear_session_tools(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        keep = await chat(client, "keep")
        await chat(client, "keep 2", keep)
        gone = await chat(client, "gone")
        cleared = await client.call_tool("clear_session", {"session_id": keep})
        deleted = await client.call_tool("delete_session", {"session_id": gone})
        missing = await client.call_tool("delete_session", {"session_id": gone})
        hostile = await client.call_tool("delete_session", {"session_id": "../x"})
        listed = [r.uri for r in (await client.list_resources(cache_mode="bypass")).resources]
        read = await client.read_resource(f"chat://sessions/{keep}")
    assert cleared.structured_content == {"session_id": keep, "deleted": False, "cleared_messages": 4}
    assert deleted.structured_content == {"session_id": gone, "deleted": True, "cleared_messages": 2}
    assert missing.is_error is True
    assert "No chat session" in missing.content[0].text
    assert hostile.is_error is True
    assert listed == [f"chat://sessions/{keep}"]
    assert json.loads(read.contents[0].text)["messages"] == []


async def test_list_models_reports_pulled_models(settings: Settings, fake: FakeOllama, era: str) -> None:
    fake.models.append(
        FakeModel(name="qwen2:0.5b", family="qwen2", parameter_size="494M", quantization_level="Q8_0")
    )
    async with connect(settings, era) as client:
        result = await client.call_tool("list_models", {})
    data = result.structured_content
    assert data["default_model"] == "llama3:8b"
    assert {m["name"] for m in data["models"]} == {"llama3:8b", "qwen2:0.5b"}
    qwen = next(m for m in data["models"] if m["name"] == "qwen2:0.5b")
    assert qwen == {
        "name": "qwen2:0.5b",
        "capabilities": ["completion"],
        "context_length": 8192,
        "num_ctx": 8192,
        "hosts": None,  # one Ollama server: no need to say which has what
        "size_bytes": FakeModel().size,
        "family": "qwen2",
        "parameter_size": "494M",
        "quantization": "Q8_0",
        "modified_at": FakeModel().modified_at,
    }
    assert "llama3:8b" in result.content[0].text


# ---------------------------------------------------------------------------- prompts


async def test_system_prompt_is_exactly_what_chat_sends(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    async with connect(settings, era) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        got = await client.get_prompt("system_prompt")
        await chat(client, "hi")
    assert {"system_prompt", "continue_session"} <= set(prompts)
    assert {a.name for a in prompts["system_prompt"].arguments or []} == {"language", "style"}
    text = got.messages[0].content
    assert isinstance(text, TextContent)
    assert text.text == DEFAULT_SYSTEM_PROMPT
    assert fake.chat_requests[-1]["messages"][0] == {"role": "system", "content": text.text}


async def test_configured_system_prompt_replaces_the_default_everywhere(
    settings: Settings, fake: FakeOllama
) -> None:
    custom = Settings(**{**settings.__dict__, "system_prompt": "You are a pirate."})
    async with connect(custom, "legacy") as client:
        got = await client.get_prompt("system_prompt", {"language": "German", "style": "concise"})
        plain = await client.get_prompt("system_prompt")
        sid = await chat(client, "hi")
        await chat(client, "and again", sid)  # a later turn, with history
        await chat(client, "elsewhere")
    assert plain.messages[0].content.text == "You are a pirate."
    shaped = got.messages[0].content.text
    assert shaped.startswith("You are a pirate.")
    assert "German" in shaped
    assert "short" in shaped
    # Every request Ollama got opens with the configured prompt, and none holds the default.
    assert len(fake.chat_requests) == 3
    for body in fake.chat_requests:
        assert body["messages"][0] == {"role": "system", "content": "You are a pirate."}
        assert not any(m["content"] == DEFAULT_SYSTEM_PROMPT for m in body["messages"])
    assert [m["role"] for m in fake.chat_requests[1]["messages"]] == ["system", "user", "assistant", "user"]
    store = ChatStore.open(custom.db_path)
    try:
        async with open_pool(custom) as ollama:
            assert ChatService(custom, ollama, store).system_prompt == "You are a pirate."
    finally:
        store.close()


async def test_bad_prompt_requests_are_invalid_params(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        with pytest.raises(MCPError) as style:
            await client.get_prompt("system_prompt", {"style": "shouty"})
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("no_such_prompt")
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("continue_session", {})
    assert style.value.code == INVALID_PARAMS
    assert "concise" in style.value.message
    assert unknown.value.code == INVALID_PARAMS
    assert "no_such_prompt" in unknown.value.message
    assert missing.value.code == INVALID_PARAMS
    assert "session_id" in missing.value.message


async def test_continue_session_turns_a_transcript_into_messages(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        sid = await chat(client, "Tell me about otters.")
        await chat(client, "And beavers?", sid)
        got = await client.get_prompt("continue_session", {"session_id": sid})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("continue_session", {"session_id": "ghost"})
    assert [m.role for m in got.messages] == ["user", "assistant", "user", "assistant"]
    assert got.messages[0].content.text == "Tell me about otters."
    assert got.messages[2].content.text == "And beavers?"
    assert "ghost" in missing.value.message


# ---------------------------------------------------------------------------- completions


async def test_completions_for_session_ids_models_styles_and_languages(
    settings: Settings, fake: FakeOllama, era: str
) -> None:
    fake.models.append(FakeModel(name="llama3.2:1b"))
    fill(settings, 3)
    template = ResourceTemplateReference(uri="chat://sessions/{session_id}")
    prompt = PromptReference(name="continue_session")
    async with connect(settings, era) as client:
        by_template = await client.complete(template, {"name": "session_id", "value": "s0000"})
        by_prompt = await client.complete(prompt, {"name": "session_id", "value": "s00002"})
        models = await client.complete(
            ResourceTemplateReference(uri="ollama://models/{model}"), {"name": "model", "value": "llama3"}
        )
        styles = await client.complete(PromptReference(name="system_prompt"), {"name": "style", "value": "f"})
        languages = await client.complete(
            PromptReference(name="system_prompt"), {"name": "language", "value": "ge"}
        )
    assert sorted(by_template.completion.values) == ["s00000", "s00001", "s00002"]
    assert by_prompt.completion.values == ["s00002"]
    assert sorted(models.completion.values) == ["llama3.2:1b", "llama3:8b"]
    assert styles.completion.values == [s for s in STYLES if s.startswith("f")]
    assert languages.completion.values == ["German"]


async def test_model_completion_is_empty_not_an_error_when_ollama_is_down(settings: Settings) -> None:
    down = Settings(**{**settings.__dict__, "ollama_url": "http://127.0.0.1:9"})
    async with connect(down, "legacy") as client:
        result = await client.complete(
            ResourceTemplateReference(uri="ollama://models/{model}"), {"name": "model", "value": ""}
        )
    assert result.completion.values == []
