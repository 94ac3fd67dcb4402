"""Shared fixtures: a fake Ollama on loopback, settings pointing at it, and MCP clients in both eras."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from mcp_ollama.config import Settings
from mcp_ollama.server import build_server

from .fake_ollama import FakeOllama

# Compile once, not in every process: with PYTHONDONTWRITEBYTECODE set (as on this project's machines),
# pytest rewrites every test module's asserts again in each worker (about 5 s of CPU each), and every
# server the tests spawn compiles the package again. The compiled files go to the git-ignored
# __pycache__ directories.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

ERAS = ("legacy", "modern")
"""legacy: the initialize handshake (2025-11-25); modern: the 2026-07-28 per-request envelope."""


INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
"""A handshake-era ``initialize`` request, for tests that speak JSON-RPC themselves."""
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
"""The headers a streamable HTTP POST needs."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may touch the real user data directory or a real Ollama."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name in ("OLLAMA_HOST", "OLLAMA_API_KEY") or name.startswith("MCP_OLLAMA_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def _fake_server() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def fake(_fake_server: FakeOllama) -> Iterator[FakeOllama]:
    """The loopback fake Ollama, with behaviours and records cleared for this test."""
    models = list(_fake_server.models)
    _fake_server.reset()
    yield _fake_server
    _fake_server.reset()
    _fake_server.models[:] = models


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "sessions.sqlite3")


PARALLEL = 64
"""Chats per Ollama server the tests' settings allow at once."""


@pytest.fixture
def settings(fake: FakeOllama, db_path: str) -> Settings:
    # No preload: most tests count the requests the fake receives; test_jobs.py turns it on.
    # The fake serves any number of chats at once, like an Ollama with a large OLLAMA_NUM_PARALLEL;
    # the default of one slot per server is tested on its own (test_hosts_pool.py).
    return Settings(
        ollama_url=fake.url,
        db_path=db_path,
        generation_timeout=10.0,
        connect_timeout=2.0,
        preload=False,
        max_parallel=PARALLEL,
    )


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_for(target: Any, era: str, **kwargs: Any) -> Client:
    """An SDK client speaking ``era`` to ``target`` (an MCPServer or StdioServerParameters)."""
    return Client(target, mode="legacy" if era == "legacy" else "auto", **kwargs)


@asynccontextmanager
async def connect(settings: Settings, era: str, **kwargs: Any) -> AsyncIterator[Client]:
    """An in-memory client for a fresh server built from ``settings``."""
    async with client_for(build_server(settings), era, **kwargs) as client:
        yield client


def stdio_params(settings: Settings, *args: str, **env: str) -> StdioServerParameters:
    """How to spawn the installed server as a subprocess pointed at ``settings``."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_ollama", *args],
        env={
            "OLLAMA_HOST": settings.ollama_url,
            "MCP_OLLAMA_DB": settings.db_path,
            "MCP_OLLAMA_LOG_LEVEL": "INFO",
            "MCP_OLLAMA_PRELOAD": "on" if settings.preload else "off",
            "MCP_OLLAMA_MAX_PARALLEL": str(settings.max_parallel),
            **env,
        },
    )


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` without blocking the event loop (in-memory servers share it with the test)."""
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)
        return True
    return False
