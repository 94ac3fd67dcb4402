"""``mcp-ollama ask``: one chat turn from a terminal, on the server's own store and chat core.

The answer streams to stdout as tokens arrive, so stdout holds the answer alone; the session id
goes to stderr (``--json`` prints one object at the end instead). Nothing here imports the MCP
SDK. Ctrl-C cancels the turn: the HTTP stream is closed, which stops Ollama, nothing is stored,
and the exit code is 130. Failures are one sentence on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

import anyio
import anyio.to_thread

from ..backend.connect import open_pool
from ..config import Settings
from ..core.chat import ChatService
from ..core.text import clean_text
from ..core.turns import Commit, TurnOutcome, Undo
from ..errors import McpOllamaError
from ..store import Store, open_store, validate_session_id

INTERRUPTED = 130
"""128 + SIGINT, what a shell reports for a command stopped by Ctrl-C."""

CUT_SHORT = {
    "length": "the model reached its token limit",
    "max_answer_chars": "the answer reached --max-answer-chars",
    "max_generation_seconds": "the answer took longer than --max-generation-seconds",
}


def ask(
    settings: Settings,
    message: str,
    *,
    session_id: str | None = None,
    as_json: bool = False,
    new: bool = False,
) -> int:
    """Send ``message`` (``"-"``: read stdin) in ``session_id`` or a new session; the exit code.

    An unknown ``session_id`` is refused (a typo would start a new session silently), naming the
    closest stored ids, unless ``new``; ``new`` with a stored one is refused too.
    """
    if message == "-":
        message = sys.stdin.read()
    printer = _Printer(None if as_json else sys.stdout)
    try:
        store = open_store(settings)
    except McpOllamaError as exc:
        return _fail(exc)
    try:
        if session_id is not None and (problem := _session_problem(store, session_id, new=new)):
            print(f"mcp-ollama: {problem}", file=sys.stderr)
            return 1
    except McpOllamaError as exc:
        store.close()
        return _fail(exc)
    try:
        outcome = anyio.run(_turn, settings, store, message, session_id, printer)
    except McpOllamaError as exc:
        printer.end_line()
        return _fail(exc)
    finally:
        store.close()
    if outcome is None:
        printer.end_line()
        print("mcp-ollama: interrupted; the model was stopped and nothing was stored.", file=sys.stderr)
        return INTERRUPTED
    if as_json:
        print(json.dumps(_as_document(outcome), ensure_ascii=False), flush=True)
    else:
        printer.end_line()
        print(f"session: {outcome.session_id}", file=sys.stderr, flush=True)
    if outcome.done_reason in CUT_SHORT:
        print(f"mcp-ollama: the answer is cut short: {CUT_SHORT[outcome.done_reason]}.", file=sys.stderr)
    if outcome.store_error is not None:
        print(f"mcp-ollama: the turn was not stored: {outcome.store_error}", file=sys.stderr)
        return 1
    printer.close()
    return 0


async def _turn(
    settings: Settings, store: Store, message: str, session_id: str | None, printer: _Printer
) -> TurnOutcome | None:
    """The stored turn, or None when Ctrl-C cancelled it."""
    async with open_pool(settings) as pool:
        service = ChatService(settings, pool, store)
        with anyio.CancelScope() as scope, _interrupt_cancels(scope, printer.interrupted):
            return await service.turn(message, session_id=session_id, observer=printer)
    return None


@contextmanager
def _interrupt_cancels(scope: anyio.CancelScope, interrupted: threading.Event) -> Iterator[None]:
    """While inside, SIGINT sets ``interrupted`` and cancels ``scope``; a second one stops at once.

    Cancelling, rather than letting KeyboardInterrupt fly, runs the turn's own cleanup: the
    stream is closed (Ollama stops) and the session's lease is released.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    loop = asyncio.get_running_loop()  # anyio.run's default backend

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        loop.call_soon_threadsafe(scope.cancel)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Printer:
    """The turn's observer: writes each token as it arrives, and keeps Ctrl-C's promise at commit."""

    def __init__(self, out: TextIO | None) -> None:
        self._out = out
        self._at_line_start = True
        self._queued_told = False
        self._thinking_told = False
        self.interrupted = threading.Event()

    def queued(self) -> None:
        if not self._queued_told:
            self._queued_told = True
            print("mcp-ollama: another turn of this session is being written; waiting.", file=sys.stderr)

    def requested(self, prompt_tokens: int) -> None:
        pass

    def waiting(self, text: str) -> None:
        print(f"mcp-ollama: {text}", file=sys.stderr, flush=True)

    def thinking(self, text: str) -> None:
        # The thinking is stored with the turn (`sessions show` has it); stdout keeps the answer alone.
        if not self._thinking_told and self._out is not None:
            self._thinking_told = True
            print("mcp-ollama: thinking…", file=sys.stderr, flush=True)

    def token(self, text: str) -> None:
        if self._out is None:
            return
        text = clean_text(text)  # model output is data: no escape sequences reach the terminal
        if not text:
            return
        try:
            self._out.write(text)
            self._out.flush()
        except BrokenPipeError:  # `ask ... | head`: the reader left; the turn goes on and is stored
            self._out = None
            return
        self._at_line_start = text.endswith("\n")

    async def commit(self, commit: Commit, undo: Undo) -> TurnOutcome:
        # Ctrl-C sets the flag before it schedules the cancellation, so a set flag means the
        # cancellation is on its way: wait for it rather than store a turn the user abandoned.
        if self.interrupted.is_set():
            await anyio.sleep_forever()
        outcome = await commit()
        if self.interrupted.is_set():  # Ctrl-C arrived while the turn was being written
            with anyio.CancelScope(shield=True):
                if outcome.store_error is None:
                    await undo(outcome)
            await anyio.sleep_forever()
        return outcome

    def end_line(self) -> None:
        """End the answer's last line, so that the shell prompt starts on its own."""
        if self._out is not None and not self._at_line_start:
            self.token("\n")

    def close(self) -> None:
        """Keep a reader that left early from costing a 'broken pipe' message at exit."""
        if self._out is None and sys.stdout is not None:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)


def _session_problem(store: Store, session_id: str, *, new: bool) -> str | None:
    """Why ``--session`` (with ``--new`` or not) cannot be used as given; None when it can."""
    validate_session_id(session_id)
    if store.get_session(session_id) is not None:
        if new:
            return f"session {session_id} exists already; leave out --new to continue it, or pick another id."
        return None
    if new:
        return None
    ids = store.session_ids(limit=1000)  # most recently active first
    close = [i for i in ids if i.startswith(session_id)][:3]
    close += [i for i in difflib.get_close_matches(session_id, ids, n=3, cutoff=0.5) if i not in close]
    if close:
        where = f"the closest: {clean_text(', '.join(close[:3]))}; continue one of those"
    else:
        where = "`mcp-ollama sessions list` shows the stored ones; continue one of them"
    return f"there is no session {session_id} ({where}), or add --new to start a new session with this id."


def _as_document(outcome: TurnOutcome) -> dict[str, object]:
    return {
        "session_id": outcome.session_id,
        "model": outcome.model,
        "answer": outcome.answer,
        "done_reason": outcome.done_reason,
        "thinking": outcome.thinking,
        "usage": {
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "total_ms": outcome.total_ms,
        },
    }


def _fail(exc: Exception) -> int:
    print(f"mcp-ollama: {exc}", file=sys.stderr)
    return 1
