"""``Settings``: every configurable value, frozen, built once at the edge by ``config.load``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .hosts import DEFAULT_OLLAMA_URL, OllamaHost, Secret

DEFAULT_MODEL = "llama3:8b"
DEFAULT_EMBED_MODEL = "nomic-embed-text"
DEFAULT_CONTEXT_TOKENS = 4096
"""Ollama's own default context window when a request sets no ``num_ctx``."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know, fixed for the life of the process."""

    ollama_url: str = DEFAULT_OLLAMA_URL
    """Base URL of Ollama's REST API, normalised from ``OLLAMA_HOST``, without credentials: safe to show."""
    ollama_user: str | None = field(default=None, repr=False)
    """User for HTTP Basic auth, from ``OLLAMA_HOST``'s ``user:password@`` (a reverse proxy in front)."""
    ollama_password: Secret | None = field(default=None, repr=False)
    """Password for HTTP Basic auth, from ``OLLAMA_HOST``; never shown."""
    other_ollama_hosts: tuple[OllamaHost, ...] = ()
    """More Ollama servers beside the first (``OLLAMA_HOST=a,b`` or ``--ollama-host`` repeated):
    each chat goes to one that has its model."""
    max_parallel: int = 1
    """Chats in flight per Ollama server at once; more wait for a slot (Ollama's own default
    ``OLLAMA_NUM_PARALLEL`` is 1)."""
    ollama_api_key: Secret | None = field(default=None, repr=False)
    """Bearer token from ``OLLAMA_API_KEY`` (remote or cloud Ollama); not sent when ``OLLAMA_HOST``
    carries a user and password, since a request has one ``Authorization`` header. Never shown."""
    model: str = DEFAULT_MODEL
    """Model used when a ``chat`` call names none."""
    embed_model: str = DEFAULT_EMBED_MODEL
    """Model used when an ``embed`` call names none."""
    system_prompt: str | None = None
    """Replacement for the built-in system prompt text; ``None`` keeps the default."""
    history_turns: int = 8
    """How many earlier turns (user + assistant pairs) are sent with each message."""
    db_path: str = field(default_factory=lambda: str(default_db_path()))
    """SQLite file holding sessions, or ``:memory:``; or a ``postgresql://`` URL (shared by replicas),
    without its password: safe to show."""
    db_password: Secret | None = field(default=None, repr=False)
    """The password a ``postgresql://`` URL carried, kept apart from ``db_path``; never shown."""
    connect_timeout: float = 5.0
    """Seconds to wait for Ollama to accept a connection."""
    generation_timeout: float = 300.0
    """Seconds Ollama may stay silent (loading the model, or between tokens) before we give up."""
    keep_alive: str | None = None
    """How long Ollama keeps the model loaded after a call (``5m``, ``1h``, ``-1``); ``None``: its default."""
    num_ctx: int | None = None
    """Context window to request from Ollama for every model; ``None``: each model's own maximum,
    capped by ``max_context``."""
    max_context: int = 16384
    """Largest context window requested for a model whose own maximum is larger (memory grows with it)."""
    max_image_bytes: int = 20 * 1024 * 1024
    """Largest image ``chat`` accepts, in bytes (decoded)."""
    max_message_chars: int = 200_000
    """Largest ``message`` accepted by ``chat``, in characters."""
    max_answer_chars: int = 100_000
    """Longest answer kept, in characters: past it the model is stopped (a model stuck in a loop)."""
    max_generation_seconds: float = 1800.0
    """Longest time one answer may take, model loading included: past it the model is stopped."""
    progress_interval: float = 0.1
    """Smallest gap in seconds between two progress notifications of one call."""
    answer_deadline: float = 50.0
    """Seconds ``chat`` waits for the answer before returning what it has; 0 waits as long as it takes."""
    heartbeat_interval: float = 4.0
    """Seconds between progress notifications while the model loads or reads the prompt."""
    preload: bool = True
    """Load the default model in the background when the server starts."""
    log_level: str = "WARNING"
    """Threshold for the server's own log on stderr."""
    http_bind: str = "127.0.0.1"
    """Address ``serve --http`` listens on."""
    http_port: int = 8765
    """Port ``serve --http`` listens on."""
    tokens_file: str | None = None
    """Bearer tokens (names and hashes) ``serve --http`` accepts; ``None``: no auth, loopback only."""
    http_token: Secret | None = field(default=None, repr=False)
    """The operator's bearer token for ``serve --http`` (principal ``local``); ``None``: one is
    generated at each start. Never shown."""
    http_header_timeout: float = 10.0
    """Seconds a new HTTP request may take to send its headers (slow-loris clients are cut off)."""
    http_body_timeout: float = 30.0
    """Seconds an HTTP request may take to send its body once its headers are in."""
    http_keep_alive: float = 5.0
    """Seconds an idle kept-alive HTTP connection stays open."""
    http_max_connections: int = 512
    """Open HTTP connections at most; past it a new one is answered 503 and closed."""
    http_max_connections_per_address: int = 64
    """Open HTTP connections from one client address at most; past it 503."""
    http_max_body_bytes: int = 4 * 1024 * 1024
    """Largest HTTP request body accepted, in bytes."""
    max_parallel_models: tuple[tuple[str, int], ...] = ()
    """Slots per Ollama server for the models named (``--max-parallel N,model=M``), where they
    differ from ``max_parallel``."""
    first_token_timeout: float = 120.0
    """Seconds a chat waits for its first token, the model in memory, before it tries another server
    that has the model; 0: as long as ``generation_timeout`` allows."""
    max_queued_per_user: int = 16
    """Chats one principal may have waiting for a slot at once; more are refused."""
    max_streams_per_user: int = 16
    """``subscriptions/listen`` streams one principal may hold open at once; more are refused."""
    max_tasks_per_user: int = 32
    """MCP tasks one principal may have running at once; more are refused."""
    image_dirs: tuple[str, ...] = field(default_factory=lambda: (os.path.expanduser("~"),))
    """Directories ``chat`` may read image files from, over stdio only (symlinks resolved; never
    /proc, /sys or /dev). Default: the user's home directory; empty: none."""
    max_call_image_bytes: int = 32 * 1024 * 1024
    """Most image bytes (decoded) one ``chat`` call may carry, all its images together."""
    max_inflight_image_bytes: int = 64 * 1024 * 1024
    """Most image bytes (decoded) one principal's chats may hold until their requests to Ollama end."""
    remote: bool = False
    """Served over the network (``serve --http`` sets it; no flag): image file paths are never read."""

    @property
    def ollama_auth(self) -> str:
        """How requests to Ollama authenticate, in words that hold no secret."""
        if self.ollama_user is not None:
            ignored = " (OLLAMA_API_KEY is set but not sent)" if self.ollama_api_key else ""
            return f"HTTP Basic auth as {self.ollama_user!r}{ignored}"
        if self.ollama_api_key is not None:
            return "a bearer token from OLLAMA_API_KEY"
        return "no credentials"

    def basic_auth(self) -> tuple[str, str] | None:
        """(user, password) for HTTP Basic auth: revealed for the HTTP client, and nothing else."""
        if self.ollama_user is None:
            return None
        return self.ollama_user, self.ollama_password.reveal() if self.ollama_password else ""

    def bearer_token(self) -> str | None:
        """The API key for the HTTP client (and nothing else); None when Basic auth is used."""
        if self.ollama_user is not None or self.ollama_api_key is None:
            return None
        return self.ollama_api_key.reveal()

    def context_window(self, model_maximum: int | None) -> int:
        """The ``num_ctx`` every request for a model with this maximum sends (preload included).

        The configured ``num_ctx`` wins; else the model's own maximum, capped by ``max_context``;
        else (a model that does not say) Ollama's usual default, 4096. Never above the model's own
        maximum: Ollama cuts a larger ``num_ctx`` down to it, and the history must fit what it uses.
        """
        if self.num_ctx is not None:
            return min(self.num_ctx, model_maximum) if model_maximum else self.num_ctx
        return min(model_maximum or DEFAULT_CONTEXT_TOKENS, self.max_context)


def default_db_path() -> Path:
    """``sessions.sqlite3`` in the platform's user data directory for mcp-ollama."""
    import platformdirs  # only when the default is needed: a few ms of every start otherwise

    return Path(platformdirs.user_data_dir("mcp-ollama", appauthor=False)) / "sessions.sqlite3"
