"""What Ollama holds in memory, as resources: ``ollama://running`` (every server's loaded models,
as ``running_models`` gives them) and the ``loaded`` part of ``ollama://models/{model}``.

``ollama://running`` is read on demand and not listed (``resources/list`` pages through sessions);
its content changes with every chat, so it offers no subscription.
"""

from __future__ import annotations

import json

from mcp.server.context import ServerRequestContext
from mcp_types import ReadResourceResult, TextResourceContents

from ..backend import admin
from .model_results import LoadedModel, RunningList, loaded_model
from .state import AppState, app_state

RUNNING_URI = "ollama://running"


async def loaded_on(state: AppState, model: str) -> list[dict[str, object]]:
    """Where ``model`` is in memory now (one entry per server; empty: nowhere, or nobody could say)."""
    key = admin.model_key(model)
    servers = await admin.running(state.pool)
    return [
        loaded_model(s.url, m).model_dump(mode="json")
        for s in servers
        for m in s.models
        if admin.model_key(m.name) == key
    ]


async def read_running(ctx: ServerRequestContext[AppState], uri: str) -> ReadResourceResult:
    """``ollama://running``: every server's loaded models, and the servers that could not say."""
    servers = await admin.running(app_state(ctx).pool)
    models: list[LoadedModel] = [loaded_model(s.url, m) for s in servers for m in s.models]
    down = {s.url: s.error for s in servers if s.error is not None}
    text = json.dumps(RunningList(models=models, unreachable=down).model_dump(mode="json"), indent=2)
    return ReadResourceResult(
        contents=[TextResourceContents(uri=uri, mime_type="application/json", text=text)]
    )
