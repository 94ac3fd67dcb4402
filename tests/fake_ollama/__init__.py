"""A fake Ollama: a real HTTP/1.1 server on 127.0.0.1 that speaks Ollama's REST API.

HTTP is written by hand on ``asyncio.start_server`` so that the bytes match what Go's
net/http sends (Content-Length for small bodies, chunked transfer-encoding for streams,
keep-alive) and so that a test can script faults: error statuses, an error line mid-stream,
a cut connection, a malformed line, a server that never answers. The server runs its own
event loop in a daemon thread, records every request, and notices at once when a client
hangs up during a stream, as Ollama does (it stops generating when the request's context
is cancelled). Standard library only, so it also runs as a script, from the repository root:

    python -m tests.fake_ollama [--port N] [--token-delay S] [--load-delay S] [--reply TEXT]
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

Parallelism as in Ollama: ``FakeOllama(num_parallel=N)`` lets N chats per model generate at once
(``OLLAMA_NUM_PARALLEL``, a semaphore per loaded model); the others wait, unanswered. Whatever the
limit, ``peak_generating`` (by model), ``peak_models`` and ``generating()`` record what ran at once.
``HungServer`` (accepts, never answers) and ``BlackHole`` (never accepts) stand in for worse servers.

As a script: ``--models qwen3,llava`` (short or full names, or ``all``) serves ready-made models,
``--tokenizer`` turns on token counting and truncation.

The modules: ``server`` (``FakeOllama``: its thread, life cycle and routes), built up from ``state``,
``loading`` (``load_delay``, ``keep_alive``, ``/api/ps``, ``/api/show``), ``records`` (``enqueue``,
``reset``, what was received) and ``chat`` (``/api/chat``), one base class each; ``wire`` (HTTP/1.1
and JSON as Go writes them) and ``streaming`` (NDJSON answers); ``models`` (the ready-made models and
the tokenizer); ``behavior`` (``Behavior``: faults, delays, thinking; the answer it makes) and
``inputs`` (``format``, ``images``, ``keep_alive``, ``think``); ``cli`` (the script).
"""

from __future__ import annotations

from .behavior import DEFAULT_THINKING, Behavior, default_reply, inline_think_tokens
from .cli import main
from .faults import BlackHole, HungServer
from .inputs import go_base64_error, keep_alive_seconds, parse_go_duration, schema_instance
from .models import (
    DEEPSEEK_R1,
    GEMMA3,
    GPT_OSS,
    LLAMA3,
    LLAMA31,
    LLAVA,
    QWEN3,
    READY_MODELS,
    FakeModel,
    Truncation,
    count_prompt_tokens,
    fit_context,
    tokenize,
)
from .server import FakeOllama
from .state import RecordedRequest

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
    "BlackHole",
    "FakeModel",
    "FakeOllama",
    "HungServer",
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
