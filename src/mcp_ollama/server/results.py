"""What the tools return: pydantic models that become each tool's ``outputSchema``, and their text forms.

Plain data, nothing about MCP: ``server.py`` puts these into ``structuredContent``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema

from ..backend.admin_models import ModelInfo, ModelShow
from ..core.text import human_bytes
from ..core.turns import TurnOutcome


class Usage(BaseModel):
    """Token counts as Ollama reported them; null where Ollama sent none or an implausible one."""

    model_config = ConfigDict(defer_build=True)

    prompt_tokens: int | None = Field(
        description="Tokens in the prompt Ollama evaluated (0 when it reused its cache)."
    )
    completion_tokens: int | None = Field(description="Tokens in the answer.")


class Timings(BaseModel):
    """Ollama's timings; null where it sent none or an implausible one."""

    model_config = ConfigDict(defer_build=True)

    total_ms: float | None = Field(description="Ollama's total time for the request, in milliseconds.")
    load_ms: float | None = Field(
        description="Time spent loading the model, in milliseconds (0 when already loaded)."
    )
    prompt_eval_ms: float | None = Field(description="Time spent reading the prompt, in milliseconds.")
    eval_ms: float | None = Field(description="Time spent generating the answer, in milliseconds.")


ChatStatus = Literal["complete", "generating", "stored", "cancelled", "interrupted"]


class ChatResult(BaseModel):
    """The answer to one chat message, and where it was stored."""

    model_config = ConfigDict(defer_build=True)

    session_id: str = Field(description="Pass this as session_id to continue the conversation.")
    model: str = Field(description="The model that answered.")
    answer: str = Field(
        description="The model's answer (while status is 'generating': the part written so far)."
    )
    done_reason: str | None = Field(
        default=None,
        description="Why generation stopped: 'stop' (finished) or 'length' (hit num_predict/the context).",
    )
    new_session: bool = Field(
        default=False,
        description="True when this call started the session (no session had this session_id before).",
    )
    history_messages: int = Field(
        default=0, description="Earlier messages of the session sent along with this one."
    )
    usage: Usage | None = Field(default=None, description="Token counts, once the answer is complete.")
    timings: Timings | None = Field(
        default=None, description="Ollama's timings, once the answer is complete."
    )
    status: ChatStatus = Field(
        default="complete",
        description="'complete': the whole answer, stored in the session. 'generating': the local model is "
        "still writing; call chat_result with this session_id for the rest. 'stored': the session's last "
        "stored answer (nothing was being written). 'cancelled' / 'interrupted': the answer was stopped "
        "and nothing of it was stored.",
    )
    tokens_so_far: int | None = Field(
        default=0,
        description="Pieces of the answer received so far; null when not known (an answer another "
        "server process was writing when it stopped).",
    )
    saved: bool = Field(
        default=True,
        description="Whether the answer is stored in the session. False while it is being written "
        "('generating'), when it was stopped, or when it could not be stored (the text says why; "
        "a complete answer is returned all the same).",
    )
    thinking: str | None = Field(
        default=None,
        description="The model's thinking before its answer: only when include_thinking was true "
        "(it is stored in the session either way).",
    )
    # Null first: it is what nearly every chat (no format) returns, and a client's validator tries
    # the branches in order, building an error for each that fails (55 us a chat with null last).
    data: Annotated[
        JsonValue,
        WithJsonSchema(
            {"anyOf": [{"type": t} for t in ("null", "object", "array", "string", "number", "boolean")]}
        ),
    ] = Field(
        default=None,
        description="With format: the answer parsed as JSON (matching the schema, when one was given).",
    )


class ModelSummary(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str = Field(description="Model name to pass as `model` to chat, e.g. 'llama3:8b'.")
    capabilities: list[str] | None = Field(
        default=None,
        description="What the model can do, as Ollama says: 'completion', 'thinking' (think), "
        "'vision' (images), 'tools'. Null when Ollama did not say.",
    )
    context_length: int | None = Field(
        default=None, description="The longest context the model was trained for, in tokens."
    )
    num_ctx: int | None = Field(
        default=None,
        description="The context window chat asks Ollama for with this model (its own maximum, capped "
        "by the server's --max-context), in tokens.",
    )
    hosts: list[str] | None = Field(
        default=None,
        description="With several Ollama servers: the ones that have this model (chats go to one of them).",
    )
    size_bytes: int | None = Field(description="Size on disk in bytes.")
    family: str | None = Field(description="Model family, e.g. 'llama'.")
    parameter_size: str | None = Field(description="Parameter count as Ollama reports it, e.g. '8.0B'.")
    quantization: str | None = Field(description="Quantization level, e.g. 'Q4_0'.")
    modified_at: str | None = Field(description="When the model was last pulled or changed.")


class ModelList(BaseModel):
    """The models pulled into the local Ollama."""

    model_config = ConfigDict(defer_build=True)

    models: list[ModelSummary]
    default_model: str = Field(description="The model chat uses when none is named.")


class ChatCancel(BaseModel):
    """What cancel_chat did."""

    model_config = ConfigDict(defer_build=True)

    session_id: str
    cancelled: bool = Field(description="True when a generation was running (or queued) and is now stopped.")
    discarded_tokens: int = Field(description="Pieces of the unfinished answer that were thrown away.")


class SessionChange(BaseModel):
    """What a session-changing tool did."""

    model_config = ConfigDict(defer_build=True)

    session_id: str
    deleted: bool = Field(description="True when the whole session is gone.")
    cleared_messages: int = Field(description="How many stored messages were removed.")


def complete_result(outcome: TurnOutcome, *, include_thinking: bool = False) -> ChatResult:
    return ChatResult(
        session_id=outcome.session_id,
        model=outcome.model,
        answer=outcome.answer,
        done_reason=outcome.done_reason,
        new_session=outcome.new_session,
        history_messages=outcome.history_messages,
        usage=Usage(prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens),
        timings=Timings(
            total_ms=outcome.total_ms,
            load_ms=outcome.load_ms,
            prompt_eval_ms=outcome.prompt_eval_ms,
            eval_ms=outcome.eval_ms,
        ),
        tokens_so_far=outcome.completion_tokens or 0,
        saved=outcome.store_error is None,
        thinking=outcome.thinking if include_thinking else None,
        data=outcome.data,
    )


def complete_text(outcome: TurnOutcome, *, include_thinking: bool = False) -> str:
    """The text block of a complete answer: the answer, and a note when it was capped or not stored.

    With ``include_thinking``, the thinking comes first, marked as such.
    """
    notes = []
    if outcome.done_reason == "max_answer_chars":
        notes.append(
            "[The answer was cut off at the server's length limit (--max-answer-chars / "
            "MCP_OLLAMA_MAX_ANSWER_CHARS); the model was stopped there.]"
        )
    elif outcome.done_reason == "max_generation_seconds":
        notes.append(
            "[The answer was cut off at the server's time limit for one answer (--max-generation-seconds"
            " / MCP_OLLAMA_MAX_GENERATION_SECONDS); the model was stopped there.]"
        )
    if outcome.store_error is not None:
        notes.append(
            f"[This answer was NOT saved in session {outcome.session_id}. {outcome.store_error} "
            "The next message in this session will not see this turn.]"
        )
    answer = outcome.answer
    if include_thinking and outcome.thinking:
        answer = f"[Thinking]\n{outcome.thinking}\n\n[Answer]\n{answer}"
    return "\n\n".join([answer, *notes]) if notes else answer


def model_summary(
    model: ModelInfo,
    shown: ModelShow | None = None,
    num_ctx: int | None = None,
    hosts: list[str] | None = None,
) -> ModelSummary:
    details = model.details
    return ModelSummary(
        name=model.name,
        hosts=hosts,
        capabilities=shown.capabilities or None if shown is not None else None,
        context_length=shown.context_length if shown is not None else None,
        num_ctx=num_ctx,
        size_bytes=model.size,
        family=details.family if details else None,
        parameter_size=details.parameter_size if details else None,
        quantization=details.quantization_level if details else None,
        modified_at=str(model.modified_at) if model.modified_at else None,
    )


def human_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return human_bytes(size)
