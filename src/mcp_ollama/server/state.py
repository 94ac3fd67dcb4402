"""What every handler shares: the lifetime state, and the shapes of tool results."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool, ToolManager
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

from ..backend.pool import OllamaPool
from ..config import Settings
from ..core.chat import ChatService
from ..core.jobs import Jobs
from ..core.pulls import Pulls
from ..errors import BackendError
from ..store import Store
from .patience import Patience
from .peers import Peers
from .task_terms import Requesters
from .taskbook import TaskBook

SESSION_URI_PREFIX = "chat://sessions/"
SESSION_URI_TEMPLATE = SESSION_URI_PREFIX + "{session_id}"
MODEL_CACHE_SECONDS = 30.0


@dataclass
class AppState:
    """What lives for the server's lifetime: built in the lifespan, closed when it ends."""

    settings: Settings
    pool: OllamaPool
    """Every Ollama call goes through it (one server is a pool of one)."""
    store: Store
    chat: ChatService
    jobs: Jobs
    peers: Peers
    tasks: TaskBook
    """Every MCP task of this server, both eras."""
    tools: ToolManager
    """The server's tools as registered (their argument models)."""
    requesters: Requesters = field(default_factory=Requesters)
    """Names for the connections that ask for tasks."""
    pulls: Pulls = field(default_factory=Pulls)
    """Models being pulled onto the Ollama servers (``pull_model``), and the last ones pulled."""
    patience: Patience = field(default_factory=Patience)
    """Why hosts cancel, and how long each client waits (the server's middleware, the same object)."""
    _model_names: tuple[float, list[str]] = field(default=(-1e9, []))

    @property
    def chat_tool(self) -> Tool:
        """``chat`` as registered (its argument model), for task calls that bypass ``tools/call``."""
        tool = self.tools.get_tool("chat")
        assert tool is not None, "chat is always registered"
        return tool

    async def model_names(self) -> list[str]:
        """Pulled model names on every server (first seen first), cached briefly; empty (not an
        error) when no server answers."""
        fetched_at, names = self._model_names
        if time.monotonic() - fetched_at < MODEL_CACHE_SECONDS:
            return names
        try:
            listed = await self.pool.where()
        except BackendError:
            listed = {}
        names = list(dict.fromkeys(name for host in listed.values() for name in host.models))
        self._model_names = (time.monotonic(), names)
        return names

    def forget_model_names(self) -> None:
        """Read the pulled models again on next use: one was pulled or removed."""
        self._model_names = (-1e9, [])


def app_state(ctx: Context[Any, Any] | ServerRequestContext[Any, Any]) -> AppState:
    request_context = ctx.request_context if isinstance(ctx, Context) else ctx
    state = request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


def session_uri(session_id: str) -> str:
    return SESSION_URI_PREFIX + session_id


def tool_annotations(
    title: str, *, read_only: bool, idempotent: bool, destructive: bool = False
) -> ToolAnnotations:
    """Every tool here works on this machine only: a closed world."""
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=None if read_only else destructive,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


def structured_result(text: str, result: BaseModel) -> CallToolResult:
    """A tool result: ``text`` for people and models, ``result`` as ``structuredContent``."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=result.model_dump(mode="json")
    )
