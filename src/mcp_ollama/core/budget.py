"""Token estimates and history trimming: what of a session fits the model's context window."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import InputTooLarge

if TYPE_CHECKING:
    from ..backend.models import ChatMessage, GenerationOptions

_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    """A cheap, deliberately generous token estimate (about four characters a token)."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN) + _MESSAGE_OVERHEAD_TOKENS


def answer_reserve(context_tokens: int, options: GenerationOptions | None) -> int:
    """Tokens kept free for the answer: ``num_predict`` when set, else a quarter of the window (max 1024)."""
    if options is not None and options.num_predict is not None and options.num_predict > 0:
        return min(options.num_predict, context_tokens // 2)
    return min(1024, context_tokens // 4)


def fit_history(
    system: ChatMessage, history: list[ChatMessage], user: ChatMessage, budget: int
) -> list[ChatMessage]:
    """The longest suffix of ``history`` (whole turns, oldest dropped first) that fits ``budget`` tokens.

    Raises ``InputTooLarge`` when the system prompt and the new message alone do not fit.
    """
    fixed = estimate_tokens(system.content) + estimate_tokens(user.content)
    if fixed > budget:
        raise InputTooLarge(
            f"The message is too long for the model's context window: about {fixed} tokens with the "
            f"system prompt, but only {budget} are available for the prompt. Shorten the message, "
            "or pass a larger options.num_ctx (or set MCP_OLLAMA_NUM_CTX)."
        )
    costs = [estimate_tokens(m.content) for m in history]
    total = fixed + sum(costs)
    start = 0
    # Drop a whole turn at a time so the history keeps its user/assistant alternation.
    while total > budget and start < len(history):
        step = 2 if start + 1 < len(history) and history[start].role == "user" else 1
        total -= sum(costs[start : start + step])
        start += step
    return history[start:]
