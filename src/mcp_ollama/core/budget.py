"""Token estimates and history trimming: what of a session fits the model's context window.

The estimate is deliberately cheap (characters, not a tokenizer) and is calibrated per model
with the prompt sizes Ollama itself reports (``prompt_eval_count``): a model whose tokenizer
packs fewer characters into a token gets its history trimmed sooner, and one that packs more
keeps more of it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import InputTooLarge

if TYPE_CHECKING:
    from ..backend.models import ChatMessage, GenerationOptions

_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD_TOKENS = 4
IMAGE_TOKENS = 768
"""What one image is budgeted at (vision models take 256 to 576 tokens an image, some more)."""
_SCALE_LIMITS = (0.25, 4.0)
_TRUNCATION_MARGIN = 0.95
"""A counted prompt this close to the window may have been cut by Ollama: no use for calibration."""


def estimate_tokens(text: str) -> int:
    """A cheap, deliberately generous token estimate (about four characters a token)."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN) + _MESSAGE_OVERHEAD_TOKENS


def answer_reserve(context_tokens: int, options: GenerationOptions | None) -> int:
    """Tokens kept free for the answer: ``num_predict`` when set, else a quarter of the window (max 1024)."""
    if options is not None and options.num_predict is not None and options.num_predict > 0:
        return min(options.num_predict, context_tokens // 2)
    return min(1024, context_tokens // 4)


class Calibration:
    """Per model: how Ollama's token counts compare with ``estimate_tokens``.

    ``scale`` multiplies the estimate. It starts at 1, follows a larger measured ratio at once
    (trimming late lets Ollama cut the prompt silently) and a smaller one only gradually (an
    older Ollama may count fewer tokens when it reuses its prompt cache).
    """

    def __init__(self) -> None:
        self._scale: dict[str, float] = {}

    def scale(self, model: str) -> float:
        return self._scale.get(model, 1.0)

    def learn(self, model: str, estimated: int, counted: int | None, window: int) -> None:
        """Take in one turn: ``estimated`` tokens (unscaled) that Ollama ``counted``."""
        if not counted or estimated <= 0 or counted >= window * _TRUNCATION_MARGIN:
            return
        low, high = _SCALE_LIMITS
        sample = min(max(counted / estimated, low), high)
        if model not in self._scale or sample > self._scale[model]:
            self._scale[model] = sample
        else:
            self._scale[model] = 0.75 * self._scale[model] + 0.25 * sample
        if len(self._scale) > 1024:  # a model per name: bounded all the same
            self._scale.pop(next(iter(self._scale)))


def fit_history(
    system: ChatMessage,
    history: list[ChatMessage],
    user: ChatMessage,
    budget: int,
    *,
    scale: float = 1.0,
    extra: int = 0,
    window: str = "the model's context window",
) -> list[ChatMessage]:
    """The longest suffix of ``history`` (whole turns, oldest dropped first) that fits ``budget`` tokens.

    Estimates are multiplied by ``scale`` (``Calibration``); ``extra`` tokens (images) go with
    the new message. Raises ``InputTooLarge`` when the system prompt and the new message alone
    do not fit; ``window`` names the window in that message.
    """

    def cost(text: str) -> int:
        return math.ceil(estimate_tokens(text) * scale)

    fixed = cost(system.content) + cost(user.content) + extra
    if fixed > budget:
        raise InputTooLarge(
            f"The message is too long for {window}: about {fixed:,} tokens with the system prompt, "
            f"but only {budget:,} are available for the prompt (the rest is kept for the answer). "
            "Shorten the message, or pass a larger options.num_ctx (up to the model's own maximum; the "
            "server's default window is set by MCP_OLLAMA_MAX_CONTEXT or MCP_OLLAMA_NUM_CTX)."
        )
    costs = [cost(m.content) for m in history]
    total = fixed + sum(costs)
    start = 0
    # Drop a whole turn at a time so the history keeps its user/assistant alternation.
    while total > budget and start < len(history):
        step = 2 if start + 1 < len(history) and history[start].role == "user" else 1
        total -= sum(costs[start : start + step])
        start += step
    return history[start:]
