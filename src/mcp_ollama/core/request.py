"""What a planned turn asks Ollama for: refused before any request when the model cannot do it
(thinking, images), its history as chat messages, and the options with the context window set."""

from __future__ import annotations

from ..backend.admin_models import ModelShow
from ..backend.models import ChatMessage, GenerationOptions, Think
from ..errors import ModelCannot
from ..store import StoredMessage
from .ports import ModelDetails
from .turns import TurnPlan


async def check_capabilities(plan: TurnPlan, shown: ModelShow | None, catalog: ModelDetails) -> Think | None:
    """Refuse what the model cannot do; the ``think`` value to send (None: send none)."""
    capabilities = shown.capabilities if shown is not None else []
    if not capabilities:  # Ollama did not say: let it decide
        return plan.think
    if plan.think and "thinking" not in capabilities:
        able = await catalog.able("thinking")
        raise ModelCannot(plan.model, "think", "thinking", able, "qwen3")
    if plan.images and "vision" not in capabilities:
        able = await catalog.able("vision")
        raise ModelCannot(plan.model, "see images", "vision", able, "gemma3")
    if plan.think is False and "thinking" not in capabilities:
        return None  # nothing to turn off; Ollama refuses 'think' for such a model
    return plan.think


def to_chat(message: StoredMessage) -> ChatMessage:
    """A stored message as history for Ollama (its thinking and images stay behind)."""
    return ChatMessage(role="assistant" if message.role == "assistant" else "user", content=message.content)


def with_ctx(options: GenerationOptions | None, num_ctx: int) -> GenerationOptions:
    """``options`` with ``num_ctx`` set (the call's own, if it chose one, is ``num_ctx`` already)."""
    if options is None:
        return GenerationOptions(num_ctx=num_ctx)
    return options.model_copy(update={"num_ctx": num_ctx})
