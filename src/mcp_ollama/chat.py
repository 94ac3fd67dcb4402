"""One chat turn, from message to stored answer, with nothing about MCP in it.

``ChatService.plan`` validates the input; ``ChatService.run`` loads the session's recent
history, trims it to the model's context budget, streams the answer from Ollama while telling a
``TurnObserver`` of each piece, and only then writes the user message and the answer to the
store in one transaction. A turn that fails or is cancelled writes nothing. Calls on one session are
serialised; different sessions run concurrently.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

import anyio
import anyio.to_thread

from .backend import ChatChunk, ChatMessage, ChatRequest, GenerationOptions, OllamaClient
from .core.budget import answer_reserve, estimate_tokens, fit_history
from .core.jobs import LEASE_SECONDS
from .core.text import clean_text
from .errors import InputError, InputTooLarge, StoreError
from .prompts import render_system_prompt
from .settings import Settings
from .store import ChatStore, StoredMessage, new_session_id, validate_session_id

LEASE_POLL_FIRST = 0.05
LEASE_POLL_MAX = 1.0
"""Seconds between looks at a session another process is writing a turn of."""


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


@dataclass
class _SessionLocks:
    """One lock per session id, dropped again when nobody holds or waits for it."""

    _locks: dict[str, tuple[anyio.Lock, int]] = field(default_factory=dict)

    def busy(self, session_id: str) -> bool:
        """Whether a turn of ``session_id`` is running (or waiting) now."""
        return session_id in self._locks

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(session_id, (anyio.Lock(), 0))
        self._locks[session_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[session_id]
            if users == 1:
                del self._locks[session_id]
            else:
                self._locks[session_id] = (lock, users - 1)


def _ms(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else round(nanoseconds / 1e6, 3)


Commit = Callable[[], "TurnOutcome"]
"""The turn's one write transaction, run in a worker thread; returns the outcome, stored or not."""
Undo = Callable[["TurnOutcome"], None]
"""Takes back a committed turn (nobody was told of it); run in a worker thread."""


class TurnObserver(Protocol):
    """Whoever follows a running turn: told of its progress, and where its commit happens."""

    def queued(self) -> None:
        """Another turn of the same session is being written; this one waits for it."""

    def requested(self, prompt_tokens: int) -> None:
        """The request went to Ollama with about ``prompt_tokens`` tokens of prompt."""

    def token(self, text: str) -> None:
        """A piece of the answer arrived."""

    async def commit(self, commit: Commit, undo: Undo) -> TurnOutcome:
        """Run ``commit`` (off the event loop) where the answer's delivery is decided.

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


class ChatService:
    """Runs chat turns against one Ollama client and one session store."""

    def __init__(self, settings: Settings, client: OllamaClient, store: ChatStore) -> None:
        self._settings = settings
        self._client = client
        self._store = store
        self._locks = _SessionLocks()
        self.owner = uuid.uuid4().hex
        """This process, as the holder of session leases and job records."""

    @property
    def system_prompt(self) -> str:
        """Exactly the system message every turn sends."""
        return render_system_prompt(self._settings.system_prompt)

    def plan(
        self,
        message: str,
        *,
        session_id: str | None = None,
        model: str | None = None,
        options: GenerationOptions | None = None,
    ) -> TurnPlan:
        """Check a turn's input; raises ``InputError`` subclasses for anything unusable."""
        _require_unicode("message", message)
        _require_unicode("model", model or "")
        for stop in (options.stop or []) if options else []:
            _require_unicode("options.stop", stop)
        if not message.strip():
            raise InputError("The message is empty: write something for the model to answer.")
        if len(message) > self._settings.max_message_chars:
            raise InputTooLarge(
                f"The message has {len(message):,} characters; the limit is "
                f"{self._settings.max_message_chars:,} (MCP_OLLAMA_MAX_MESSAGE_CHARS). Shorten it."
            )
        model_name = (model or self._settings.model).strip()
        if not model_name or len(model_name) > 200:
            raise InputError("The model name must be 1-200 characters, such as 'llama3:8b'.")
        sid = validate_session_id(session_id) if session_id is not None else new_session_id()
        return TurnPlan(
            message=message, session_id=sid, model=model_name, options=options, fresh=session_id is None
        )

    async def turn(
        self,
        message: str,
        *,
        session_id: str | None = None,
        model: str | None = None,
        options: GenerationOptions | None = None,
        observer: TurnObserver | None = None,
    ) -> TurnOutcome:
        """Send ``message`` in ``session_id`` (a new session when ``None``) and store the turn."""
        plan = self.plan(message, session_id=session_id, model=model, options=options)
        return await self.run(plan, observer or _Unobserved())

    async def run(self, plan: TurnPlan, observer: TurnObserver) -> TurnOutcome:
        """Run a planned turn: history, the streamed answer, then the turn stored in one transaction.

        Raises ``InputError`` subclasses when the message does not fit the context and
        ``BackendError`` subclasses when Ollama fails; in both cases, and on cancellation,
        the store is left untouched.
        """
        sid = plan.session_id
        if self._locks.busy(sid):
            observer.queued()
        async with self._locks.hold(sid):
            store_error: str | None = None
            stored: list[StoredMessage] = []
            leased = False
            if not plan.fresh:  # a session this turn made has no history, and nobody else knows it
                try:
                    stored = await self._begin(sid, observer)
                    leased = True
                except StoreError:
                    try:  # the store cannot be written (locked, full, read-only): read without a lease
                        stored = await anyio.to_thread.run_sync(
                            self._store.recent_messages, sid, self._settings.history_turns
                        )
                    except StoreError as exc:  # answer all the same, without the history, and say so
                        store_error = str(exc)
            try:
                outcome = await self._answer(plan, observer, stored, store_error, lease=leased)
            except BaseException:
                if leased:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(self._release, sid)
                raise
            if leased and outcome.store_error is not None:  # a stored turn ended its lease itself
                await anyio.to_thread.run_sync(self._release, sid)
            return outcome

    async def _begin(self, sid: str, observer: TurnObserver) -> list[StoredMessage]:
        """The session's lease and its recent history; waits while another process writes a turn of it."""
        pause = LEASE_POLL_FIRST
        while True:
            history = await anyio.to_thread.run_sync(
                self._store.begin_turn, sid, self.owner, self._settings.history_turns, LEASE_SECONDS
            )
            if history is not None:
                return history
            observer.queued()
            await anyio.sleep(pause)
            pause = min(pause * 2, LEASE_POLL_MAX)

    def _release(self, sid: str) -> None:
        with contextlib.suppress(StoreError):  # it lapses by itself
            self._store.release_lease(sid, self.owner)

    async def _answer(
        self,
        plan: TurnPlan,
        observer: TurnObserver,
        stored: list[StoredMessage],
        store_error: str | None,
        *,
        lease: bool,
    ) -> TurnOutcome:
        sid, options = plan.session_id, plan.options
        history = [_to_chat(m) for m in stored]
        system = ChatMessage(role="system", content=self.system_prompt)
        user = ChatMessage(role="user", content=plan.message)
        context_tokens = (options.num_ctx if options and options.num_ctx else None) or (
            self._settings.context_tokens
        )
        budget = context_tokens - answer_reserve(context_tokens, options)
        history = fit_history(system, history, user, budget)
        request = ChatRequest(
            model=plan.model,
            messages=[system, *history, user],
            stream=True,
            options=_with_default_ctx(options, self._settings.num_ctx),
            keep_alive=self._settings.keep_alive,
        )
        observer.requested(sum(estimate_tokens(m.content) for m in request.messages))
        answer, final = await self._stream(request, observer)
        unsaved = TurnOutcome(
            session_id=sid,
            model=final.model or plan.model,
            answer=answer,
            done_reason=final.done_reason,
            prompt_tokens=final.prompt_eval_count,
            completion_tokens=final.eval_count,
            total_ms=_ms(final.total_duration),
            load_ms=_ms(final.load_duration),
            prompt_eval_ms=_ms(final.prompt_eval_duration),
            eval_ms=_ms(final.eval_duration),
            history_messages=len(history),
            new_session=False,
            store_error=store_error,
        )
        meta = {
            "model": plan.model,
            "done_reason": final.done_reason,
            "prompt_tokens": final.prompt_eval_count,
            "completion_tokens": final.eval_count,
            "total_ms": _ms(final.total_duration),
        }

        def commit() -> TurnOutcome:
            if unsaved.store_error is not None:  # the store could not even be read
                return unsaved
            try:
                created = self._store.append_turn(
                    sid,
                    model=plan.model,
                    user=plan.message,
                    assistant=answer,
                    meta=meta,
                    job_id=plan.job_id,
                    lease_owner=self.owner if lease else None,
                )
            except StoreError as exc:  # the answer is the user's all the same: return it, unsaved
                return replace(unsaved, store_error=str(exc))
            return replace(unsaved, new_session=created)

        def undo(stored: TurnOutcome) -> None:
            self._store.remove_last_turn(sid, drop_session=stored.new_session)

        return await observer.commit(commit, undo)

    async def _stream(self, request: ChatRequest, observer: TurnObserver) -> tuple[str, ChatChunk]:
        """Collect the streamed answer, telling ``observer`` of every piece.

        The answer is capped in length (``max_answer_chars``) and time (``max_generation_seconds``):
        past either, the stream is closed (Ollama stops) and the answer so far is the answer,
        with the cap as its ``done_reason``.
        """
        pieces: list[str] = []
        size = 0
        limit = self._settings.max_answer_chars
        final: ChatChunk | None = None
        with anyio.move_on_after(self._settings.max_generation_seconds):
            async with self._client.chat_stream(request) as chunks:
                async for chunk in chunks:
                    content = chunk.message.content if chunk.message is not None else ""
                    if content:
                        if size + len(content) > limit:
                            pieces.append(content[: limit - size])
                            final = _stopped(request.model, "max_answer_chars", len(pieces))
                            break
                        pieces.append(content)
                        size += len(content)
                        observer.token(content)
                    if chunk.done:
                        final = chunk
                        break
        if final is None:
            final = _stopped(request.model, "max_generation_seconds", len(pieces))
        return clean_text("".join(pieces)), final


def _stopped(model: str, reason: str, pieces: int) -> ChatChunk:
    """The final chunk Ollama did not send, for an answer we stopped."""
    return ChatChunk(
        model=model,
        created_at="",
        done=True,
        done_reason=reason,
        total_duration=None,
        load_duration=None,
        prompt_eval_count=None,
        prompt_eval_duration=None,
        eval_count=pieces,
        eval_duration=None,
    )


class _Unobserved:
    def queued(self) -> None:
        pass

    def requested(self, prompt_tokens: int) -> None:
        pass

    def token(self, text: str) -> None:
        pass

    async def commit(self, commit: Commit, undo: Undo) -> TurnOutcome:
        return await anyio.to_thread.run_sync(commit)


def open_client(settings: Settings) -> OllamaClient:
    """The Ollama client ``settings`` describe: address, timeouts, credentials."""
    return OllamaClient(
        settings.ollama_url,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.generation_timeout,
        basic_auth=settings.basic_auth(),
        api_key=settings.bearer_token(),
    )


async def load_model(client: OllamaClient, settings: Settings) -> float:
    """Load the default model as chats will use it (``preload_request``); the seconds it took."""
    started = time.monotonic()
    await client.load(preload_request(settings))
    return time.monotonic() - started


def preload_request(settings: Settings, model: str | None = None) -> ChatRequest:
    """The request that loads ``model`` (default: the configured one) exactly as chats will use it.

    Same ``keep_alive`` and ``num_ctx`` as every turn sends: a different ``num_ctx`` would make
    Ollama load the model again on the first chat.
    """
    return ChatRequest(
        model=model or settings.model,
        messages=[],
        stream=False,
        options=_with_default_ctx(None, settings.num_ctx),
        keep_alive=settings.keep_alive,
    )


def _require_unicode(name: str, value: str) -> None:
    """Refuse text that cannot travel as UTF-8 (a lone surrogate, legal in JSON escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"The {name} is not valid Unicode text (it holds a lone surrogate).") from None


def _to_chat(message: StoredMessage) -> ChatMessage:
    return ChatMessage(role="assistant" if message.role == "assistant" else "user", content=message.content)


def _with_default_ctx(options: GenerationOptions | None, num_ctx: int | None) -> GenerationOptions | None:
    """Apply the configured ``num_ctx`` unless the call chose its own."""
    if num_ctx is None or (options is not None and options.num_ctx is not None):
        return options
    if options is None:
        return GenerationOptions(num_ctx=num_ctx)
    return options.model_copy(update={"num_ctx": num_ctx})
