"""The ``embed`` tool: text in, vectors out (``/api/embed``), in ``structuredContent`` only.

A vector is hundreds of numbers: the text content says how many came back and of what size,
never the numbers themselves. Inputs are capped per call (``core.embeds``).
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from ..backend import admin
from ..backend.admin_models import EmbedRequest
from ..backend_errors import OllamaStatusError
from ..core.embeds import check_inputs
from ..core.pull_progress import check_model_name
from ..errors import McpOllamaError
from .errors import tool_error
from .model_results import EmbedResult
from .state import AppState, app_state, structured_result


async def embed(
    input: Annotated[
        str | list[str],
        Field(description="The text to embed, or a list of texts (one vector each, in order)."),
    ],
    ctx: Context[AppState, Any],
    model: Annotated[
        str | None,
        Field(
            description="An embedding model, e.g. 'nomic-embed-text', 'mxbai-embed-large', "
            "'all-minilm'. Omit for the server's default."
        ),
    ] = None,
    dimensions: Annotated[
        int | None,
        Field(
            ge=1, le=65536, description="Shorten every vector to this many numbers (models that allow it)."
        ),
    ] = None,
    truncate: Annotated[
        bool | None,
        Field(
            description="Cut a text longer than the model's context to fit (Ollama's default, true); "
            "false makes such a text an error instead."
        ),
    ] = None,
) -> Annotated[CallToolResult, EmbedResult]:
    """Turn text into embedding vectors with a local embedding model, for search and retrieval.

    The vectors are in structuredContent.embeddings (one per input, in order); the text part
    only says how many and of what size.
    """
    state = app_state(ctx)
    texts = [input] if isinstance(input, str) else list(input)
    try:
        check_inputs(texts)
        name = check_model_name(model or state.settings.embed_model)
        request = EmbedRequest(model=name, input=texts, truncate=truncate, dimensions=dimensions)
        url, answer = await admin.embed(state.pool, request)
        vectors = answer.embeddings
        if len(vectors) != len(texts) or not vectors or any(len(v) != len(vectors[0]) for v in vectors):
            detail = f"{len(vectors)} vectors (or vectors of unequal sizes) for {len(texts)} texts"
            raise OllamaStatusError(200, detail, url)
    except McpOllamaError as exc:
        return tool_error(exc)
    size = len(vectors[0])
    result = EmbedResult(
        model=name,
        dimensions=size,
        count=len(vectors),
        embeddings=vectors,
        prompt_tokens=answer.prompt_eval_count,
    )
    noun = "vector" if len(vectors) == 1 else "vectors"
    text = (
        f"{len(vectors)} {noun} of {size} dimensions from {name}, in structuredContent.embeddings "
        "(in the order of the inputs)."
    )
    return structured_result(text, result)
