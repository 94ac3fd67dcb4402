"""Ollama's requests and answers as typed pydantic models, a docstring per field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

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


class ModelDetails(BaseModel):
    """The ``details`` object Ollama attaches to a model."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    format: str | None = Field(default=None, description="File format of the weights, e.g. 'gguf'.")
    family: str | None = Field(default=None, description="Model family, e.g. 'llama'.")
    families: list[str] | None = Field(default=None, description="All families the model belongs to.")
    parameter_size: str | None = Field(default=None, description="Parameter count as text, e.g. '8.0B'.")
    quantization_level: str | None = Field(default=None, description="Quantization, e.g. 'Q4_0'.")


class ModelInfo(BaseModel):
    """One pulled model, as listed by ``GET /api/tags``."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    name: str = Field(description="The name to use in requests, e.g. 'llama3:8b'.")
    model: str = Field(default="", description="The model reference (usually the same as name).")
    modified_at: str | None = Field(default=None, description="When the model was last pulled or changed.")
    size: int = Field(default=0, description="Size on disk in bytes.")
    digest: str = Field(default="", description="SHA-256 digest of the model manifest.")
    details: ModelDetails = Field(default_factory=ModelDetails, description="Family, size, quantization.")


class ModelShow(BaseModel):
    """What we use from ``POST /api/show``: the model's limits and what it can do."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    context_length: int | None = Field(
        default=None, description="The longest context the model was trained for, in tokens."
    )
    family: str | None = Field(default=None, description="Model family, e.g. 'llama'.")
    parameter_size: str | None = Field(default=None, description="Parameter count as text, e.g. '8.0B'.")
    quantization_level: str | None = Field(default=None, description="Quantization, e.g. 'Q4_0'.")
    capabilities: list[str] = Field(
        default_factory=list, description="What the model supports, e.g. 'completion', 'tools'."
    )

    @classmethod
    def from_ollama(cls, payload: Mapping[str, Any]) -> Self:
        """Pick our fields out of an ``/api/show`` answer; raises ``ValidationError`` on nonsense."""
        details = payload.get("details")
        details = details if isinstance(details, Mapping) else {}
        return cls.model_validate(
            {
                "context_length": _context_length(payload.get("model_info")),
                "family": details.get("family"),
                "parameter_size": details.get("parameter_size"),
                "quantization_level": details.get("quantization_level"),
                "capabilities": payload.get("capabilities") or [],
            }
        )


def _context_length(model_info: Any) -> int | None:
    """``model_info["<architecture>.context_length"]``, or any ``*.context_length`` key."""
    if not isinstance(model_info, Mapping):
        return None
    architecture = model_info.get("general.architecture")
    keys = [f"{architecture}.context_length"] if isinstance(architecture, str) else []
    keys += [key for key in model_info if isinstance(key, str) and key.endswith(".context_length")]
    for key in keys:
        value = model_info.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class _TagsResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)

    models: list[ModelInfo]


class _VersionResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)

    version: str


# --- model management: pull, what is loaded, embeddings ----------------------------------------

_MAX_PLAUSIBLE_BYTES = 10**15  # a petabyte


class PullProgress(BaseModel):
    """One NDJSON line of ``POST /api/pull``: a step, and while a layer downloads, its bytes."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    status: str = Field(
        description="What Ollama is doing: 'pulling manifest', 'pulling <digest>', "
        "'verifying sha256 digest', 'writing manifest', 'success'."
    )
    digest: str | None = Field(default=None, description="The layer being downloaded ('sha256:...').")
    total: int | None = Field(default=None, description="The layer's size in bytes.")
    completed: int | None = Field(default=None, description="Bytes of the layer downloaded so far.")

    @field_validator("total", "completed", mode="before")
    @classmethod
    def _plausible_bytes(cls, value: object) -> int | None:
        return None if value is None else _plausible(value, _MAX_PLAUSIBLE_BYTES)


class RunningModel(BaseModel):
    """One model held in memory, as ``GET /api/ps`` lists it."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    name: str = Field(description="The model's name, e.g. 'llama3:8b'.")
    size: int = Field(default=0, description="Memory it takes, in bytes (RAM and VRAM together).")
    size_vram: int = Field(default=0, description="The part of it in GPU memory, in bytes.")
    context_length: int | None = Field(default=None, description="The context window it was loaded with.")
    expires_at: str | None = Field(
        default=None, description="When Ollama unloads it unless it is used again (RFC 3339 text)."
    )
    details: ModelDetails = Field(default_factory=ModelDetails, description="Family, size, quantization.")


class EmbedRequest(BaseModel):
    """The body of ``POST /api/embed``."""

    model_config = ConfigDict(defer_build=True)

    model: str = Field(description="Name of a pulled embedding model, such as 'nomic-embed-text'.")
    input: list[str] = Field(description="The texts to embed; one vector comes back for each.")
    truncate: bool | None = Field(
        default=None, description="Cut inputs longer than the context to fit (Ollama's default: true)."
    )
    dimensions: int | None = Field(default=None, description="Shorten every vector to this many numbers.")
    keep_alive: str | int | None = Field(default=None, description="How long the model stays loaded.")

    def to_ollama(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class EmbedResponse(BaseModel):
    """Ollama's answer to ``POST /api/embed``."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    model: str = Field(default="", description="The model that embedded the inputs.")
    embeddings: list[list[float]] = Field(description="One vector per input, in order.")
    prompt_eval_count: int | None = Field(default=None, description="Tokens read, all inputs together.")


class _PsResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)

    models: list[RunningModel]
