"""``POST /api/chat``: validation, model loading, prompt truncation, then the scripted answer."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
from typing import Any

from .behavior import Behavior, _Answer
from .inputs import _FORMAT_ERROR, _THINK_LEVELS, _check_images, keep_alive_seconds
from .models import _DEFAULT_NUM_CTX, FakeModel, Truncation, count_prompt_tokens, fit_context
from .records import _Records
from .streaming import _answer_stream, _answer_whole, _load_answer
from .wire import _ClientGone, _Connection, _Request

_log = logging.getLogger("fake_ollama")


class _Chat(_Records):
    """``FakeOllama``'s ``POST /api/chat`` (a subclass may wrap ``_chat``, as bench/fake_process.py does)."""

    def _next_behavior(self) -> Behavior:
        with self._cond:
            return self._queue.popleft() if self._queue else self.default

    async def _chat(self, conn: _Connection, request: _Request) -> bool:
        """Answer ``POST /api/chat``; False if the connection must close afterwards."""
        keep_alive = request.keep_alive
        if not request.body.strip():
            await conn.send_json(400, {"error": "missing request body"}, keep_alive=keep_alive)
            return True
        body = request.json_object()
        if body is None:
            await conn.send_json(400, {"error": "invalid character in request body"}, keep_alive=keep_alive)
            return True
        # No messages: Ollama only loads (or unloads) the model; that takes no scripted behaviour.
        only_load = body.get("messages") in (None, [])
        behavior = Behavior() if only_load else self._next_behavior()
        with self._cond:
            epoch = self._epoch
            self._active += 1
            self._cond.notify_all()
        watcher = asyncio.create_task(conn.wait_for_hangup())
        try:
            if behavior.hang:
                await watcher
                raise _ClientGone
            if behavior.status is not None:
                await conn.send_json(behavior.status, {"error": behavior.error}, keep_alive=keep_alive)
                return True
            if behavior.redirect_to is not None:
                await conn.write(
                    conn.head(307, [("Location", behavior.redirect_to), ("Content-Length", "0")])
                )
                return True
            if behavior.gzip_blank_mib is not None:
                bomb = gzip.compress(b"\n" * (behavior.gzip_blank_mib * 1024 * 1024), compresslevel=9)
                headers = [
                    ("Content-Type", "application/x-ndjson"),
                    ("Content-Encoding", "gzip"),
                    ("Content-Length", str(len(bomb))),
                ]
                await conn.write(conn.head(200, headers) + bomb)
                return True
            problem = self._validate_chat(body)
            if problem is not None:
                status, text = problem
                await conn.send_json(status, {"error": text}, keep_alive=keep_alive)
                return True
            model = self._find_model(body["model"])
            assert model is not None
            seconds = keep_alive_seconds(body.get("keep_alive"))
            assert not isinstance(seconds, str)
            if only_load and seconds == 0:
                with self._cond:
                    self._loaded.pop(model.name, None)
                await conn.send_json(200, _load_answer(body["model"], "unload"), keep_alive=keep_alive)
                return True
            options = body.get("options")
            num_ctx = options.get("num_ctx") if isinstance(options, dict) else None
            num_ctx = num_ctx if isinstance(num_ctx, int) and num_ctx > 0 else _DEFAULT_NUM_CTX
            load_ns = await self._load(model.name, num_ctx, watcher)
            self._use(model.name, epoch, seconds, +1)
            try:
                if only_load:
                    await conn.send_json(200, _load_answer(body["model"], "load"), keep_alive=keep_alive)
                    return True
                messages, prompt_count = self._prompt(body, model, num_ctx, epoch)
                answer = _Answer(body, behavior, load_ns, model, messages, prompt_count)
                async with self._generation(model.name, watcher):
                    if body.get("stream", True) is False:
                        return await _answer_whole(conn, answer, watcher, keep_alive)
                    return await self._answer_stream(conn, answer, watcher)
            finally:
                self._use(model.name, epoch, seconds, -1)
        except _ClientGone:
            with self._cond:
                if epoch == self._epoch:
                    self._hangups += 1
            return False
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    async def _answer_stream(self, conn: _Connection, answer: _Answer, watcher: asyncio.Task[None]) -> bool:
        """Stream one answer; a hook for subclasses (the bench's ``TimedFake`` stamps its first write)."""
        return await _answer_stream(conn, answer, watcher)

    def _prompt(
        self, body: dict[str, Any], model: FakeModel, num_ctx: int, epoch: int
    ) -> tuple[list[dict[str, Any]], int]:
        """The messages the model sees and the prompt tokens it evaluates: every message and its
        word count, or (``tokenizer``) what fits the window and its token count, the drop recorded."""
        messages: list[dict[str, Any]] = body.get("messages") or []
        if not self.tokenizer:
            return messages, sum(len(str(m.get("content", "")).split()) for m in messages)
        window = min(num_ctx, model.context_length)
        before = count_prompt_tokens(messages, model)
        if before <= window:
            return messages, before
        kept, after = fit_context(messages, model, window)
        record = Truncation(body["model"], window, before, after, len(messages) - len(kept))
        _log.info(
            "truncating input messages which exceed context length: model=%s num_ctx=%d "
            "tokens=%d kept=%d dropped=%d",
            record.model,
            window,
            before,
            after,
            record.messages_dropped,
        )
        with self._cond:
            if epoch == self._epoch:
                self._truncations.append(record)
        return kept, after

    def _validate_chat(self, body: dict[str, Any]) -> tuple[int, str] | None:
        keep = keep_alive_seconds(body.get("keep_alive"))
        if isinstance(keep, str):  # Go fails to bind the request body
            return 400, keep
        think = body.get("think")
        if isinstance(think, str) and think not in _THINK_LEVELS:
            return (
                400,
                f'invalid think value: {json.dumps(think)} (must be "high", "medium", "low", true, or false)',
            )
        if think is not None and not isinstance(think, (bool, str)):
            return 400, 'think must be a boolean or string ("high", "medium", "low", true, or false)'
        name = body.get("model")
        if not isinstance(name, str) or not name.strip():
            return 400, "model is required"
        model = self._find_model(name)
        if model is None:
            return 404, f'model "{name}" not found, try pulling it first'
        messages = body.get("messages")
        if messages is not None and (
            not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages)
        ):
            return 400, "json: cannot unmarshal messages into Go struct field ChatRequest.messages"
        problem = _check_images(messages or [])
        if problem is not None:
            return 400, problem
        if think and "thinking" not in model.capabilities:
            return 400, f'"{name}" does not support thinking'
        if isinstance(think, str) and not model.think_levels:
            return 400, f"think value {json.dumps(think)} is not supported for this model"
        if body.get("tools") and "tools" not in model.capabilities:
            return 400, f"registry.ollama.ai/library/{name} does not support tools"
        if any(m.get("images") for m in messages or []) and "vision" not in model.capabilities:
            return 400, f'"{name}" does not support images'
        fmt = body.get("format")
        if fmt not in (None, "", "json") and not isinstance(fmt, dict):
            return 400, _FORMAT_ERROR
        return None
