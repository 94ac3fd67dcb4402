"""Models on demand: ``pull_model`` (with ``pull_result`` and ``cancel_pull``), ``running_models``,
``unload_model`` and ``embed``, registered by ``register``.

Who may do what: pulling and unloading change a machine others share, so over HTTP with a
tokens file only admin tokens (``tokens add NAME --admin``) and the operator (``local``, as every
stdio request is) may; everyone may list, follow a pull, embed and chat. ``require_admin`` is
the one check, asked of the principal the request came with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..backend import admin
from ..core.job import Job
from ..errors import McpOllamaError, NotAllowed
from ..transports.auth import TokenFileError, read_tokens
from . import sdk
from .arguments import argument_problem
from .embedding import embed
from .errors import tool_error
from .model_results import (
    LoadedModel,
    PullCancel,
    PullResult,
    RunningList,
    UnloadResult,
    loaded_model,
    loaded_text,
)
from .principal import LOCAL_PRINCIPAL, principal
from .pull_tools import CANCEL_GRACE_SECONDS, await_pull, pull_answer, start_pull
from .state import AppState, app_state, structured_result, tool_annotations

ModelArg = Annotated[str, Field(description="An Ollama model name with its tag, e.g. 'llama3.1:8b'.")]
PullIdArg = Annotated[str, Field(description="The pull_id a pull_model call returned.")]


async def require_admin(state: AppState, who: str, doing: str) -> None:
    """``NotAllowed`` unless ``who`` is the operator (``local``) or an admin token of the tokens file."""
    if who == LOCAL_PRINCIPAL:
        return
    path = state.settings.tokens_file
    if path is not None:
        try:
            entries = await anyio.to_thread.run_sync(read_tokens, Path(path))
        except TokenFileError:
            entries = []  # unreadable: nobody is an admin (the transport refuses every token anyway)
        if any(entry.name == who and entry.admin for entry in entries):
            return
    raise NotAllowed(who, doing)


# ---------------------------------------------------------------------------- pulls


async def pull_model(
    model: ModelArg,
    ctx: Context[AppState, Any],
    server: Annotated[
        str | None,
        Field(
            description="Pull onto this Ollama server only (its URL, as running_models shows it). "
            "Omit to pull onto every server."
        ),
    ] = None,
    insecure: Annotated[
        bool, Field(description="Allow a registry without TLS (your own registry only). Default false.")
    ] = False,
) -> Annotated[CallToolResult, PullResult]:
    """Download a model into Ollama (like `ollama pull`), with live progress.

    Large models take minutes. If the download is still going when this call returns
    (status 'pulling'), call pull_result with the pull_id to wait for the rest. Once it is
    complete the model can be used as `model` in chat. Only admins may pull on a shared server.
    """
    state = app_state(ctx)
    who = principal(ctx)
    try:
        await require_admin(state, who, "pull models")
        job, new = await start_pull(state, model, server=server, insecure=insecure, principal=who)
    except McpOllamaError as exc:
        return tool_error(exc)
    return await await_pull(ctx, job, owner=new)


async def pull_result(
    pull_id: PullIdArg, ctx: Context[AppState, Any]
) -> Annotated[CallToolResult, PullResult]:
    """Wait for a pull that pull_model left in progress (status 'pulling'), up to the server's
    answer deadline; if it is still going, returns where it stands again: call this once more."""
    job = app_state(ctx).pulls.get(pull_id.strip())
    if job is None:
        return tool_error(Exception(_unknown_pull(pull_id)))
    return await await_pull(ctx, job, owner=False)


async def cancel_pull(
    pull_id: PullIdArg, ctx: Context[AppState, Any]
) -> Annotated[CallToolResult, PullCancel]:
    """Stop a pull in progress. What was downloaded is kept: pulling the model again resumes it."""
    state = app_state(ctx)
    try:
        await require_admin(state, principal(ctx), "cancel pulls")
    except McpOllamaError as exc:
        return tool_error(exc)
    job = state.pulls.get(pull_id.strip())
    if job is None:
        return tool_error(Exception(_unknown_pull(pull_id)))
    cancelled = job.cancel("cancelled with cancel_pull")
    await job.join(CANCEL_GRACE_SECONDS)
    text = (
        f"Stopped pulling {job.model}; what was downloaded is kept, and pull_model resumes it."
        if cancelled
        else f"The pull of {job.model} had already ended ({_ended_as(job)}); nothing to cancel."
    )
    return structured_result(text, PullCancel(pull_id=job.id, model=job.model, cancelled=cancelled))


def _ended_as(job: Job) -> str:
    return "failed" if job.error is not None else job.state.value


def _unknown_pull(pull_id: str) -> str:
    shown = pull_id.strip()[:80]
    return (
        f"No pull with id {shown!r} here: it may have ended long ago or the server restarted. Call "
        "pull_model again; Ollama resumes from what it already downloaded."
    )


@functools.cache
def _pull_tool() -> Tool:
    return Tool.from_function(pull_model)


async def pull_task_job(state: AppState, arguments: Mapping[str, Any], who: str) -> Job | CallToolResult:
    """Start ``pull_model`` with ``arguments`` as a task's job, or the ``isError`` result the plain
    call would give. Every task is a pull of its own (it is not joined to a running one)."""
    tool = _pull_tool()
    problem = argument_problem(tool, dict(arguments))
    if problem is not None:
        return tool_error(Exception(problem))
    kwargs = tool.fn_metadata.validate_arguments(dict(arguments))
    try:
        await require_admin(state, who, "pull models")
        job, _ = await start_pull(
            state,
            kwargs["model"],
            server=kwargs.get("server"),
            insecure=bool(kwargs.get("insecure")),
            principal=who,
            join=False,
        )
    except McpOllamaError as exc:
        return tool_error(exc)
    return job


finished_pull = pull_answer
"""What ``pull_model`` answers for a pull job once it has ended (a task's result)."""


# ---------------------------------------------------------------------------- memory


async def running_models(ctx: Context[AppState, Any]) -> Annotated[CallToolResult, RunningList]:
    """Show the models Ollama holds in memory now (like `ollama ps`): each one's size, its share on
    the GPU, its context window and when it will be unloaded; per server when there are several.

    Free memory with unload_model.
    """
    state = app_state(ctx)
    servers = await admin.running(state.pool)
    down = {s.url: s.error for s in servers if s.error is not None}
    if len(down) == len(servers):
        return tool_error(Exception(next(iter(down.values()))))
    models: list[LoadedModel] = [loaded_model(s.url, m) for s in servers for m in s.models]
    several = state.pool.several
    lines = [loaded_text(model, several=several) for model in models] or ["No model is loaded now."]
    lines += [f"Ollama at {url} did not answer: {why}" for url, why in down.items()]
    return structured_result("\n".join(lines), RunningList(models=models, unreachable=down))


async def unload_model(
    model: ModelArg, ctx: Context[AppState, Any]
) -> Annotated[CallToolResult, UnloadResult]:
    """Unload a model from memory now (like `ollama stop`), to free RAM and GPU memory; the next
    chat with it loads it again. Only admins may unload on a shared server."""
    state = app_state(ctx)
    try:
        await require_admin(state, principal(ctx), "unload models")
        unloaded, servers = await admin.unload(state.pool, model.strip())
    except McpOllamaError as exc:
        return tool_error(exc)
    if unloaded:
        text = f"Unloaded {model.strip()} from {', '.join(unloaded)}; its memory is free."
    else:
        loaded = sorted({m.name for s in servers for m in s.models})
        now = f" Loaded now: {', '.join(loaded)}." if loaded else " Nothing is loaded."
        text = f"{model.strip()} is not loaded, so there is nothing to unload.{now}"
    return structured_result(text, UnloadResult(model=model.strip(), unloaded_from=unloaded))


# ---------------------------------------------------------------------------- registration


def register(server: MCPServer[AppState]) -> None:
    """The model-management tools, on ``server``."""
    # pull_model is the one tool that reaches beyond this machine: the model registry.
    sdk.add_tool(
        server,
        pull_model,
        title="Pull a model into Ollama",
        annotations=ToolAnnotations(
            title="Pull a model into Ollama",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )
    table: list[tuple[Callable[..., Any], str, dict[str, bool]]] = [
        (pull_result, "Get a pull still in progress", {"read_only": True, "idempotent": False}),
        (cancel_pull, "Stop a pull", {"read_only": False, "destructive": True, "idempotent": True}),
        (running_models, "Models loaded in memory", {"read_only": True, "idempotent": True}),
        (unload_model, "Unload a model from memory", {"read_only": False, "idempotent": True}),
        (embed, "Embed text", {"read_only": True, "idempotent": True}),
    ]
    for function, title, hints in table:
        sdk.add_tool(server, function, title=title, annotations=tool_annotations(title, **hints))
