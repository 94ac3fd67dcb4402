"""One generation that outlives the request that asked for it: its state, progress and record.

``Job`` is what a waiting request, ``chat_result`` and a task see of a running turn;
``Handoff`` carries its finished turn to the request that sends the answer; ``core.jobs.Jobs``
runs them. Nothing here knows about MCP or HTTP.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from ..errors import McpOllamaError
from .text import clean_text, count
from .turns import Commit, TurnOutcome, TurnPlan, Undo

if TYPE_CHECKING:
    from ..store import JobProgress, JobRecord


class JobState(StrEnum):
    QUEUED = "queued"
    """Waiting for an earlier turn of the same session to finish."""
    STARTED = "started"
    """Sent to Ollama; no token yet (the model is loading or reading the prompt)."""
    WRITING = "writing"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    """The server stopped before the answer was complete."""


FINAL_STATES = frozenset({JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED})


@dataclass(eq=False)
class Job:
    """One chat turn running in the background, and everything known about it so far."""

    id: str
    plan: TurnPlan
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    state: JobState = JobState.STARTED
    tokens: int = 0
    """Pieces of the answer received so far."""
    thoughts: int = 0
    """Pieces of the model's thinking received so far (before the answer)."""
    slot_wait: str | None = None
    """Why the turn waits for a free slot on an Ollama server, while it does (until its first token)."""
    prompt_tokens: int = 0
    """Estimated tokens of the prompt sent to Ollama."""
    message: str = ""
    """What is happening now, for progress notifications."""
    beats: int = 0
    """Heartbeats so far: each one is news to relay, even when its message is unchanged."""
    outcome: TurnOutcome | None = None
    error: McpOllamaError | None = None
    stop_reason: str = ""
    recorded: bool = False
    """Whether the store holds a record of this job."""
    requester: str | None = None
    """For an MCP task: who may see it (recorded with the job)."""
    expires_at: datetime | None = None
    """For an MCP task: when its record may be forgotten (its time to live)."""
    pieces: list[str] = field(default_factory=list)
    last_change: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_beat: float = field(default_factory=time.monotonic)
    owned: bool = False
    """The request that started the job still waits for it: that request stores the turn."""
    handoff: Handoff | None = None
    """The finished turn's commit, waiting for the owning request to run it."""
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _done: anyio.Event = field(default_factory=anyio.Event)
    _decided: anyio.Event = field(default_factory=anyio.Event)
    _scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    _exited: anyio.Event = field(default_factory=anyio.Event)

    @property
    def session_id(self) -> str:
        return self.plan.session_id

    @property
    def model(self) -> str:
        return self.plan.model

    @property
    def progress(self) -> int:
        """Pieces of thinking and answer so far: what progress notifications count."""
        return self.tokens + self.thoughts

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def partial(self) -> str:
        """The answer so far (all of it once complete)."""
        return self.outcome.answer if self.outcome is not None else clean_text("".join(self.pieces))

    @property
    def changed(self) -> anyio.Event:
        """Set at the next change of state, token or message. Take it just before waiting on it:
        a change that nobody waits for sets nothing (whoever looks next sees the new state)."""
        return self._changed

    @property
    def ended(self) -> anyio.Event:
        """Set when the job has ended (``done``)."""
        return self._done

    @property
    def decided(self) -> anyio.Event:
        """Set when the job ends or hands its finished turn to its owner (``handoff``): what the
        owning request waits for, rather than every token (a long answer is thousands)."""
        return self._decided

    async def wait(self, deadline: float | None) -> bool:
        """Wait until the job has ended, for at most ``deadline`` seconds (``None``: no limit)."""
        with anyio.move_on_after(math.inf if deadline is None else deadline):
            await self._done.wait()
        return self.done

    async def join(self, limit: float) -> bool:
        """Wait (at most ``limit`` s) until the job's task has finished: Ollama's stream is closed."""
        with anyio.move_on_after(limit):
            await self._exited.wait()
        return self._exited.is_set()

    def cancel(self, reason: str, state: JobState = JobState.CANCELLED) -> bool:
        """Stop the job (Ollama's stream is closed); False if it had ended, or its turn is stored."""
        if self.done or self.outcome is not None:
            return False
        self.stop_reason = reason
        self._end(state)
        self._scope.cancel()
        return True

    def release(self, settled: anyio.Event, spent: anyio.CancelScope) -> None:
        """Let go of what only a running job needs, once it has ended and its task has exited.

        ``Jobs`` keeps the last ``FINISHED_KEPT`` finished jobs for ``chat_result``; each kept its
        handoff (whose commit holds the whole turn), five events, all set by then, and its cancel
        scope with the scopes inside it: about 45 of its 55 objects, which every pass of the
        garbage collector walked until the job was forgotten (issue 21). The events become
        ``settled``, one set event shared by all; the scope ``spent``, one that ``cancel`` never
        reaches (it returns first for a job that has ended).
        """
        if not (self.done and self._exited.is_set()):
            return
        self.handoff = None
        self._changed = self._done = self._decided = self._exited = settled
        self._scope = spent

    # -- TurnObserver: called by ChatService.run as the turn goes along

    # Neither of these sends progress by itself: a fast answer's first notification is its first
    # token; the heartbeat speaks up if the wait gets long.

    def queued(self) -> None:
        self.state = JobState.QUEUED

    def requested(self, prompt_tokens: int) -> None:
        self.state, self.prompt_tokens = JobState.STARTED, prompt_tokens

    def token(self, text: str) -> None:
        self.pieces.append(text)
        self.tokens += 1
        self._change(JobState.WRITING, f"{self.model}: {count(self.tokens, 'token')} so far")

    def waiting(self, text: str) -> None:
        self.slot_wait = text
        self.beats += 1
        self._change(self.state, text)

    def thinking(self, text: str) -> None:
        self.thoughts += 1
        self._change(JobState.WRITING, f"{self.model}: thinking… ({count(self.thoughts, 'token')})")

    async def commit(self, commit: Commit, undo: Undo) -> TurnOutcome:
        """Where the turn is stored: by the owning request if it still waits, else here."""
        if not self.owned:
            return await commit()
        handoff = self.handoff = Handoff(commit, undo)
        self._decided.set()
        self._bump()
        await handoff.settled.wait()
        if handoff.outcome is None:  # the owner was cancelled before or while storing: nothing stays
            self.cancel("the request was cancelled")
            await anyio.sleep_forever()  # the job's scope is cancelled: this raises at once
            raise AssertionError("unreachable")
        return handoff.outcome

    # -- internals

    def _bump(self) -> None:
        if not self._changed.statistics().tasks_waiting:
            return  # a new event per token for nobody is the cost of many (issue 21)
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def _change(self, state: JobState, message: str) -> None:
        if self.done:
            return
        self.state, self.message = state, message
        self.last_change = datetime.now(UTC)
        self._bump()

    def _end(self, state: JobState) -> None:
        self.state = state
        self.last_change = datetime.now(UTC)
        self._changed.set()
        self._done.set()
        self._decided.set()

    def snapshot(self) -> JobProgress:
        """How far the job has got, as its record keeps it for other replicas (``Jobs``)."""
        from ..store import JobProgress

        return JobProgress(
            self.partial, self.state.value, self.tokens, self.thoughts, self.message, self.last_change
        )

    def record(self, owner: str) -> JobRecord:
        from ..store import JobRecord

        finished = self.last_change if self.done else None
        status = "running" if not self.done else self.state.value
        detail = str(self.error) if self.error is not None else (self.stop_reason or None)
        return JobRecord(
            id=self.id,
            session_id=self.session_id,
            model=self.model,
            status=status,
            owner=owner,
            started_at=self.created_at,
            heartbeat_at=datetime.now(UTC),
            finished_at=finished,
            detail=detail,
            requester=self.requester,
            expires_at=self.expires_at,
            principal=self.plan.principal,
            progress=None if self.done else self.snapshot(),
        )


class Handoff:
    """A finished turn's commit, handed to the request that will send the answer.

    The owner runs ``commit`` (``core.store_calls.run_store``) under a shield and, if the host cancelled
    the request meanwhile, ``undo``: the turn is stored exactly when the answer is sent.
    """

    def __init__(self, commit: Commit, undo: Undo) -> None:
        self.commit = commit
        self.undo = undo
        self.outcome: TurnOutcome | None = None
        self.settled = anyio.Event()

    async def run(self, cancelled: Callable[[], bool]) -> TurnOutcome | None:
        """Store the turn unless ``cancelled()``; take it back if that turns true while storing."""
        try:
            with anyio.CancelScope(shield=True):
                if cancelled():
                    return None
                outcome = await self.commit()
                # A cancel the client sent while the turn was being stored is read now: the commit may
                # have run at once, without the event loop reading anything (core.store_calls).
                await anyio.lowlevel.checkpoint()
                if cancelled() and outcome.store_error is None:
                    await self.undo(outcome)
                    return None
                self.outcome = outcome
                return outcome
            return None  # not reached: a shielded scope does not swallow what the block raises
        finally:
            self.settled.set()

    def decline(self) -> None:
        """The owner is gone without storing: the job stores nothing."""
        self.settled.set()
