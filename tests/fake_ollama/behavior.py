"""How the fake answers a chat: the script (``Behavior``: faults, delays, thinking) and the
deterministic answer it makes (``_Answer``: the tokens, the thinking stream, ``num_predict``, counters)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .inputs import _format_reply
from .models import LLAMA3, FakeModel, tokenize
from .wire import _now

# Deterministic durations for the final counters (nanoseconds).
_LOAD_NS = 2_500_000
_PROMPT_TOKEN_NS = 1_000_000
_EVAL_TOKEN_NS = 10_000_000
_OVERHEAD_NS = 500_000
DEFAULT_THINKING = "Let me think about what the user said."
"""What a thinking model thinks when ``Behavior.thinking`` is None."""


@dataclass
class Behavior:
    """How the fake answers one ``/api/chat`` request.

    Faults are counted in tokens: ``error_after=2`` sends two tokens, then the error line.
    """

    reply: str | None = None
    """Answer text, split into word tokens; None means the default echo answer (``default_reply``),
    or, when the request has a ``format``, JSON text: ``{"answer": <echo>}`` for "json", else
    ``schema_instance`` of the schema. A scripted ``reply`` is sent as it is, JSON or not."""
    tokens: list[str] | None = None
    """Exact tokens to stream (overrides ``token_count`` and ``reply``)."""
    token_count: int | None = None
    """Stream this many generated tokens, ``"tok0 "``, ``"tok1 "``, ... (overrides ``reply``).
    Nothing is built up front, so with ``token_delay`` it makes a long, slow answer cheaply."""
    token_delay: float = 0.0
    """Seconds to wait before each token after the first."""
    first_token_delay: float = 0.0
    """Seconds to wait before the first token (and before the response headers), after any
    model load (``FakeOllama.load_delay``)."""
    status: int | None = None
    """Answer with this HTTP status and ``{"error": error}`` instead of generating."""
    error: str = "an error occurred in the fake model runner"
    """Error text for ``status`` and ``error_after``."""
    error_after: int | None = None
    """After N tokens, send ``{"error": error}`` as a line (status 200) and end the stream."""
    cut_after: int | None = None
    """After N tokens, abort the TCP connection without a final chunk."""
    malformed_after: int | None = None
    """After N tokens, send a line that is not JSON, then carry on."""
    end_after: int | None = None
    """After N tokens, end the body cleanly but without the final ``done`` chunk."""
    hang: bool = False
    """Read the request and send nothing until the client hangs up or the server stops."""
    final_fields: dict[str, Any] | None = None
    """Fields to set in the final ``done`` chunk as given (absurd counters, say)."""
    gzip_blank_mib: int | None = None
    """Answer with a gzip body that inflates to this many MiB of blank lines, asked for or not
    (a misbehaving proxy in front of Ollama): a decompression bomb."""
    redirect_to: str | None = None
    """Answer ``307 Temporary Redirect`` to this location (a proxy pointing somewhere else)."""
    thinking: str | None = None
    """What a thinking model thinks, split into word tokens like ``reply``; None means
    ``DEFAULT_THINKING``, "" thinks nothing. Used only when the request asks for thinking (``think``
    true or a level, on a model with the ``thinking`` capability: streamed as ``message.thinking``
    chunks before the content) or, on a ``thinks_inline`` model, when it sends no ``think`` (written
    into the content as ``<think>...</think>``).

    Faults (``error_after``, ``cut_after``, ``malformed_after``, ``end_after``) count content tokens
    only: every thinking chunk goes out before content token 0, so ``cut_after=0`` cuts right after
    the thinking. Inline ``<think>`` tokens are content tokens and do count. ``first_token_delay``
    comes before the first chunk of either kind, ``token_delay`` before each later one. As in
    Ollama, ``num_predict`` and ``eval_count`` count thinking and content tokens together, thinking
    first: a small ``num_predict`` can end the answer (``done_reason: "length"``) before any content."""


def inline_think_tokens(thinking: str) -> list[str]:
    """The content tokens a ``thinks_inline`` model writes before its answer: the text is
    ``"<think>\\n" + thinking + "\\n</think>\\n\\n"``, and each tag arrives in two pieces, as a real
    tokenizer splits it: ``["<th", "ink>\\n", *tokenize(thinking), "\\n</th", "ink>\\n\\n"]``."""
    return ["<th", "ink>\n", *tokenize(thinking), "\n</th", "ink>\n\n"]


def default_reply(messages: Sequence[Any]) -> str:
    """The echo answer: what the user said last and how much history came with it, and how many
    images came with the last user message, if any (`` I see 2 images.``)."""
    last_user = ""
    pictures = 0
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = str(message.get("content", ""))
            images = message.get("images")
            pictures = len(images) if isinstance(images, list) else 0
            break
    earlier = sum(1 for m in messages[:-1] if not (isinstance(m, dict) and m.get("role") == "system"))
    seen = f" I see {pictures} image{'' if pictures == 1 else 's'}." if pictures else ""
    return f"You said: {last_user}. I have seen {earlier} earlier messages.{seen}"


class _Answer:
    """The deterministic answer to one chat request, and its NDJSON objects."""

    def __init__(
        self,
        body: dict[str, Any],
        behavior: Behavior,
        load_ns: int | None = None,
        model: FakeModel = LLAMA3,
        messages: list[dict[str, Any]] | None = None,
        prompt_eval_count: int | None = None,
    ) -> None:
        self.model: str = body["model"]
        self.behavior = behavior
        self.load_ns = _LOAD_NS if load_ns is None else load_ns
        if messages is None:
            messages = body.get("messages") or []
        tokens: Sequence[str]
        if behavior.tokens is not None:
            tokens = list(behavior.tokens)
        elif behavior.token_count is not None:
            tokens = _CountedTokens(max(behavior.token_count, 0))
        elif behavior.reply is not None:
            tokens = tokenize(behavior.reply)
        elif body.get("format") not in (None, ""):
            tokens = tokenize(_format_reply(body["format"], default_reply(messages)))
        else:
            tokens = tokenize(default_reply(messages))
        think = body.get("think")
        thought = DEFAULT_THINKING if behavior.thinking is None else behavior.thinking
        thinking: list[str] = []
        if "thinking" in model.capabilities and (think is True or isinstance(think, str)):
            thinking = tokenize(thought)
        elif model.thinks_inline and think is None:
            tokens = _Joined(inline_think_tokens(thought), tokens)
        self.done_reason = "stop"
        options = body.get("options") or {}
        limit = options.get("num_predict") if isinstance(options, dict) else None
        # num_predict counts every generated token, the thinking first.
        if isinstance(limit, int) and limit >= 0 and limit < len(thinking) + len(tokens):
            thinking = thinking[:limit]
            tokens = tokens[: limit - len(thinking)]
            self.done_reason = "length"
        self.thinking = thinking
        self.tokens = tokens
        if prompt_eval_count is None:
            prompt_eval_count = sum(len(str(m.get("content", "")).split()) for m in messages)
        self.prompt_eval_count = prompt_eval_count

    def chunk(self, token: str, thinking: str | None = None) -> dict[str, Any]:
        message = {"role": "assistant", "content": token}
        if thinking:
            message["thinking"] = thinking
        return {
            "model": self.model,
            "created_at": _now(),
            "message": message,
            "done": False,
        }

    def final(self, content: str = "", thinking: str = "") -> dict[str, Any]:
        generated = len(self.thinking) + len(self.tokens)
        eval_ns = generated * (int(self.behavior.token_delay * 1e9) or _EVAL_TOKEN_NS)
        prompt_ns = self.prompt_eval_count * _PROMPT_TOKEN_NS
        counters = {
            "total_duration": self.load_ns + prompt_ns + eval_ns + _OVERHEAD_NS,
            "load_duration": self.load_ns,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": prompt_ns,
            "eval_count": generated,
            "eval_duration": eval_ns,
        }
        message = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        return {
            "model": self.model,
            "created_at": _now(),
            "message": message,
            "done_reason": self.done_reason,
            "done": True,
            **{key: value for key, value in counters.items() if value},  # Go's omitempty
            **(self.behavior.final_fields or {}),
        }


class _Joined(Sequence[str]):
    """``head`` then ``tail`` as one sequence, without building ``tail`` (it may be huge)."""

    def __init__(self, head: Sequence[str], tail: Sequence[str]) -> None:
        self._head = head
        self._tail = tail

    def __len__(self) -> int:
        return len(self._head) + len(self._tail)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if start == 0 and step == 1:
                if stop <= len(self._head):
                    return list(self._head[:stop])
                return _Joined(self._head, self._tail[: stop - len(self._head)])
            return [self[i] for i in range(start, stop, step)]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        head = len(self._head)
        return self._head[index] if index < head else self._tail[index - head]

    def __iter__(self) -> Iterator[str]:
        yield from self._head
        yield from self._tail


class _CountedTokens(Sequence[str]):
    """``"tok0 "``, ``"tok1 "``, ... ``count`` of them, made on demand."""

    def __init__(self, count: int) -> None:
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            if start == 0 and step == 1:
                return _CountedTokens(stop)
            return [self[i] for i in range(start, stop, step)]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        return f"tok{index} "

    def __iter__(self) -> Iterator[str]:
        return (f"tok{i} " for i in range(self._count))
