"""A fake Ollama: a real HTTP/1.1 server on 127.0.0.1 that speaks Ollama's REST API.

HTTP is written by hand on ``asyncio.start_server`` so that the bytes match what Go's
net/http sends (Content-Length for small bodies, chunked transfer-encoding for streams,
keep-alive) and so that a test can script faults: error statuses, an error line mid-stream,
a cut connection, a malformed line, a server that never answers. The server runs its own
event loop in a daemon thread, records every request, and notices at once when a client
hangs up during a stream, as Ollama does (it stops generating when the request's context
is cancelled). Standard library only, so it also runs as a script:

    python tests/fake_ollama.py [--port N] [--token-delay S] [--load-delay S] [--reply TEXT]
                                [--models NAME,...] [--tokenizer]

Models load as in Ollama: the first chat request for a model that is not loaded waits
``load_delay`` seconds before any response header, later ones do not, until the model's
``keep_alive`` runs out (``/api/ps`` lists what is loaded). A chat request without messages only
loads the model (``done_reason: "load"``), or unloads it with ``keep_alive: 0``.

Models beyond llama3 (ready-made: ``LLAMA3``, ``LLAMA31``, ``QWEN3``, ``GPT_OSS``, ``DEEPSEEK_R1``,
``LLAVA``, ``GEMMA3``; ``READY_MODELS`` by short name) behave as Ollama 0.12 serves them:

- ``/api/show`` gives each model's own ``model_info["<family>.context_length"]`` and ``capabilities``.
- Thinking: ``think: true`` (or a level, gpt-oss only) streams ``message.thinking`` chunks before the
  content; a ``thinks_inline`` model asked nothing about thinking writes ``<think>...</think>`` into
  the content instead (split so that the tags arrive in pieces, see ``inline_think_tokens``).
- ``format``: ``"json"`` or a JSON Schema object makes the default answer JSON text (null and ""
  mean no format); anything else is a 400 ``invalid format: expected "json" or a valid JSON schema``.
- ``messages[].images``: strict base64 strings (Go's 400 ``illegal base64 data at input byte N``
  otherwise), for models with the ``vision`` capability; images sent to another model are a 400
  ``"<model>" does not support images`` (the fake's choice of words, after the thinking one).
- Prompt tokens: with ``FakeOllama(tokenizer=True)`` the prompt is counted as a tokenizer would
  (``count_prompt_tokens``) and the oldest messages that do not fit ``num_ctx`` are dropped
  silently, as Ollama does (``FakeOllama.truncations`` records it). The default, kept for the tests
  written before it, counts words and never truncates.

As a script: ``--models qwen3,llava`` (short or full names, or ``all``) serves ready-made models,
``--tokenizer`` turns on token counting and truncation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gzip
import hashlib
import http
import json
import logging
import math
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from types import TracebackType
from typing import Any

__all__ = [
    "DEEPSEEK_R1",
    "DEFAULT_THINKING",
    "GEMMA3",
    "GPT_OSS",
    "LLAMA3",
    "LLAMA31",
    "LLAVA",
    "QWEN3",
    "READY_MODELS",
    "Behavior",
    "FakeModel",
    "FakeOllama",
    "RecordedRequest",
    "Truncation",
    "count_prompt_tokens",
    "default_reply",
    "fit_context",
    "go_base64_error",
    "inline_think_tokens",
    "keep_alive_seconds",
    "main",
    "parse_go_duration",
    "schema_instance",
    "tokenize",
]

VERSION = "0.12.6"

# Go's net/http sends a Content-Length when the whole body fits its buffer, chunks otherwise.
_GO_BUFFER = 2048
_MAX_HEAD = 64 * 1024
# Deterministic durations for the final counters (nanoseconds).
_LOAD_NS = 2_500_000
_PROMPT_TOKEN_NS = 1_000_000
_EVAL_TOKEN_NS = 10_000_000
_OVERHEAD_NS = 500_000
_DEFAULT_KEEP_ALIVE = 300.0
"""Seconds a model stays loaded after a request that sends no ``keep_alive`` (Ollama's 5m)."""
_FOREVER = (2**63 - 1) / 1e9
"""A negative ``keep_alive``: Go's largest time.Duration, about 292 years."""
_DEFAULT_NUM_CTX = 4096
"""The context length Ollama loads a model with when a request names no ``num_ctx``."""
DEFAULT_THINKING = "Let me think about what the user said."
"""What a thinking model thinks when ``Behavior.thinking`` is None."""
_THINK_LEVELS = ("high", "medium", "low")
_FORMAT_ERROR = 'invalid format: expected "json" or a valid JSON schema'

_log = logging.getLogger("fake_ollama")


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


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    body: dict[str, Any] | None
    """The JSON body if it was a JSON object, else None."""
    connection: int = 0
    """Which TCP connection carried it (1 for the first accepted): shows keep-alive at work."""
    headers: dict[str, str] = field(default_factory=dict)
    """The request's headers, names in lower case."""


@dataclass(frozen=True)
class FakeModel:
    """A pulled model as ``/api/tags``, ``/api/show`` and ``/api/ps`` describe it, and how it
    answers chats (thinking, tokenizer density). The defaults are llama3:8b."""

    name: str = "llama3:8b"
    family: str = "llama"
    """``details.family``, and the architecture: ``model_info`` keys start with it."""
    parameter_size: str = "8.0B"
    quantization_level: str = "Q4_0"
    size: int = 4661224676
    digest: str = "365c0bd3c000a25d28ddbf732fe1c6add414de7275464c4e4d1c3b5fcb5d8ad1"
    modified_at: str = "2024-05-20T10:11:12.123456789+02:00"
    context_length: int = 8192
    """The context the model was trained with: ``model_info["<family>.context_length"]``."""
    capabilities: tuple[str, ...] = ("completion",)
    """What ``/api/show`` lists: "completion", "tools", "thinking", "vision"."""
    chars_per_token: float = 4.0
    """Tokenizer density: characters of message content per prompt token (2.0: a denser tokenizer,
    twice the tokens for the same text). See ``count_prompt_tokens``."""
    thinks_inline: bool = False
    """Writes ``<think>...</think>`` into ``message.content`` when the request sends no ``think``
    (older deepseek-r1); with ``think: true`` it thinks into ``message.thinking`` as any thinking
    model, with ``think: false`` it does not think."""
    think_levels: bool = False
    """Takes ``think`` as "low", "medium" or "high" (gpt-oss). Other thinking models answer a level
    with 400 ``think value "low" is not supported for this model``; true and false suit all."""
    message_tokens: int = 5
    """Prompt tokens the chat template adds around each message."""
    image_tokens: int = 576
    """Prompt tokens each image takes (llava's 24 x 24 patches)."""

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }

    def tag(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": self.modified_at,
            "size": self.size,
            "digest": self.digest,
            "details": self.details(),
        }

    def show(self) -> dict[str, Any]:
        arch = self.family
        return {
            "license": "META LLAMA 3 COMMUNITY LICENSE AGREEMENT",
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {self.name}\n',
            "parameters": 'num_keep                       24\nstop                           "<|eot_id|>"',
            "template": "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n"
            "{{ .System }}<|eot_id|>{{ end }}",
            "details": self.details(),
            "model_info": {
                "general.architecture": arch,
                "general.file_type": 2,
                "general.parameter_count": 8030261248,
                f"{arch}.attention.head_count": 32,
                f"{arch}.block_count": 32,
                f"{arch}.context_length": self.context_length,
                f"{arch}.embedding_length": 4096,
                "tokenizer.ggml.model": "gpt2",
            },
            "capabilities": list(self.capabilities),
            "modified_at": self.modified_at,
        }


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


LLAMA3 = FakeModel()
"""llama3:8b: completion only, 8192 tokens of context."""
LLAMA31 = FakeModel(
    name="llama3.1:8b",
    quantization_level="Q4_K_M",
    size=4920753328,
    digest=_digest("llama3.1:8b"),
    context_length=131072,
    capabilities=("completion", "tools"),
)
"""llama3.1:8b: tools, 128 Ki tokens of context."""
QWEN3 = FakeModel(
    name="qwen3:8b",
    family="qwen3",
    parameter_size="8.2B",
    quantization_level="Q4_K_M",
    size=5225388164,
    digest=_digest("qwen3:8b"),
    context_length=40960,
    capabilities=("completion", "tools", "thinking"),
)
"""qwen3:8b: thinks when asked (``think: true``), no levels; tools."""
GPT_OSS = FakeModel(
    name="gpt-oss:20b",
    family="gptoss",
    parameter_size="20.9B",
    quantization_level="MXFP4",
    size=13780173839,
    digest=_digest("gpt-oss:20b"),
    context_length=131072,
    capabilities=("completion", "tools", "thinking"),
    think_levels=True,
)
"""gpt-oss:20b: thinks, and takes ``think`` levels "low", "medium", "high"; tools."""
DEEPSEEK_R1 = FakeModel(
    name="deepseek-r1:7b",
    family="qwen2",
    parameter_size="7.6B",
    quantization_level="Q4_K_M",
    size=4683075271,
    digest=_digest("deepseek-r1:7b"),
    context_length=131072,
    capabilities=("completion", "thinking"),
    thinks_inline=True,
)
"""deepseek-r1:7b: thinks into the content (``<think>...</think>``) unless the request sends ``think``."""
LLAVA = FakeModel(
    name="llava:7b",
    parameter_size="7B",
    size=4733363377,
    digest=_digest("llava:7b"),
    context_length=4096,
    capabilities=("completion", "vision"),
)
"""llava:7b: images (576 tokens each), 4096 tokens of context."""
GEMMA3 = FakeModel(
    name="gemma3:4b",
    family="gemma3",
    parameter_size="4.3B",
    quantization_level="Q4_K_M",
    size=3338801804,
    digest=_digest("gemma3:4b"),
    context_length=131072,
    capabilities=("completion", "vision"),
    image_tokens=256,
)
"""gemma3:4b: images (256 tokens each), 128 Ki tokens of context."""
READY_MODELS: dict[str, FakeModel] = {
    "llama3": LLAMA3,
    "llama3.1": LLAMA31,
    "qwen3": QWEN3,
    "gpt-oss": GPT_OSS,
    "deepseek-r1": DEEPSEEK_R1,
    "llava": LLAVA,
    "gemma3": GEMMA3,
}
"""The ready-made models by short name (the ``--models`` names of the script)."""


@dataclass(frozen=True)
class Truncation:
    """Ollama dropped the oldest messages of a chat to fit its prompt into the context window (or,
    when even the last message is too long, the runner cut the prompt: ``tokens_after == num_ctx``)."""

    model: str
    """The model the request named."""
    num_ctx: int
    """The window: the request's ``num_ctx`` (4096 if unset), at most the model's ``context_length``."""
    tokens_before: int
    """Prompt tokens of every message sent."""
    tokens_after: int
    """Prompt tokens of what the model saw: the answer's ``prompt_eval_count``."""
    messages_dropped: int
    """How many messages were left out (the oldest non-system ones)."""


def tokenize(text: str) -> list[str]:
    """Word tokens that keep their trailing whitespace: ``"a b"`` -> ``["a ", "b"]``."""
    return re.findall(r"\S+\s*|\s+", text)


def inline_think_tokens(thinking: str) -> list[str]:
    """The content tokens a ``thinks_inline`` model writes before its answer: the text is
    ``"<think>\\n" + thinking + "\\n</think>\\n\\n"``, and each tag arrives in two pieces, as a real
    tokenizer splits it: ``["<th", "ink>\\n", *tokenize(thinking), "\\n</th", "ink>\\n\\n"]``."""
    return ["<th", "ink>\n", *tokenize(thinking), "\n</th", "ink>\n\n"]


def _message_tokens(message: Any, model: FakeModel) -> int:
    if not isinstance(message, dict):
        return 0
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    images = message.get("images")
    pictures = len(images) if isinstance(images, list) else 0
    return math.ceil(len(text) / model.chars_per_token) + model.message_tokens + pictures * model.image_tokens


def count_prompt_tokens(messages: Sequence[Any], model: FakeModel = LLAMA3) -> int:
    """Prompt tokens of these chat messages for ``model``, as the fake's tokenizer counts them:
    for each message ``ceil(len(content) / model.chars_per_token) + model.message_tokens``, plus
    ``model.image_tokens`` per image. Only ``content`` and ``images`` count."""
    return sum(_message_tokens(message, model) for message in messages)


def fit_context(
    messages: Sequence[dict[str, Any]], model: FakeModel, num_ctx: int
) -> tuple[list[dict[str, Any]], int]:
    """What Ollama keeps of a chat for a window of ``num_ctx`` tokens (its ``chatPrompt``): the
    longest run of newest messages that fits, plus every system message before that run; the last
    message always stays. Returns the kept messages and their prompt tokens; when even the last
    message does not fit, the runner cuts the prompt itself, so the count is capped at ``num_ctx``."""
    costs = [_message_tokens(m, model) for m in messages]
    if not messages:
        return [], 0
    system_before = [0]  # system_before[i]: tokens of the system messages in messages[:i]
    for message, cost in zip(messages, costs, strict=True):
        system_before.append(system_before[-1] + (cost if message.get("role") == "system" else 0))
    start = len(messages) - 1
    suffix = costs[start]
    for i in range(start - 1, -1, -1):
        if system_before[i] + suffix + costs[i] > num_ctx:
            break
        suffix += costs[i]
        start = i
    kept = [m for m in messages[:start] if m.get("role") == "system"] + list(messages[start:])
    return kept, min(system_before[start] + suffix, num_ctx)


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


def schema_instance(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A deterministic instance of a JSON Schema, as a model constrained by it might write:
    ``enum`` -> its first value, ``const`` -> it, object -> every property (and every ``required``
    name), string -> "text", integer -> 1, number -> 1.5 (both moved into ``minimum``/``maximum``),
    boolean -> true, null -> null, array -> ``max(1, minItems)`` items; ``anyOf``/``oneOf``/``allOf``
    -> the first choice; local ``$ref`` (``#/$defs/X``) followed."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 32:
        return "text"
    if "$ref" in schema and isinstance(schema["$ref"], str) and schema["$ref"].startswith("#"):
        target: Any = root
        for part in schema["$ref"][1:].split("/"):
            if part:
                target = (
                    target.get(part.replace("~1", "/").replace("~0", "~"))
                    if isinstance(target, dict)
                    else None
                )
        return schema_instance(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        choices = schema.get(key)
        if isinstance(choices, list) and choices:
            return schema_instance(choices[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        value = {name: schema_instance(sub, root, depth + 1) for name, sub in properties.items()}
        required = schema.get("required")
        for name in required if isinstance(required, list) else []:
            if isinstance(name, str) and name not in value:
                value[name] = "text"
        return value
    if kind == "array":
        low = schema.get("minItems")
        count = max(1, low) if isinstance(low, int) else 1
        return [schema_instance(schema.get("items"), root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        number: float = 1 if kind == "integer" else 1.5
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, (int, float)) and number < low:
            number = math.ceil(low) if kind == "integer" else low
        if isinstance(high, (int, float)) and number > high:
            number = math.floor(high) if kind == "integer" else high
        return number
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "text"


def _format_reply(fmt: Any, echo: str) -> str:
    """The JSON text a model writes under ``format``: ``{"answer": echo}`` for "json", an
    instance of the schema otherwise (spaces after separators, so that it streams in pieces)."""
    value = {"answer": echo} if fmt == "json" else schema_instance(fmt)
    return json.dumps(value, ensure_ascii=False)


_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def go_base64_error(text: str) -> int | None:
    """Where Go's ``base64.StdEncoding.Decode`` (which ``encoding/json`` uses for ``[]byte``, so
    for ``images``) fails on ``text``: the N of ``illegal base64 data at input byte N``, or None if
    it decodes. Padding is required, CR and LF are skipped, the bits after the last byte are not
    checked (the encoding is not ``Strict``)."""
    src = text.encode()
    si = 0
    while si < len(src):
        j = 0
        while j < 4:
            if si == len(src):
                if j == 0:
                    return None
                return si - j  # padding is required, a lone last character never decodes
            char = src[si]
            si += 1
            if char in _B64_ALPHABET:
                j += 1
                continue
            if char in b"\r\n":
                continue
            if char != ord("=") or j < 2:
                return si - 1
            if j == 2:  # "==" expected, the first "=" is consumed
                while si < len(src) and src[si] in b"\r\n":
                    si += 1
                if si == len(src):
                    return len(src)
                if src[si] != ord("="):
                    return si - 1
                si += 1
            while si < len(src) and src[si] in b"\r\n":
                si += 1
            return si if si < len(src) else None
    return None


class FakeOllama:
    """A fake Ollama on 127.0.0.1, served from a background thread.

    ``with FakeOllama() as fake:`` starts it; ``fake.url`` is its address. Script chat
    answers with ``fake.default = Behavior(...)`` or ``fake.enqueue(Behavior(...))`` (the
    next chat requests, first in first out), and inspect ``requests``, ``chat_requests``,
    ``hangups`` and ``active_streams``. Every method may be called from any thread.

    Model loading: ``load_delay`` is how long loading a model takes; every load is recorded
    in ``loads``. Chat requests without messages (preloads and unloads) never take a scripted
    ``Behavior``: those script generation only.

    Prompt tokens: with ``tokenizer=True`` (the default; ``reset()`` restores the constructor's
    value) a chat's ``prompt_eval_count`` is ``count_prompt_tokens`` of its messages for the model
    named, and a prompt longer than the request's ``num_ctx`` (4096 if unset, at most the model's
    ``context_length``) loses its oldest non-system messages, silently, as in Ollama
    (``fit_context``): the answer's counts and the echo reply reflect what was kept, and
    ``truncations`` records it. With ``tokenizer=False`` ``prompt_eval_count`` is the number of
    words in the messages and nothing is ever dropped.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        models: Sequence[FakeModel] | None = None,
        reply: str | None = None,
        token_delay: float = 0.0,
        load_delay: float = 0.0,
        version: str = VERSION,
        tokenizer: bool = True,
    ) -> None:
        self.models: list[FakeModel] = list(models) if models is not None else [FakeModel()]
        self.version = version
        self.tokenizer = tokenizer
        """Count prompt tokens as the model's tokenizer would and truncate at ``num_ctx``
        (see the class docstring); read at each chat request."""
        self._initial_tokenizer = tokenizer
        self._truncations: list[Truncation] = []
        self.default = Behavior(reply=reply, token_delay=token_delay)
        self._load_delay = load_delay
        self._initial_load_delay = load_delay
        self._load_delay_changed: asyncio.Event | None = None  # server-thread only
        self._initial_default = dataclasses.replace(self.default)
        self._requested_port = port
        self._port: int | None = None
        self._cond = threading.Condition()
        self._queue: deque[Behavior] = deque()
        self._requests: list[RecordedRequest] = []
        self._hangups = 0
        self._active = 0
        self._connections = 0
        self._connections_at_reset = 0
        self._epoch = 0  # bumped by reset(): late events of earlier tests are not recorded
        self._loaded: dict[str, _Loaded] = {}
        self._loads: list[str] = []
        self._in_use: dict[str, int] = {}  # chat requests using each model now (not reset)
        self._load_locks: dict[str, asyncio.Lock] = {}  # server-thread only
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> FakeOllama:
        """Start serving; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("FakeOllama is already running")
        ready = threading.Event()
        self._failure = None
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-ollama", daemon=True)
        self._thread.start()
        ready.wait()
        if self._failure is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("FakeOllama failed to start") from self._failure
        return self

    def stop(self) -> None:
        """Stop serving: close the listener and every connection, end the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = None
        self._loop = None
        failure, self._failure = self._failure, None
        if failure is not None:
            raise RuntimeError("FakeOllama crashed") from failure

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeOllama is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- scripting and records --------------------------------------------------------------

    def enqueue(self, *behaviors: Behavior) -> None:
        """Script the next chat requests, one behaviour each, in order."""
        with self._cond:
            self._queue.extend(behaviors)

    def reset(self) -> None:
        """Forget records (truncations included) and scripted behaviours, unload every model;
        restore the constructor's default behaviour, load delay and ``tokenizer``."""
        with self._cond:
            self._epoch += 1
            self._queue.clear()
            self._requests.clear()
            self._truncations.clear()
            self.tokenizer = self._initial_tokenizer
            self._hangups = 0
            self._connections_at_reset = self._connections
            self._loaded.clear()
            self._loads.clear()
            self.default = dataclasses.replace(self._initial_default)
            self._cond.notify_all()
        self.load_delay = self._initial_load_delay

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of every ``POST /api/chat``, in arrival order, preloads and unloads
        (no ``messages``) included."""
        with self._cond:
            return [
                r.body
                for r in self._requests
                if r.method == "POST" and r.path == "/api/chat" and r.body is not None
            ]

    @property
    def truncations(self) -> list[Truncation]:
        """Every chat whose oldest messages were dropped to fit ``num_ctx`` (``tokenizer`` mode
        only), in order; ``reset()`` clears them."""
        with self._cond:
            return list(self._truncations)

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        """Prompt tokens of a chat request body before any truncation: ``count_prompt_tokens`` of
        its messages for the model it names (``LLAMA3``'s tokenizer if the fake has no such model)."""
        name = body.get("model")
        model = (self._find_model(name) if isinstance(name, str) else None) or LLAMA3
        return count_prompt_tokens(body.get("messages") or [], model)

    @property
    def load_delay(self) -> float:
        """Seconds loading a model takes: a chat request for a model that is not loaded waits
        this long, before any response header. A load in progress ends ``load_delay`` after it
        began, so changing it affects loads under way: set it high, watch a request wait, then
        set it to 0 to let the load finish at once."""
        with self._cond:
            return self._load_delay

    @load_delay.setter
    def load_delay(self, seconds: float) -> None:
        with self._cond:
            self._load_delay = seconds
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(self._wake_loads)

    def _wake_loads(self) -> None:
        """Tell loads under way that ``load_delay`` changed (server thread)."""
        if self._load_delay_changed is not None:
            self._load_delay_changed.set()
        self._load_delay_changed = asyncio.Event()

    @property
    def loads(self) -> list[str]:
        """The name of each model loaded, once per load, in order (a reload counts again)."""
        with self._cond:
            return list(self._loads)

    @property
    def loaded_models(self) -> list[str]:
        """The names of the models loaded right now, as ``/api/ps`` lists them."""
        return [entry["name"] for entry in self._running()]

    @property
    def hangups(self) -> int:
        """Chat requests whose client went away before the answer was complete."""
        with self._cond:
            return self._hangups

    @property
    def active_streams(self) -> int:
        """Chat requests being answered right now."""
        with self._cond:
            return self._active

    @property
    def connections(self) -> int:
        """TCP connections accepted since start (or since the last reset)."""
        with self._cond:
            return self._connections - self._connections_at_reset

    def wait_for_hangup(self, timeout: float = 5.0, count: int = 1) -> bool:
        """Block until at least ``count`` hang-ups are recorded; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._hangups >= count, timeout)

    def wait_for_active(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` chat requests are being answered; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active >= count, timeout)

    def wait_for_loads(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` model loads are recorded; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._loads) >= count, timeout)

    def wait_for_idle(self, timeout: float = 5.0) -> bool:
        """Block until no chat request is being answered; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active == 0, timeout)

    # --- the server thread ------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(ready))
        except BaseException as exc:  # surfaced by start() or stop(), not as a thread crash
            self._failure = exc
        finally:
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._load_locks = {}  # asyncio locks and events belong to one event loop
        self._load_delay_changed = asyncio.Event()
        server = await asyncio.start_server(self._on_connection, "127.0.0.1", self._requested_port)
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            handlers = list(self._handlers)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        with self._cond:
            self._connections += 1
            number = self._connections
        conn = _Connection(reader, writer, number)
        try:
            while await self._serve_one(conn):
                pass
        except _ClientGone:
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve_one(self, conn: _Connection) -> bool:
        """Answer one request; True if the connection stays open for another."""
        request = await conn.read_request()
        if request is None:
            return False
        if isinstance(request, _BadRequest):
            await conn.send(400, b"400 Bad Request", "text/plain; charset=utf-8", keep_alive=False)
            return False
        body = request.json_object()
        with self._cond:
            self._requests.append(
                RecordedRequest(request.method, request.path, body, conn.number, dict(request.headers))
            )
        keep_alive = request.keep_alive
        route = (request.method, request.path)
        if route in (("GET", "/"), ("HEAD", "/")):
            text = b"" if request.method == "HEAD" else b"Ollama is running"
            await conn.send(200, text, "text/plain; charset=utf-8", keep_alive=keep_alive)
        elif route == ("GET", "/api/version"):
            await conn.send_json(200, {"version": self.version}, keep_alive=keep_alive)
        elif route == ("GET", "/api/tags"):
            await conn.send_json(200, {"models": [m.tag() for m in self.models]}, keep_alive=keep_alive)
        elif route == ("GET", "/api/ps"):
            await conn.send_json(200, {"models": self._running()}, keep_alive=keep_alive)
        elif route == ("POST", "/api/show"):
            await self._show(conn, request, keep_alive)
        elif route == ("POST", "/api/chat"):
            return await self._chat(conn, request) and keep_alive
        else:  # what gin answers for an unknown route or method
            await conn.send(404, b"404 page not found", "text/plain", keep_alive=keep_alive)
        return keep_alive

    # --- endpoints --------------------------------------------------------------------------

    def _find_model(self, name: str) -> FakeModel | None:
        wanted = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
        return next((m for m in self.models if m.name in (name, wanted)), None)

    def _running(self) -> list[dict[str, Any]]:
        with self._cond:
            loaded = {name: self._loaded[name] for name in list(self._loaded) if self._is_loaded(name)}
        running = []
        for model in self.models:
            if model.name in loaded:
                entry = loaded[model.name]
                expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.expires))
                running.append(
                    {
                        **model.tag(),
                        "expires_at": expires,
                        "size_vram": model.size,
                        "context_length": entry.num_ctx,
                    }
                )
        return running

    def _is_loaded(self, name: str, num_ctx: int | None = None) -> bool:
        """Whether ``name`` is loaded (with ``num_ctx``, if given); call with ``_cond`` held."""
        entry = self._loaded.get(name)
        if entry is None or (num_ctx is not None and entry.num_ctx != num_ctx):
            return False
        if entry.expires > time.time() or self._in_use.get(name, 0) > 0:
            return True
        del self._loaded[name]  # its keep_alive ran out while nobody used it
        return False

    async def _load(self, name: str, num_ctx: int, watcher: asyncio.Task[None]) -> int | None:
        """Load the model unless it is loaded with this context length: wait ``load_delay``,
        hang-up aware, one load of a model at a time (a request that queued behind a load of
        the same model finds it loaded). Nanoseconds waited, or None if it was loaded already."""
        with self._cond:
            if self._is_loaded(name, num_ctx):
                return None
        started = time.monotonic_ns()
        lock = self._load_locks.setdefault(name, asyncio.Lock())
        await _acquire(lock, watcher)
        try:
            with self._cond:
                loaded = self._is_loaded(name, num_ctx)
                epoch = self._epoch
            if not loaded:
                # Ollama aborts a load when the client that asked for it goes away.
                await self._wait_for_load(time.monotonic(), watcher)
                with self._cond:
                    if epoch == self._epoch:
                        self._loaded[name] = _Loaded(time.time() + _DEFAULT_KEEP_ALIVE, num_ctx)
                        self._loads.append(name)
                        self._cond.notify_all()
        finally:
            lock.release()
        return max(time.monotonic_ns() - started, 1)

    async def _wait_for_load(self, began: float, watcher: asyncio.Task[None]) -> None:
        """Sleep until ``load_delay`` after ``began`` (re-read whenever it changes), hang-up aware."""
        while True:
            changed = self._load_delay_changed
            assert changed is not None
            left = began + self.load_delay - time.monotonic()
            if left <= 0:
                break
            waiter = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({watcher, waiter}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if watcher.done():
                raise _ClientGone
        if watcher.done():
            raise _ClientGone

    def _use(self, name: str, epoch: int, keep_alive: float, delta: int) -> None:
        """Count a request in (+1) or out (-1) of the model; the keep_alive clock restarts."""
        with self._cond:
            self._in_use[name] = self._in_use.get(name, 0) + delta
            entry = self._loaded.get(name)
            if entry is not None and epoch == self._epoch:
                entry.expires = time.time() + keep_alive

    async def _show(self, conn: _Connection, request: _Request, keep_alive: bool) -> None:
        body = request.json_object() or {}
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            await conn.send_json(400, {"error": "model is required"}, keep_alive=keep_alive)
            return
        model = self._find_model(name)
        if model is None:
            await conn.send_json(404, {"error": f"model '{name}' not found"}, keep_alive=keep_alive)
            return
        await conn.send_json(200, model.show(), keep_alive=keep_alive)

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
                if body.get("stream", True) is False:
                    return await self._answer_whole(conn, answer, watcher, keep_alive)
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

    async def _answer_stream(self, conn: _Connection, answer: _Answer, watcher: asyncio.Task[None]) -> bool:
        behavior, tokens = answer.behavior, answer.tokens
        stream = _ChunkedWriter(conn)
        for index, thought in enumerate(answer.thinking):
            await _pause(behavior.first_token_delay if index == 0 else behavior.token_delay, watcher)
            await stream.line(answer.chunk("", thinking=thought))
        thought_before = bool(answer.thinking)
        for index in range(len(tokens) + 1):
            if index < len(tokens) or (index == 0 and not thought_before):
                delay = (
                    behavior.first_token_delay if index == 0 and not thought_before else behavior.token_delay
                )
                await _pause(delay, watcher)
            if index == behavior.cut_after:
                await stream.start()
                await conn.cut()
                return False
            if index == behavior.error_after:
                await stream.line({"error": behavior.error})
                await stream.finish()
                return True
            if index == behavior.end_after:
                await stream.finish()
                return True
            if index == behavior.malformed_after:
                await stream.raw_line(_go_json(answer.chunk(tokens[0] if tokens else ""))[:40])
            if index < len(tokens):
                await stream.line(answer.chunk(tokens[index]))
        await stream.line(answer.final())
        await stream.finish()
        return True

    async def _answer_whole(
        self, conn: _Connection, answer: _Answer, watcher: asyncio.Task[None], keep_alive: bool
    ) -> bool:
        behavior, tokens = answer.behavior, answer.tokens
        chunks = len(answer.thinking) + len(tokens)
        await _pause(behavior.first_token_delay + behavior.token_delay * max(chunks - 1, 0), watcher)
        if behavior.cut_after is not None:
            await conn.cut()
            return False
        if behavior.end_after is not None:
            await conn.send(200, b"", "application/json; charset=utf-8", keep_alive=keep_alive)
        elif behavior.error_after is not None:
            await conn.send_json(500, {"error": behavior.error}, keep_alive=keep_alive)
        elif behavior.malformed_after is not None:
            await conn.send(
                200, b'{"model": "trunc', "application/json; charset=utf-8", keep_alive=keep_alive
            )
        else:
            whole = answer.final(content="".join(tokens), thinking="".join(answer.thinking))
            await conn.send_json(200, whole, keep_alive=keep_alive)
        return True


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


@dataclass
class _Loaded:
    """A loaded model: when its keep_alive runs out (wall clock), and its context length."""

    expires: float
    num_ctx: int


def _go_kind(value: Any) -> str:
    """The JSON kind Go names in an unmarshal error."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _check_images(messages: Sequence[dict[str, Any]]) -> str | None:
    """Go's error binding ``messages[].images`` (a list of base64 strings), or None."""
    for message in messages:
        images = message.get("images")
        if images is None:
            continue
        if not isinstance(images, list):
            return (
                f"json: cannot unmarshal {_go_kind(images)} into Go struct field "
                "Message.messages.images of type []api.ImageData"
            )
        for image in images:
            if image is None:
                continue
            if not isinstance(image, str):
                return (
                    f"json: cannot unmarshal {_go_kind(image)} into Go struct field "
                    "Message.messages.images of type api.ImageData"
                )
            at = go_base64_error(image)
            if at is not None:
                return f"illegal base64 data at input byte {at}"
    return None


def _load_answer(model: str, done_reason: str) -> dict[str, Any]:
    """Ollama's whole answer to a chat request without messages (always JSON, never streamed)."""
    return {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": ""},
        "done_reason": done_reason,
        "done": True,
    }


_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (``time.ParseDuration``): "5m", "1h30m", "-1s", "0".

    Raises ValueError with Go's own message for anything Go rejects (``"10"`` lacks a unit)."""
    quoted = json.dumps(text, ensure_ascii=False)
    rest, sign = text, 1.0
    if rest[:1] in ("-", "+"):
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while rest:
        match = _GO_DURATION_PART.match(rest)
        assert match is not None  # every group may be empty
        whole, fraction, unit = match.groups()
        if not whole and not fraction:
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _GO_UNITS:
            raise ValueError(
                f"time: unknown unit {json.dumps(unit, ensure_ascii=False)} in duration {quoted}"
            )
        total += float(f"{whole or 0}.{fraction or 0}") * _GO_UNITS[unit]
        rest = rest[match.end() :]
    return sign * total


def keep_alive_seconds(value: Any) -> float | str:
    """How long a chat request keeps its model loaded afterwards, as Ollama's ``api.Duration``
    reads ``keep_alive``: absent or null = 5 minutes, a number of seconds or a Go duration
    string, negative = forever. A value Ollama rejects gives its error text (a str) instead."""
    if value is None:
        return _DEFAULT_KEEP_ALIVE
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        go_type = {bool: "bool", list: "[]interface {}", dict: "map[string]interface {}"}
        return f"Unsupported type: '{go_type.get(type(value), type(value).__name__)}'"
    if isinstance(value, str):
        try:
            seconds = parse_go_duration(value)
        except ValueError as exc:
            return str(exc)
    else:
        seconds = float(value)
    return _FOREVER if seconds < 0 else seconds


# --- HTTP/1.1 by hand ---------------------------------------------------------------------------


class _ClientGone(Exception):
    """The client closed its side, or a write to it failed."""


class _BadRequest:
    """A request the fake cannot parse; answered with 400 and a closed connection."""


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"

    def json_object(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.body) if self.body.strip() else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


class _Connection:
    """One accepted TCP connection: a buffered reader that can watch for EOF, and a writer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        self.reader = reader
        self.writer = writer
        self.number = number
        self._buffer = bytearray()
        self.eof = False

    async def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self._buffer += data
        return True

    async def wait_for_hangup(self) -> None:
        """Return when the client closes its side; keeps (pipelined) bytes for later."""
        while await self._fill():
            pass

    async def _read_until(self, separator: bytes) -> bytes | None:
        while (end := self._buffer.find(separator)) < 0:
            if len(self._buffer) > _MAX_HEAD or not await self._fill():
                return None
        data = bytes(self._buffer[:end])
        del self._buffer[: end + len(separator)]
        return data

    async def _read_exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not await self._fill():
                return None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def read_request(self) -> _Request | _BadRequest | None:
        """The next request, None if the client closed the connection between requests."""
        head = await self._read_until(b"\r\n\r\n")
        if head is None:
            return _BadRequest() if self._buffer.strip() else None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _BadRequest()
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                return _BadRequest()
            headers[name.strip().lower()] = value.strip()
        request = _Request(parts[0], parts[1].split("?", 1)[0], parts[2], headers)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked_body()
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                return _BadRequest()
            body = await self._read_exactly(length)
        if body is None:
            return _BadRequest()
        request.body = body
        return request

    async def _read_chunked_body(self) -> bytes | None:
        body = bytearray()
        while True:
            size_line = await self._read_until(b"\r\n")
            if size_line is None:
                return None
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while await self._read_until(b"\r\n") not in (b"", None):
                    pass  # trailers
                return bytes(body)
            data = await self._read_exactly(size + 2)
            if data is None:
                return None
            body += data[:-2]

    async def write(self, data: bytes) -> None:
        if self.writer.transport.is_closing():
            raise _ClientGone
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _ClientGone from exc

    @staticmethod
    def head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = f"status code {status}"
        lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers), "", ""]
        return "\r\n".join(lines).encode("latin-1")

    async def send(self, status: int, body: bytes, content_type: str, *, keep_alive: bool) -> None:
        """A whole response, framed the way Go frames it."""
        headers = [("Content-Type", content_type), ("Date", formatdate(usegmt=True))]
        if not keep_alive:
            headers.append(("Connection", "close"))
        if len(body) < _GO_BUFFER:
            headers.append(("Content-Length", str(len(body))))
            await self.write(self.head(status, headers) + body)
        else:
            headers.append(("Transfer-Encoding", "chunked"))
            pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
            await self.write(self.head(status, headers) + b"".join(map(_chunk, pieces)) + b"0\r\n\r\n")

    async def send_json(self, status: int, obj: Any, *, keep_alive: bool) -> None:
        await self.send(status, _go_json(obj), "application/json; charset=utf-8", keep_alive=keep_alive)

    async def cut(self) -> None:
        """Abort the TCP connection once what was written has left."""
        transport = self.writer.transport
        for _ in range(100):
            if transport.is_closing() or not transport.get_write_buffer_size():
                break
            await asyncio.sleep(0.001)
        transport.abort()


class _ChunkedWriter:
    """A streamed NDJSON response; the headers leave with the first line, as in Ollama."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._started = False

    async def start(self, first: bytes = b"") -> None:
        if self._started:
            if first:
                await self._conn.write(first)
            return
        self._started = True
        headers = [
            ("Content-Type", "application/x-ndjson"),
            ("Date", formatdate(usegmt=True)),
            ("Transfer-Encoding", "chunked"),
        ]
        await self._conn.write(self._conn.head(200, headers) + first)

    async def line(self, obj: Any) -> None:
        await self.start(_chunk(_go_json(obj) + b"\n"))

    async def raw_line(self, data: bytes) -> None:
        await self.start(_chunk(data + b"\n"))

    async def finish(self) -> None:
        await self.start()
        await self._conn.write(b"0\r\n\r\n")


async def _acquire(lock: asyncio.Lock, watcher: asyncio.Task[None]) -> None:
    """Take ``lock``, but give up at once if the client hangs up meanwhile."""
    acquiring = asyncio.ensure_future(lock.acquire())
    try:
        await asyncio.wait({acquiring, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not acquiring.done():
            acquiring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquiring
    if acquiring.cancelled() or watcher.done():
        if not acquiring.cancelled() and acquiring.exception() is None:
            lock.release()
        raise _ClientGone


async def _pause(delay: float, watcher: asyncio.Task[None]) -> None:
    """Sleep, but give up at once if the client hangs up meanwhile."""
    if delay > 0 and not watcher.done():
        await asyncio.wait({watcher}, timeout=delay)
    if watcher.done():
        raise _ClientGone


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _go_json(obj: Any) -> bytes:
    """JSON as Go's ``json.Marshal`` writes it: compact, UTF-8, HTML characters escaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    # A lone surrogate cannot be UTF-8: a hostile server sends it as a JSON escape, which is legal.
    return _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text).encode()


def _now() -> str:
    """The current UTC time as Go's RFC 3339 with nanoseconds."""
    now = time.time_ns()
    seconds, nanos = divmod(now, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


# --- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake Ollama on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed tokens")
    parser.add_argument("--load-delay", type=float, default=0.0, help="seconds loading a model takes")
    parser.add_argument("--reply", default=None, help="answer every chat with this text")
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated ready-made models to serve, by short or full name "
        f"({', '.join(READY_MODELS)}), or 'all' (default: llama3 only)",
    )
    parser.add_argument(
        "--tokenizer",
        action="store_true",
        help="count prompt tokens as a tokenizer would and drop what does not fit num_ctx",
    )
    args = parser.parse_args(argv)
    models: list[FakeModel] | None = None
    if args.models is not None:
        by_name = {**READY_MODELS, **{m.name: m for m in READY_MODELS.values()}}
        wanted = [n.strip() for n in args.models.split(",") if n.strip()]
        if wanted == ["all"]:
            wanted = list(READY_MODELS)
        unknown = [n for n in wanted if n not in by_name]
        if unknown or not wanted:
            parser.error(
                f"unknown model(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(READY_MODELS)}"
            )
        models = list(dict.fromkeys(by_name[n] for n in wanted))
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)

    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with FakeOllama(
        port=args.port,
        models=models,
        reply=args.reply,
        token_delay=args.token_delay,
        load_delay=args.load_delay,
        tokenizer=args.tokenizer,
    ) as fake:
        print(f"listening on {fake.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
