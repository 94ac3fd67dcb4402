"""The shapes of a chat turn: what it is asked to do (``TurnPlan``), who follows it (``TurnObserver``),
and what it produced (``TurnOutcome``). Plain data and protocols; ``chat.ChatService`` runs turns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ..backend.models import GenerationOptions, Think
from ..store import LOCAL, ImageNote
from .images import ImageBatch
from .structured import Format

LEASE_RENEW_INTERVAL = 2.0
"""Seconds between renewals of the session leases this process holds."""
LEASE_SECONDS = 5 * LEASE_RENEW_INTERVAL
"""How long a session's lease outlives its holder's last renewal: a killed process holds up
its sessions' next turns this long at most."""


@dataclass(frozen=True)
class TurnOutcome:
    """What one completed turn produced."""

    session_id: str
    model: str
    answer: str
    done_reason: str | None
    """Ollama's ('stop', 'length'), or ours when a cap stopped the model: 'max_answer_chars',
    'max_generation_seconds'."""
    prompt_tokens: int | None
    completion_tokens: int | None
    total_ms: float | None
    load_ms: float | None
    prompt_eval_ms: float | None
    eval_ms: float | None
    history_messages: int
    """Earlier messages sent to the model with this one (after trimming)."""
    new_session: bool
    store_error: str | None = None
    """Why the turn could not be stored (then it was not); None when it was."""
    thinking: str | None = None
    """The model's thinking, apart from the answer (stored, never sent back as history)."""
    data: Any = None
    """The parsed JSON value of the answer, when the turn asked for JSON (``format``)."""
    images: tuple[ImageNote, ...] = ()
    """Notes of the images sent with the message."""
    num_ctx: int | None = None
    """The context window the request asked Ollama for."""


Commit = Callable[[], Awaitable["TurnOutcome"]]
"""The turn's one write transaction (``core.store_calls.run_store``); the outcome, stored or not."""
Undo = Callable[["TurnOutcome"], Awaitable[None]]
"""Takes back a committed turn (nobody was told of it)."""


class TurnObserver(Protocol):
    """Whoever follows a running turn: told of its progress, and where its commit happens."""

    def queued(self) -> None:
        """Another turn of the same session is being written; this one waits for it."""

    def requested(self, prompt_tokens: int) -> None:
        """The request went to Ollama with about ``prompt_tokens`` tokens of prompt."""

    def token(self, text: str) -> None:
        """A piece of the answer arrived."""

    def thinking(self, text: str) -> None:
        """A piece of the model's thinking arrived (before the answer)."""

    def waiting(self, text: str) -> None:
        """Every Ollama server with the model is busy; ``text`` says so, and the turn waits its turn."""

    async def commit(self, commit: Commit, undo: Undo) -> TurnOutcome:
        """Run ``commit`` where the answer's delivery is decided.

        A job whose request still waits hands it to that request, so that the turn is stored
        exactly when the answer is sent (``undo`` takes it back if the host cancelled during
        the write); otherwise it runs it itself.
        """
        ...


@dataclass(frozen=True)
class TurnPlan:
    """A validated chat turn, ready to run: everything ``ChatService.run`` needs."""

    message: str
    session_id: str
    model: str
    options: GenerationOptions | None
    job_id: str | None = None
    """The job running this turn, if any: its record is closed in the turn's own transaction."""
    fresh: bool = False
    """The session id was made for this turn: there is no history to read."""
    think: Think | None = None
    """Ask a thinking model to think first (or not: False), or how hard ('low'…'high')."""
    format: Format | None = None
    """Hold the answer to JSON: 'json', or a JSON Schema."""
    images: ImageBatch = field(default_factory=ImageBatch)
    """Checked images to send with the message (to a vision model): their data only until the
    request to Ollama is built (``ImageBatch.take``), their notes for good."""
    include_thinking: bool = False
    """Return the thinking with the answer (it is stored either way)."""
    principal: str = LOCAL
    """Whose turn it is: the session is this principal's (a bearer token's name, or local)."""
    keep_alive: str | int | None = None
    """How long Ollama keeps the model loaded after this turn; None: the server's setting."""
    asked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When the message was sent: the stored user message's time (the answer's is when it is stored)."""


class Unobserved:
    """An observer that watches nothing: the turn stores itself."""

    def queued(self) -> None:
        pass

    def requested(self, prompt_tokens: int) -> None:
        pass

    def token(self, text: str) -> None:
        pass

    def thinking(self, text: str) -> None:
        pass

    def waiting(self, text: str) -> None:
        pass

    async def commit(self, commit: Commit, undo: Undo) -> TurnOutcome:
        return await commit()
