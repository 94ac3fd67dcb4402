"""``mcp-ollama embed TEXT...``: embedding vectors from a terminal, one line per text.

Each vector is printed on its own line as numbers separated by spaces (easy to pipe), in the
order of the texts; ``--json`` prints one object instead (model, dimensions, embeddings). A
TEXT of ``-`` reads stdin. The same limits as the ``embed`` tool (``core.embeds``); no MCP.
"""

from __future__ import annotations

import json
import sys

import anyio

from ..backend import admin
from ..backend.admin_models import EmbedRequest, EmbedResponse
from ..backend.connect import open_pool
from ..config import Settings
from ..core.embeds import check_inputs
from ..core.pull_progress import check_model_name
from ..errors import McpOllamaError


def embed(
    settings: Settings,
    texts: list[str],
    *,
    model: str | None = None,
    dimensions: int | None = None,
    as_json: bool = False,
) -> int:
    """Print one vector per text (``-``: stdin); the exit code."""
    texts = [sys.stdin.read() if text == "-" else text for text in texts]
    try:
        check_inputs(texts)
        name = check_model_name(model or settings.embed_model)
        request = EmbedRequest(model=name, input=texts, dimensions=dimensions)
        answer = anyio.run(_embed, settings, request)
    except McpOllamaError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 1
    vectors = answer.embeddings
    if as_json:
        size = len(vectors[0]) if vectors else 0
        document = {"model": name, "dimensions": size, "embeddings": vectors}
        print(json.dumps(document, separators=(",", ":")))
    else:
        for vector in vectors:
            print(" ".join(repr(value) for value in vector))
    return 0


async def _embed(settings: Settings, request: EmbedRequest) -> EmbedResponse:
    async with open_pool(settings) as pool:
        return (await admin.embed(pool, request))[1]
