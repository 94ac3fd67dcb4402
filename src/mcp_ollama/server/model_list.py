"""``list_models``: the models every Ollama server has pulled, with what each can do."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult

from ..backend.admin_models import ModelInfo, ModelShow
from ..errors import McpOllamaError
from . import sdk
from .errors import public_text, tool_error
from .principal import LOCAL_PRINCIPAL, principal
from .results import ModelList, human_size, model_summary
from .state import AppState, app_state, structured_result, tool_annotations

logger = logging.getLogger(__name__)


def register(server: MCPServer[AppState]) -> None:
    """``list_models``, on ``server``."""
    sdk.add_tool(
        server,
        list_models,
        title="List local models",
        annotations=tool_annotations("List local models", read_only=True, idempotent=True),
    )


async def list_models(ctx: Context[AppState, Any]) -> Annotated[CallToolResult, ModelList]:
    """List the models pulled into the local Ollama: what each can do (thinking, vision, tools), its
    context window, size, family and quantization.

    Use a name from this list as the `model` argument of chat.
    """
    state = app_state(ctx)
    try:
        models, hosts, down = await _pulled_everywhere(state)
    except McpOllamaError as exc:
        return tool_error(exc)
    shown = await _details(state, [m.name for m in models])
    # Which server has which model is the operator's business: addresses only for `local`.
    several = state.pool.several and principal(ctx) == LOCAL_PRINCIPAL
    result = ModelList(
        models=[
            model_summary(
                m,
                shown.get(m.name),
                state.chat.window(m.name, shown.get(m.name), None),
                hosts[m.name] if several else None,
            )
            for m in models
        ],
        default_model=state.settings.model,
    )
    lines = [f"Default model: {result.default_model}"] + [
        f"- {m.name} ({m.parameter_size or '?'} params, {m.quantization or '?'}, "
        f"{human_size(m.size_bytes)}; can: {', '.join(m.capabilities or ['?'])}; "
        f"context {_tokens(m.context_length)}, chat uses {_tokens(m.num_ctx)})"
        + (f" on {', '.join(m.hosts)}" if m.hosts else "")
        for m in result.models
    ]
    lines += [public_text(f"Ollama at {url} did not answer: {why}") for url, why in down.items()]
    if not result.models:
        lines.append(f"No models are pulled. Pull one with `ollama pull {state.settings.model}`.")
    return structured_result("\n".join(lines), result)


async def _pulled_everywhere(
    state: AppState,
) -> tuple[list[ModelInfo], dict[str, list[str]], dict[str, str]]:
    """The models every Ollama server has pulled (first seen first), which servers have each, and
    the servers that did not answer. Raises when none answers."""
    models: dict[str, ModelInfo] = {}
    hosts: dict[str, list[str]] = {}
    down: dict[str, str] = {}
    errors: list[McpOllamaError] = []
    for client in state.pool.clients:
        try:
            listed = await state.pool.catalog(client.base_url).pulled(fresh=True)
        except McpOllamaError as exc:
            errors.append(exc)
            down[client.base_url] = str(exc)
            continue
        for model in listed:
            models.setdefault(model.name, model)
            hosts.setdefault(model.name, []).append(client.base_url)
    if len(errors) == len(state.pool.clients):
        raise errors[0]
    return list(models.values()), hosts, down


async def _details(state: AppState, names: list[str]) -> dict[str, ModelShow]:
    """Each model's details (cached after the first time), read concurrently; a failure leaves one out."""
    found: dict[str, ModelShow] = {}

    async def read(name: str) -> None:
        try:
            found[name] = await (await state.pool.catalog_for(name)).show(name)
        except McpOllamaError as exc:
            logger.info("no details for %s: %s", name, exc)

    async with anyio.create_task_group() as tg:
        for name in names[:100]:
            tg.start_soon(read, name)
    return found


def _tokens(count: int | None) -> str:
    return "?" if count is None else f"{count:,} tokens"
