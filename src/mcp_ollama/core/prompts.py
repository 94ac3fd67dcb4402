"""The system prompt: its default text, and how a host's prompt arguments shape it.

``chat`` sends ``render_system_prompt(base)``; the MCP prompt ``system_prompt`` returns
``render_system_prompt(base, language=..., style=...)``. One function, so what a host reads
is exactly what the model receives.
"""

from __future__ import annotations

from typing import Literal, get_args

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant running locally. Follow the user's instructions precisely. "
    "Answer in the same language as the user's question."
)
"""The original demo's behaviour: follow instructions precisely, answer in the question's language."""

Style = Literal["concise", "detailed", "friendly", "formal", "socratic"]
STYLES: tuple[str, ...] = get_args(Style)

_STYLE_TEXT: dict[str, str] = {
    "concise": "Keep answers short: the answer first, then only what is needed to act on it.",
    "detailed": "Give thorough answers: explain your reasoning and mention important caveats.",
    "friendly": "Use a warm, encouraging, conversational tone.",
    "formal": "Use a formal, precise, professional tone.",
    "socratic": "Guide the user with questions that lead them to the answer rather than stating it outright.",
}

COMMON_LANGUAGES: tuple[str, ...] = (
    "Arabic",
    "Chinese",
    "Dutch",
    "English",
    "French",
    "German",
    "Hindi",
    "Italian",
    "Japanese",
    "Korean",
    "Polish",
    "Portuguese",
    "Russian",
    "Spanish",
    "Swedish",
    "Turkish",
    "Ukrainian",
)
"""Offered as completions for the ``language`` argument; any language name is accepted."""


def render_system_prompt(
    base: str | None = None, *, language: str | None = None, style: str | None = None
) -> str:
    """The system prompt text: ``base`` (or the default), then the optional language and style lines.

    Raises ``ValueError`` for a style that is not one of ``STYLES``.
    """
    parts = [(base or DEFAULT_SYSTEM_PROMPT).strip()]
    if language and language.strip():
        parts.append(f"Always answer in {language.strip()}, whatever language the question is in.")
    if style:
        try:
            parts.append(_STYLE_TEXT[style])
        except KeyError:
            raise ValueError(f"Unknown style {style!r}: choose one of {', '.join(STYLES)}") from None
    return "\n\n".join(parts)
