"""What the model-management tools return: pydantic models (each tool's ``outputSchema``) and the
short texts that go with them. Plain data, nothing about MCP."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ..backend.admin_models import RunningModel
from ..core.job import JobState
from ..core.pulls import PullJob
from ..core.text import human_bytes

PullStatus = Literal["complete", "pulling", "failed", "cancelled", "interrupted"]
_VECTORS = {"type": "array", "items": {"type": "array"}}


class ServerPullState(BaseModel):
    """One server's part of a pull."""

    model_config = ConfigDict(defer_build=True)

    server: str = Field(description="The Ollama server's URL.")
    status: str = Field(description="Where its pull stands: 'pulling 4.7 GB: 38 %', 'verifying', 'done'…")
    completed_bytes: int = Field(description="Bytes downloaded so far.")
    total_bytes: int | None = Field(description="The model's size in bytes, once Ollama has said.")
    error: str | None = Field(default=None, description="Why it failed, when it did.")


class PullResult(BaseModel):
    """A model pulled onto the Ollama servers, or still being pulled."""

    model_config = ConfigDict(defer_build=True)

    pull_id: str = Field(
        description="Pass to pull_result to wait for the rest, or to cancel_pull to stop it."
    )
    model: str = Field(description="The model pulled.")
    status: PullStatus = Field(
        description="'complete'; 'pulling' (not done yet: call pull_result); 'failed'; 'cancelled'; "
        "'interrupted' (the server stopped)."
    )
    completed_bytes: int = Field(description="Bytes downloaded so far, every server together.")
    total_bytes: int | None = Field(description="Bytes in all, once every server has said.")
    servers: list[ServerPullState] = Field(description="Each server's part.")


class PullCancel(BaseModel):
    """The outcome of cancel_pull."""

    model_config = ConfigDict(defer_build=True)

    pull_id: str
    model: str
    cancelled: bool = Field(description="False when the pull had already ended.")


class LoadedModel(BaseModel):
    """One model in an Ollama server's memory."""

    model_config = ConfigDict(defer_build=True)

    name: str = Field(description="The model's name.")
    server: str = Field(description="The Ollama server holding it.")
    size_bytes: int = Field(description="Memory it takes, RAM and VRAM together.")
    vram_bytes: int = Field(description="The part of it in GPU memory.")
    gpu_share: float = Field(description="The share of it on the GPU, 0 to 1.")
    context_length: int | None = Field(description="The context window it was loaded with, in tokens.")
    expires_at: str | None = Field(description="When Ollama unloads it if unused (RFC 3339).")


class RunningList(BaseModel):
    """What every Ollama server holds in memory now."""

    model_config = ConfigDict(defer_build=True)

    models: list[LoadedModel]
    unreachable: dict[str, str] = Field(
        default_factory=dict, description="Servers that could not say, with the reason."
    )


class UnloadResult(BaseModel):
    """The outcome of unload_model."""

    model_config = ConfigDict(defer_build=True)

    model: str
    unloaded_from: list[str] = Field(
        description="The servers it was unloaded from (empty: it was not loaded)."
    )


class EmbedResult(BaseModel):
    """Embedding vectors, one per input, in input order."""

    model_config = ConfigDict(defer_build=True)

    model: str = Field(description="The embedding model used.")
    dimensions: int = Field(description="Numbers in each vector.")
    count: int = Field(description="Vectors returned: one per input.")
    # A shallow schema: a client that validates structuredContent (the Python SDK's, with jsonschema)
    # would otherwise check every number one by one: 14 s for 256 vectors of 768 numbers.
    embeddings: Annotated[list[list[float]], WithJsonSchema(_VECTORS)] = Field(
        description="The vectors (lists of numbers), in the order of the inputs."
    )
    prompt_tokens: int | None = Field(default=None, description="Tokens Ollama read, all inputs together.")


# ---------------------------------------------------------------------------- pulls


def pull_state(job: PullJob) -> PullResult:
    """``job`` as the pull tools return it."""
    status: PullStatus
    if not job.done:
        status = "pulling"
    elif job.error is not None:
        status = "failed"
    elif job.state is JobState.CANCELLED:
        status = "cancelled"
    elif job.state is JobState.INTERRUPTED:
        status = "interrupted"
    else:
        status = "complete"
    servers = [
        ServerPullState(
            server=server.url,
            status=server.describe(),
            completed_bytes=server.downloaded,
            total_bytes=server.size,
            error=str(server.error) if server.error is not None else None,
        )
        for server in job.servers.values()
    ]
    totals = [s.total_bytes for s in servers]
    return PullResult(
        pull_id=job.id,
        model=job.model,
        status=status,
        completed_bytes=sum(s.completed_bytes for s in servers),
        total_bytes=None if any(t is None for t in totals) else sum(t or 0 for t in totals),
        servers=servers,
    )


def pull_text(result: PullResult, job: PullJob) -> str:
    """The sentence for a pull that did not fail: done, still going, or stopped."""
    where = ", ".join(s.server for s in result.servers)
    sizes = [s.total_bytes for s in result.servers if s.total_bytes]
    size = f" ({human_bytes(max(sizes))})" if sizes else ""
    if result.status == "complete":
        return f"Pulled {job.model}{size} onto {where}; it is ready to use as `model`."
    if result.status == "pulling":
        return (
            f"Still pulling {job.describe()}. Call `pull_result` with pull_id {job.id!r} to wait for the "
            "rest; `cancel_pull` stops it."
        )
    return (
        f"The pull of {job.model} was {result.status} ({job.stop_reason or 'stopped'}) at "
        f"{human_bytes(result.completed_bytes)}; what was downloaded is kept, so pull_model again resumes it."
    )


def failed_text(job: PullJob) -> str:
    """The error text of a failed pull: its error, and with several servers, how each one fared."""
    text = str(job.error)
    if len(job.servers) > 1:
        fared = "; ".join(f"{url}: {server.describe()}" for url, server in job.servers.items())
        text += f" (servers: {fared})"
    return text


# ---------------------------------------------------------------------------- loaded models

_FRACTION = re.compile(r"(\.\d{6})\d+")


def loaded_model(server: str, model: RunningModel) -> LoadedModel:
    share = model.size_vram / model.size if model.size > 0 else 0.0
    return LoadedModel(
        name=model.name,
        server=server,
        size_bytes=model.size,
        vram_bytes=model.size_vram,
        gpu_share=round(min(max(share, 0.0), 1.0), 3),
        context_length=model.context_length,
        expires_at=model.expires_at,
    )


def loaded_text(model: LoadedModel, *, several: bool, now: datetime | None = None) -> str:
    """One line, as ``ollama ps`` would say it: ``- llama3:8b: 5.6 GB, 100 % GPU, context 8,192, unloads
    in 4 min``."""
    gpu = round(model.gpu_share * 100)
    where = "100 % GPU" if gpu >= 100 else "100 % CPU" if gpu <= 0 else f"{100 - gpu} %/{gpu} % CPU/GPU"
    parts = [human_bytes(model.size_bytes), where]
    if model.context_length:
        parts.append(f"context {model.context_length:,}")
    parts.append(_expiry(model.expires_at, now or datetime.now(UTC)))
    line = f"- {model.name}: {', '.join(parts)}"
    return line + (f" (on {model.server})" if several else "")


def _expiry(expires_at: str | None, now: datetime) -> str:
    if not expires_at:
        return "expiry unknown"
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", expires_at.replace("Z", "+00:00")))
    except ValueError:
        return f"unloads at {expires_at}"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - now).total_seconds()
    if seconds > 365 * 86400:
        return "kept loaded"
    if seconds <= 0:
        return "unloading"
    if seconds < 120:
        return f"unloads in {int(seconds)} s"
    if seconds < 7200:
        return f"unloads in {int(seconds // 60)} min"
    return f"unloads in {seconds / 3600:.1f} h"
