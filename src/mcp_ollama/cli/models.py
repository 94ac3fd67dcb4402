"""``mcp-ollama models``: the models pulled in Ollama, one per line."""

from __future__ import annotations

import sys

import anyio

from ..backend.admin_models import ModelInfo
from ..backend.connect import open_client
from ..config import Settings
from ..core.text import human_bytes
from ..errors import McpOllamaError


def models(settings: Settings) -> int:
    """Print name, size, family, parameters and quantization of each pulled model; the exit code."""
    try:
        pulled = anyio.run(_pulled, settings)
    except McpOllamaError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 1
    if not pulled:
        print(f"mcp-ollama: no models pulled yet; try: ollama pull {settings.model}", file=sys.stderr)
        return 0
    rows = [_row(model) for model in sorted(pulled, key=lambda m: m.name)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


async def _pulled(settings: Settings) -> list[ModelInfo]:
    async with open_client(settings) as client:
        return await client.list_models()


def _row(model: ModelInfo) -> tuple[str, ...]:
    details = model.details
    return (
        model.name,
        human_bytes(model.size),
        details.family or "-",
        details.parameter_size or "-",
        details.quantization_level or "-",
    )
