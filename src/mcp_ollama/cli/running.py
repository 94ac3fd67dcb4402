"""``mcp-ollama ps`` and ``mcp-ollama unload MODEL``: what Ollama holds in memory, and freeing it.

``ps`` prints a table like ``ollama ps`` (with a SERVER column when there are several servers);
``unload`` sends ``keep_alive: 0`` to every server that holds the model. Nothing here imports the
MCP SDK.
"""

from __future__ import annotations

import sys

import anyio

from ..backend import admin
from ..backend.connect import open_pool
from ..config import Settings
from ..core.text import human_bytes
from ..errors import McpOllamaError


def ps(settings: Settings) -> int:
    """Print the loaded models, one per line; the exit code (1 when no server answered)."""
    try:
        servers = anyio.run(_running, settings)
    except McpOllamaError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 1
    down = [s for s in servers if s.error is not None]
    for server in down:
        print(f"mcp-ollama: {server.error}", file=sys.stderr)
    if len(down) == len(servers):
        return 1
    several = len(servers) > 1
    header = ["NAME", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"] + (["SERVER"] if several else [])
    rows = [header]
    for server in servers:
        for model in server.models:
            share = model.size_vram / model.size if model.size else 0.0
            gpu = round(share * 100)
            where = "100% GPU" if gpu >= 100 else "100% CPU" if gpu <= 0 else f"{100 - gpu}%/{gpu}% CPU/GPU"
            row = [
                model.name,
                human_bytes(model.size),
                where,
                str(model.context_length or "-"),
                model.expires_at or "-",
            ]
            rows.append(row + ([server.url] if several else []))
    if len(rows) == 1:
        print("mcp-ollama: no model is loaded", file=sys.stderr)
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def unload(settings: Settings, model: str) -> int:
    """Unload ``model`` from every server holding it; the exit code."""
    try:
        unloaded, _ = anyio.run(_unload, settings, model.strip())
    except McpOllamaError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 1
    if unloaded:
        print(f"unloaded {model.strip()} from {', '.join(unloaded)}")
    else:
        print(f"mcp-ollama: {model.strip()} is not loaded; nothing to unload", file=sys.stderr)
    return 0


async def _running(settings: Settings) -> list[admin.ServerModels]:
    async with open_pool(settings) as pool:
        return await admin.running(pool)


async def _unload(settings: Settings, model: str) -> tuple[list[str], list[admin.ServerModels]]:
    async with open_pool(settings) as pool:
        return await admin.unload(pool, model)
