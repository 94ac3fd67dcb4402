"""Ollama's chat request and streamed answer as typed pydantic models, a docstring per field.

The wire types for managing models (tags, show, version, pull, ps, embed) are in ``admin_models``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "user", "assistant", "tool"]
ThinkLevel = Literal["low", "medium", "high"]
Think = bool | ThinkLevel
"""Ollama's ``think``: on or off, or how hard to think for models that take a level (gpt-oss)."""

_MAX_PLAUSIBLE_NS = 30 * 24 * 3600 * 10**9  # a month
_MAX_PLAUSIBLE_TOKENS = 10**9


# --- request and response models ------------------------------------------------------------


class ChatMessage(BaseModel):
    """One message of a conversation, as ``/api/chat`` takes it and streams it back."""

    # Built on first use, as the wire types below: not one of them is needed before a stdio
    # server answers ``initialize``, and building them at import is start-up time (issue 21).
    model_config = ConfigDict(defer_build=True)

    role: Role = Field(
        description="Who wrote the message: 'system' (instructions), 'user', 'assistant' "
        "(the model) or 'tool' (a tool's result)."
    )
    content: str = Field(description="The text of the message.")
    thinking: str | None = Field(
        default=None,
        description="A thinking model's reasoning before its answer (streamed apart from content). "
        "Never sent back to the model as history.",
    )
    images: list[str] | None = Field(
        default=None, description="Images for a vision model, as base64 (no data: prefix)."
    )


class GenerationOptions(BaseModel):
    """Sampling and length settings for one generation; every field is optional."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        allow_inf_nan=False,
        description="Sampling temperature from 0 to 2. Low values (0-0.3) give focused, repeatable "
        "answers; high values (1 and above) give more varied, creative ones. Leave unset for the "
        "model's default (usually 0.8).",
    )
    top_p: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Nucleus sampling, 0 to 1: pick only among the most likely tokens whose "
        "probabilities add up to this value. Lower is more conservative. Default 0.9.",
    )
    top_k: int | None = Field(
        default=None,
        ge=1,
        description="Pick only among the K most likely tokens (at least 1). Lower is more "
        "conservative. Default 40.",
    )
    seed: int | None = Field(
        default=None,
        description="Random seed. The same seed, messages and options give the same answer; "
        "leave unset for a fresh answer each time.",
    )
    num_predict: int | None = Field(
        default=None,
        ge=-2,
        description="Maximum number of tokens to generate. -1 means no limit (the default), "
        "-2 means until the context window is full. The answer is cut off when it is reached.",
    )
    num_ctx: int | None = Field(
        default=None,
        ge=256,
        le=1_048_576,
        description="Context window in tokens (conversation plus answer), 256 to 1048576. Larger "
        "windows remember more of a long conversation but use more memory; do not exceed the "
        "model's own maximum context length. Leave unset for the server's default.",
    )
    stop: list[str] | None = Field(
        default=None,
        max_length=16,
        description="Up to 16 stop sequences: generation ends as soon as the answer would contain "
        "one of these strings (the string itself is not included).",
    )
    repeat_penalty: float | None = Field(
        default=None,
        ge=0.0,
        allow_inf_nan=False,
        description="Penalty for repeating recent tokens: above 1 discourages repetition, 1 turns "
        "it off. Default 1.1.",
    )
    min_p: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Minimum probability, 0 to 1, relative to the most likely token: tokens less "
        "likely than min_p times the top token's probability are never picked. 0 (the default) "
        "turns it off.",
    )

    def to_ollama(self) -> dict[str, Any]:
        """The ``options`` object for Ollama, without the fields left unset."""
        return self.model_dump(exclude_none=True)


class ChatRequest(BaseModel):
    """The body of ``POST /api/chat``."""

    model_config = ConfigDict(defer_build=True)

    model: str = Field(description="Name of a pulled model, such as 'llama3:8b'.")
    messages: list[ChatMessage] = Field(description="The conversation so far, oldest first.")
    stream: bool = Field(
        default=True, description="Stream the answer token by token (NDJSON) instead of in one object."
    )
    options: GenerationOptions | None = Field(
        default=None, description="Sampling and length settings; unset means the model's defaults."
    )
    keep_alive: str | int | None = Field(
        default=None,
        description="How long Ollama keeps the model loaded afterwards: a duration such as '5m', "
        "seconds as a number, 0 to unload at once, negative to keep it loaded.",
    )
    think: Think | None = Field(
        default=None,
        description="Let a thinking model reason first (streamed as message.thinking); Ollama answers "
        "400 to a model that cannot think.",
    )
    format: Literal["json"] | dict[str, Any] | None = Field(
        default=None, description="Constrain the answer to JSON: 'json', or a JSON Schema object."
    )

    def to_ollama(self) -> dict[str, Any]:
        """The JSON body for Ollama, without the fields left unset."""
        return self.model_dump(exclude_none=True)


class ChatChunk(BaseModel):
    """One NDJSON line of a streamed chat answer (or the whole answer when not streaming)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    model: str = Field(description="The model that produced the chunk.")
    created_at: str = Field(description="When Ollama produced the chunk (RFC 3339 text).")
    message: ChatMessage | None = Field(
        default=None, description="The piece of the answer this chunk carries (usually one token)."
    )
    done: bool = Field(description="True on the last chunk, which carries the counters.")
    done_reason: str | None = Field(
        default=None,
        description="Why generation stopped: 'stop' (finished), 'length' (num_predict reached), "
        "'load' or 'unload'.",
    )
    # Counters are data, not trust: an implausible one (negative, fractional, absurdly large) is
    # kept as None, never stored as given. Ollama omits a counter that is zero.
    total_duration: int | None = Field(default=0, description="Whole request, in nanoseconds.")
    load_duration: int | None = Field(default=0, description="Loading the model, in nanoseconds.")
    prompt_eval_count: int | None = Field(default=0, description="Prompt tokens evaluated.")
    prompt_eval_duration: int | None = Field(default=0, description="Evaluating the prompt, in nanoseconds.")
    eval_count: int | None = Field(default=0, description="Tokens generated.")
    eval_duration: int | None = Field(default=0, description="Generating the answer, in nanoseconds.")

    @field_validator("total_duration", "load_duration", "prompt_eval_duration", mode="before")
    @classmethod
    def _plausible_duration(cls, value: object) -> int | None:
        return _plausible(value, _MAX_PLAUSIBLE_NS)

    @field_validator("prompt_eval_count", "eval_count", mode="before")
    @classmethod
    def _plausible_count(cls, value: object) -> int | None:
        return _plausible(value, _MAX_PLAUSIBLE_TOKENS)


def _plausible(value: object, limit: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if 0 <= value <= limit else None
