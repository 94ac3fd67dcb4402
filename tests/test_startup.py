"""What a serving process does to the garbage collector at start: paused while the SDK and the
server are built (its passes over the growing heap found almost nothing and cost ~70 ms of a
570 ms start), then the start-up heap frozen and the collector running again, failure or not."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

import mcp_ollama.server
import mcp_ollama.server.app
import mcp_ollama.transports.http
from mcp_ollama.cli.http import serve_http
from mcp_ollama.cli.serve import serve
from mcp_ollama.config import Settings
from mcp_ollama.server import build_server
from mcp_ollama.server.app import settle_heap

from .conftest import eventually

ENTRIES: dict[str, tuple[object, str, Callable[[Settings], int]]] = {
    "stdio": (mcp_ollama.server, "serve", serve),
    "http": (mcp_ollama.transports.http, "serve_http", serve_http),
}
"""Each serving command: the module and name of what it runs, and the command."""


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_settle_heap_freezes_what_start_up_built_and_resumes_the_collector() -> None:
    gc.disable()
    settle_heap()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


@pytest.fixture(params=sorted(ENTRIES))
def entry(request: pytest.FixtureRequest, settings: Settings) -> tuple[object, str, Callable[[], int]]:
    module, name, command = ENTRIES[request.param]
    local = dataclasses.replace(settings, http_port=0)  # port 0: the listen check takes any free one
    return module, name, lambda: command(local)


def test_serving_pauses_the_collector_until_the_server_is_built(
    entry: tuple[object, str, Callable[[], int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, name, command = entry
    seen: list[tuple[str, bool]] = []

    async def built_then_served(*_: object) -> None:
        seen.append(("building", gc.isenabled()))
        settle_heap()
        seen.append(("serving", gc.isenabled()))

    monkeypatch.setattr(module, name, built_then_served)
    assert command() == 0
    assert seen == [("building", False), ("serving", True)]


def test_a_start_that_fails_leaves_the_collector_running(
    entry: tuple[object, str, Callable[[], int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, name, command = entry

    async def fails(*_: object) -> None:
        raise RuntimeError("the store could not be opened")

    monkeypatch.setattr(module, name, fails)
    with pytest.raises(RuntimeError):
        command()
    assert gc.isenabled()


@pytest.mark.anyio
async def test_tool_definitions_that_fail_to_build_leave_the_server_up_and_say_so(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Built after the first answer on stdio: a failure there (a bug) is logged, each request
    that needs the tools gets an error with a code, and the rest of the server keeps serving."""

    def broken(*_: object) -> None:
        raise RuntimeError("a tool definition could not be built")

    monkeypatch.setattr(mcp_ollama.server.app, "_register_tools", broken)
    answered = anyio.Event()
    async with Client(build_server(settings, first_answer=answered)) as client:
        answered.set()
        assert await eventually(lambda: "could not build the tool definitions" in caplog.text, timeout=30)
        with pytest.raises(MCPError) as caught:
            await client.list_tools()
        assert caught.value.error.code not in (0, None) and "keeps running" in caught.value.error.message
        assert (await client.list_prompts()).prompts
