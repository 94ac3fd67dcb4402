"""``backend/connect.py``: from settings to Ollama, the client the server builds keeps the configured
``connect_timeout`` (a promise a mutation audit found unguarded)."""

from __future__ import annotations

import dataclasses

import anyio
import pytest

from mcp_ollama.config import Settings

from .conftest import connect
from .raw_ollama import never_accepting

pytestmark = pytest.mark.anyio


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
