"""Ollama's wire types for managing models as typed pydantic models, a docstring per field.

The pulled models (``/api/tags``, ``/api/show``), the server's version, a pull's progress lines,
what is loaded (``/api/ps``) and embeddings (``/api/embed``). Built on first use, as the chat types
in ``models``; importable without httpx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .models import _plausible


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
