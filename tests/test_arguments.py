"""Tool arguments that do not fit get one readable sentence, in both protocol eras, and nothing runs."""

from __future__ import annotations

from typing import Any

import pytest
from mcp_types import TextContent

from mcp_ollama.config import Settings

from .conftest import connect
from .fake_ollama import FakeOllama

pytestmark = pytest.mark.anyio

CHAT_TAKES = (
    "It takes: message (required), session_id, model, options, think, include_thinking, format, images, "
    "keep_alive."
)

CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "misspelt argument": (
        "chat",
        {"mesage": "hi"},
        f"Invalid arguments for chat: unknown argument 'mesage' — did you mean 'message'? {CHAT_TAKES}",
    ),
    "misspelt option": (
        "chat",
        {"message": "hi", "options": {"temprature": 0.2}},
        f"Invalid arguments for chat: unknown option 'temprature' — did you mean 'temperature'? {CHAT_TAKES}",
    ),
    "missing argument": (
        "chat",
        {},
        f"Invalid arguments for chat: missing required argument 'message'. {CHAT_TAKES}",
    ),
    "wrong type": (
        "chat",
        {"message": 5},
        f"Invalid arguments for chat: 'message' must be a string (got 5). {CHAT_TAKES}",
    ),
    "out of range": (
        "chat",
        {"message": "hi", "options": {"temperature": 5}},
        "Invalid arguments for chat: 'options.temperature' must be a number (at least 0.0, at most 2.0) "
        f"(got 5). {CHAT_TAKES}",
    ),
    "not one of a union": (
        "chat",
        {"message": "hi", "think": "max"},
        'Invalid arguments for chat: \'think\' must be true or false, "low", "medium" or "high" '
        f'(got "max"). {CHAT_TAKES}',
    ),
    "a list item": (
        "chat",
        {"message": "hi", "images": [1]},
        f"Invalid arguments for chat: 'images.0' must be a string (got 1). {CHAT_TAKES}",
    ),
    "another tool": (
        "chat_result",
        {"sesion_id": "abc"},
        "Invalid arguments for chat_result: unknown argument 'sesion_id' — did you mean 'session_id'? "
        "It takes: session_id.",
    ),
    "a tool without arguments": (
        "list_models",
        {"verbose": True},
        "Invalid arguments for list_models: unknown argument 'verbose'. It takes no arguments.",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_misfit_argument_is_one_sentence_naming_it_and_the_accepted_ones(
    settings: Settings, fake: FakeOllama, era: str, case: str
) -> None:
    tool, arguments, expected = CASES[case]
    async with connect(settings, era) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error is True
    assert len(result.content) == 1 and isinstance(result.content[0], TextContent)
    assert result.content[0].text == expected
    assert "pydantic" not in expected and "validation error" not in expected
    assert fake.requests == []  # refused before anything ran


async def test_tool_descriptions_are_dedented(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert tool.description
        assert "\n    " not in tool.description, tool.name
