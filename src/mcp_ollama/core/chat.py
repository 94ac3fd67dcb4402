"""One chat turn, from message to stored answer, with nothing about MCP in it.

``core.planning.plan_turn`` validates the input; ``ChatService.run`` reads the model's details (its
context window and capabilities, once per model), loads the session's recent history, trims it to
the window, streams the answer from the backend while telling a ``TurnObserver`` of each piece
(thinking apart from the answer, ``core.answer``), and only then writes the user message and the
answer to the store in one transaction. A turn that fails or is cancelled writes nothing. Calls
on one session are serialised (``core.locks``); different sessions run concurrently.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from dataclasses import replace
from functools import partial

import anyio
import anyio.to_thread

from ..backend.admin_models import ModelShow
from ..backend.models import ChatMessage, ChatRequest, GenerationOptions
from ..backend_errors import ModelNotFound
from ..config import Settings
from ..errors import McpOllamaError, StoreError
from ..store import Store, StoredMessage, session_key
from .answer import AnswerLimits, stream_answer
from .budget import IMAGE_TOKENS, Calibration, answer_reserve, estimate_tokens, fit_history
from .locks import SessionLocks
from .planning import plan_turn
from .ports import ModelBackend, ModelDetails
from .prompts import render_system_prompt
from .request import check_capabilities, to_chat, with_ctx
from .store_calls import run_store
from .structured import parse_answer
from .turns import LEASE_SECONDS, TurnObserver, TurnOutcome, TurnPlan, Unobserved

LEASE_POLL_FIRST = 0.05
LEASE_POLL_MAX = 1.0
"""Seconds between looks at a session another process is writing a turn of."""


def _ms(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else round(nanoseconds / 1e6, 3)


class ChatService:
    """Runs chat turns against one model backend and one session store."""

    def __init__(self, settings: Settings, backend: ModelBackend, store: Store) -> None:
        """``backend``: where every chat goes (``backend.pool.OllamaPool``; one server is a pool of one)."""
        self._settings = settings
        self.backend = backend
        self._store = store
        self._locks = SessionLocks()
        self.owner = uuid.uuid4().hex
        """This process, as the holder of session leases and job records."""
        self.calibration = Calibration()
        """How Ollama's token counts compare with our estimate, per model."""

    @property
    def system_prompt(self) -> str:
        """Exactly the system message every turn sends."""
        return render_system_prompt(self._settings.system_prompt)

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
        plan = plan_turn(self._settings, message, session_id=session_id, model=model, options=options)
        return await self.run(plan, observer or Unobserved())

    async def run(self, plan: TurnPlan, observer: TurnObserver) -> TurnOutcome:
        """Run a planned turn: history, the streamed answer, then the turn stored in one transaction.

        Raises ``InputError`` subclasses when the message does not fit the context and
        ``BackendError`` subclasses when Ollama fails; in both cases, and on cancellation,
        the store is left untouched.

        The turn's image data goes into the request to Ollama and nowhere else; when the turn
        ends its bytes are uncounted (``ImageBatch.release``). An error raised keeps none of the
        turn's frames: a job keeps its error, and they would keep the request alive with it.
        """
        try:
            return await self._run(plan, observer)
        except McpOllamaError as exc:
            _drop_frames(exc)
            raise
        finally:
            plan.images.release()

    async def _run(self, plan: TurnPlan, observer: TurnObserver) -> TurnOutcome:
        sid, who = plan.session_id, plan.principal
        lock = session_key(sid, who)
        if self._locks.busy(lock):
            observer.queued()
        async with self._locks.hold(lock):
            store_error: str | None = None
            stored: list[StoredMessage] = []
            leased = False
            if not plan.fresh:  # a session this turn made has no history, and nobody else knows it
                try:
                    stored = await self._begin(sid, who, observer)
                    leased = True
                except StoreError:
                    try:  # the store cannot be written (locked, full, read-only): read without a lease
                        stored = await anyio.to_thread.run_sync(
                            partial(
                                self._store.recent_messages, sid, self._settings.history_turns, principal=who
                            )
                        )
                    except StoreError as exc:  # answer all the same, without the history, and say so
                        store_error = str(exc)
            try:
                outcome = await self._answer(plan, observer, stored, store_error, lease=leased)
            except BaseException:
                if leased:
                    with anyio.CancelScope(shield=True):
                        await run_store(self._store, partial(self._release, sid, who))
                raise
            if leased and outcome.store_error is not None:  # a stored turn ended its lease itself
                await run_store(self._store, partial(self._release, sid, who))
            return outcome

    async def _begin(self, sid: str, principal: str, observer: TurnObserver) -> list[StoredMessage]:
        """The session's lease and its recent history; waits while another process writes a turn of it."""
        pause = LEASE_POLL_FIRST
        begin = partial(
            self._store.begin_turn,
            sid,
            self.owner,
            self._settings.history_turns,
            LEASE_SECONDS,
            principal=principal,
        )
        while True:
            history = await run_store(self._store, begin)
            if history is not None:
                return history
            observer.queued()
            await anyio.sleep(pause)
            pause = min(pause * 2, LEASE_POLL_MAX)

    def _release(self, sid: str, principal: str) -> None:
        with contextlib.suppress(StoreError):  # it lapses by itself
            self._store.release_lease(sid, self.owner, principal=principal)

    async def _answer(
        self,
        plan: TurnPlan,
        observer: TurnObserver,
        stored: list[StoredMessage],
        store_error: str | None,
        *,
        lease: bool,
    ) -> TurnOutcome:
        sid, options, model = plan.session_id, plan.options, plan.model
        catalog = await self.backend.catalog_for(model)
        shown = await catalog.details(model)
        think = await check_capabilities(plan, shown, catalog)
        window = self.window(model, shown, options)
        history = [to_chat(m) for m in stored]
        system = ChatMessage(role="system", content=self.system_prompt)
        user = ChatMessage(role="user", content=plan.message)
        scale = self.calibration.scale(model)
        image_tokens = IMAGE_TOKENS * len(plan.images)
        history = fit_history(
            system,
            history,
            user,
            window - answer_reserve(window, options),
            scale=scale,
            extra=image_tokens,
            window=f"{model}'s context window of {window:,} tokens",
        )
        if plan.images:  # from here on the request holds the images, and the plan their notes only
            user = user.model_copy(update={"images": plan.images.take()})
        request = ChatRequest(
            model=model,
            messages=[system, *history, user],
            stream=True,
            options=with_ctx(options, window),
            keep_alive=self._settings.keep_alive if plan.keep_alive is None else plan.keep_alive,
            think=think,
            format=plan.format,
        )
        estimated = sum(estimate_tokens(m.content) for m in request.messages)
        observer.requested(math.ceil(estimated * scale) + image_tokens)
        try:
            answer, thinking, final = await stream_answer(
                self.backend, request, observer, self._limits(), principal=plan.principal
            )
        except ModelNotFound as exc:  # removed since its details were read
            if self.backend.several:
                raise  # the pool's names every server's models already
            raise await catalog.not_found(model) from exc
        del request, user  # and the images with them: nothing of them outlives the request
        plan.images.release()  # no longer in flight, before anyone hears the answer
        if not plan.images:  # an image's cost is a guess: only text calibrates
            self.calibration.learn(model, estimated, final.prompt_eval_count, window)
        data = None
        if plan.format is not None:
            data = parse_answer(model, answer, plan.format, final.done_reason)
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
            thinking=thinking,
            data=data,
            images=plan.images.notes,
            num_ctx=window,
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
                    thinking=thinking,
                    images=unsaved.images,
                    principal=plan.principal,
                    asked_at=plan.asked_at,
                )
            except StoreError as exc:  # the answer is the user's all the same: return it, unsaved
                return replace(unsaved, store_error=str(exc))
            return replace(unsaved, new_session=created)

        def undo(stored: TurnOutcome) -> None:
            self._store.remove_last_turn(sid, drop_session=stored.new_session, principal=plan.principal)

        async def store_turn() -> TurnOutcome:
            return await run_store(self._store, commit)

        async def take_back(stored: TurnOutcome) -> None:
            await run_store(self._store, partial(undo, stored))

        return await observer.commit(store_turn, take_back)

    def window(self, model: str, shown: ModelShow | None, options: GenerationOptions | None) -> int:
        """The ``num_ctx`` a turn with ``model`` asks for: the call's own, else always the same one.

        Ollama reloads a model whose ``num_ctx`` changes, so every request for a model (preload
        included) sends the same value unless the call names its own.
        """
        maximum = shown.context_length if shown else None
        if options is not None and options.num_ctx is not None:
            # Ollama itself cuts a larger num_ctx down to the model's own: budget for what it does.
            return min(options.num_ctx, maximum) if maximum else options.num_ctx
        return self._settings.context_window(maximum)

    def _limits(self) -> AnswerLimits:
        return AnswerLimits(self._settings.max_answer_chars, self._settings.max_generation_seconds)

    async def catalog_for(self, model: str) -> ModelDetails:
        """The details cache of the server that has ``model`` (the first server when none says so)."""
        return await self.backend.catalog_for(model)


def _drop_frames(exc: BaseException) -> None:
    """Forget the tracebacks of ``exc`` and of the exceptions behind it (not their messages)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        found = todo.pop()
        if found is None or id(found) in seen:
            continue
        seen.add(id(found))
        found.__traceback__ = None
        todo += [found.__cause__, found.__context__]
