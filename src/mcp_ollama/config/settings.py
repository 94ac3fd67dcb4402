"""Configuration: one frozen ``Settings`` built at the edge, and the only reader of ``os.environ``.

Each setting comes from a command-line flag, else an environment variable, else its default.
``SETTINGS_SPEC`` lists them once; ``cli.py`` turns it into ``--help`` and ``README.md``'s
configuration table says the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from .hosts import (
    DEFAULT_OLLAMA_URL,
    OllamaHost,
    Secret,
    parse_ollama_host,
    parse_ollama_hosts,
    read_api_key,
)

__all__ = [
    "SETTINGS_SPEC",
    "Secret",
    "SettingSpec",
    "Settings",
    "SettingsError",
    "default_db_path",
    "load_settings",
    "parse_ollama_host",
]

DEFAULT_MODEL = "llama3:8b"
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
    system_prompt: str | None = None
    """Replacement for the built-in system prompt text; ``None`` keeps the default."""
    history_turns: int = 8
    """How many earlier turns (user + assistant pairs) are sent with each message."""
    db_path: str = field(default_factory=lambda: str(default_db_path()))
    """SQLite file holding sessions, or ``:memory:``."""
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


@dataclass(frozen=True)
class SettingSpec:
    """One configurable setting: its flag, environment variable, and help text."""

    name: str
    flag: str | None
    """``None`` for a setting read from the environment only (a secret: ``ps`` shows flags)."""
    env: str
    help: str
    metavar: str = "VALUE"

    @property
    def names(self) -> str:
        """How an error message names the setting: ``--flag / VARIABLE``, or just the variable."""
        return f"{self.flag} / {self.env}" if self.flag else self.env


SETTINGS_SPEC: tuple[SettingSpec, ...] = (
    SettingSpec(
        "ollama_url",
        "--ollama-host",
        "OLLAMA_HOST",
        "Ollama's address, in Ollama's own forms (host, host:port, :port, URL). Default 127.0.0.1:11434. "
        "Several servers: give the flag again, or a comma-separated list; each chat goes to one that "
        "has its model, and fails over to the next. "
        "A URL may carry http://user:password@host:port/ (percent-encoded or raw) for a reverse proxy "
        "asking for HTTP Basic auth; the password is never shown. Prefer the variable for it: other "
        "users can see flags in ps.",
        "HOST",
    ),
    SettingSpec(
        "ollama_api_key",
        None,
        "OLLAMA_API_KEY",
        "API key sent as a bearer token (remote or cloud Ollama). Environment only, since other users "
        "can see flags in ps; never shown. Not sent when OLLAMA_HOST carries a user and password.",
        "KEY",
    ),
    SettingSpec("model", "--model", "MCP_OLLAMA_MODEL", f"Default model. Default {DEFAULT_MODEL}.", "NAME"),
    SettingSpec(
        "system_prompt",
        "--system-prompt",
        "MCP_OLLAMA_SYSTEM_PROMPT",
        "Replace the built-in system prompt with this text.",
        "TEXT",
    ),
    SettingSpec(
        "system_prompt_file",
        "--system-prompt-file",
        "MCP_OLLAMA_SYSTEM_PROMPT_FILE",
        "Replace the built-in system prompt with this file's contents (UTF-8).",
        "PATH",
    ),
    SettingSpec(
        "history_turns",
        "--history-turns",
        "MCP_OLLAMA_HISTORY_TURNS",
        "Earlier turns sent with each message (then trimmed to fit the context). Default 8.",
        "N",
    ),
    SettingSpec(
        "db_path",
        "--db",
        "MCP_OLLAMA_DB",
        "SQLite file for sessions, or :memory:. Default: sessions.sqlite3 in the user data directory.",
        "PATH",
    ),
    SettingSpec(
        "connect_timeout",
        "--connect-timeout",
        "MCP_OLLAMA_CONNECT_TIMEOUT",
        "Seconds to wait for Ollama to accept a connection. Default 5.",
        "SECONDS",
    ),
    SettingSpec(
        "generation_timeout",
        "--generation-timeout",
        "MCP_OLLAMA_GENERATION_TIMEOUT",
        "Seconds Ollama may stay silent (model loading, between tokens) before a call fails. Default 300.",
        "SECONDS",
    ),
    SettingSpec(
        "keep_alive",
        "--keep-alive",
        "MCP_OLLAMA_KEEP_ALIVE",
        "How long Ollama keeps the model loaded after a call (5m, 1h, -1 = forever). Default: Ollama's.",
        "DURATION",
    ),
    SettingSpec(
        "num_ctx",
        "--num-ctx",
        "MCP_OLLAMA_NUM_CTX",
        "Context window (tokens) to request from Ollama for every model. Default: each model's own "
        "maximum (from Ollama's /api/show), capped by --max-context.",
        "TOKENS",
    ),
    SettingSpec(
        "max_context",
        "--max-context",
        "MCP_OLLAMA_MAX_CONTEXT",
        "Largest context window (tokens) requested for a model whose own maximum is larger; a larger "
        "window takes more memory. Default 16384.",
        "TOKENS",
    ),
    SettingSpec(
        "max_parallel",
        "--max-parallel",
        "MCP_OLLAMA_MAX_PARALLEL",
        "Chats in flight per Ollama server at once; more wait for a free slot, and say so. Match it to "
        "the server's OLLAMA_NUM_PARALLEL. Default 1 (Ollama's own default).",
        "N",
    ),
    SettingSpec(
        "max_image_bytes",
        "--max-image-bytes",
        "MCP_OLLAMA_MAX_IMAGE_BYTES",
        "Largest image chat accepts, in bytes. Default 20971520 (20 MiB).",
        "BYTES",
    ),
    SettingSpec(
        "max_answer_chars",
        "--max-answer-chars",
        "MCP_OLLAMA_MAX_ANSWER_CHARS",
        "Longest answer kept, in characters; past it the model is stopped and the answer says so. "
        "Default 100000.",
        "N",
    ),
    SettingSpec(
        "max_generation_seconds",
        "--max-generation-seconds",
        "MCP_OLLAMA_MAX_GENERATION_SECONDS",
        "Longest time one answer may take (loading included); past it the model is stopped and the "
        "answer says so. Default 1800.",
        "SECONDS",
    ),
    SettingSpec(
        "answer_deadline",
        "--answer-deadline",
        "MCP_OLLAMA_ANSWER_DEADLINE",
        "Seconds chat waits for an answer before returning the part written so far (the model "
        "keeps writing; chat_result gets the rest). 0 waits as long as it takes. Default 50.",
        "SECONDS",
    ),
    SettingSpec(
        "heartbeat_interval",
        "--heartbeat-interval",
        "MCP_OLLAMA_HEARTBEAT_INTERVAL",
        "Seconds between progress notifications while the model loads or reads the prompt. Default 4.",
        "SECONDS",
    ),
    SettingSpec(
        "preload",
        "--preload",
        "MCP_OLLAMA_PRELOAD",
        "Load the default model in the background at start (on/off). Default on.",
        "ON|OFF",
    ),
    SettingSpec(
        "max_message_chars",
        "--max-message-chars",
        "MCP_OLLAMA_MAX_MESSAGE_CHARS",
        "Largest message chat accepts, in characters. Default 200000.",
        "N",
    ),
    SettingSpec(
        "log_level",
        "--log-level",
        "MCP_OLLAMA_LOG_LEVEL",
        "Level of the server's log on stderr: DEBUG, INFO, WARNING, ERROR. Default WARNING.",
        "LEVEL",
    ),
    SettingSpec(
        "http_bind",
        "--bind",
        "MCP_OLLAMA_BIND",
        "Address serve --http listens on. Default 127.0.0.1; any other than loopback needs --tokens-file.",
        "ADDRESS",
    ),
    SettingSpec(
        "http_port", "--port", "MCP_OLLAMA_PORT", "Port serve --http listens on. Default 8765.", "PORT"
    ),
    SettingSpec(
        "tokens_file",
        "--tokens-file",
        "MCP_OLLAMA_TOKENS_FILE",
        "File of bearer tokens (names and SHA-256 hashes) serve --http accepts; add one with "
        "mcp-ollama tokens add NAME. Without it, serve --http asks for no token and listens on loopback "
        "only.",
        "PATH",
    ),
)


def default_db_path() -> Path:
    """``sessions.sqlite3`` in the platform's user data directory for mcp-ollama."""
    import platformdirs  # only when the default is needed: a few ms of every start otherwise

    return Path(platformdirs.user_data_dir("mcp-ollama", appauthor=False)) / "sessions.sqlite3"


def _positive_number(name: str, raw: str, kind: type[int] | type[float]) -> int | float:
    try:
        number = kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: {raw!r} is not a {kind.__name__}") from exc
    if number <= 0:
        raise SettingsError(f"{name}: must be greater than 0, got {raw!r}")
    return number


_SWITCHES = {
    "1": True,
    "on": True,
    "true": True,
    "yes": True,
    "0": False,
    "off": False,
    "false": False,
    "no": False,
}


def _switch(name: str, raw: str) -> bool:
    try:
        return _SWITCHES[raw.strip().lower()]
    except KeyError:
        raise SettingsError(
            f"{name}: {raw!r} is not on or off (also accepted: 1/0, true/false, yes/no)"
        ) from None


def load_settings(flags: Mapping[str, str | None], environ: Mapping[str, str] | None = None) -> Settings:
    """Build ``Settings`` from flag values (by setting name; ``None`` = not given) over the environment.

    Raises ``SettingsError`` naming the flag or variable whose value is unusable.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    for spec in SETTINGS_SPEC:
        given = flags.get(spec.name)
        if given is None:
            given = env.get(spec.env) or None
        if given is not None:
            raw[spec.name] = given
    names = {spec.name: spec.names for spec in SETTINGS_SPEC}
    address, *others = parse_ollama_hosts(raw.get("ollama_url"))
    values: dict[str, Any] = {
        "ollama_url": address.url,
        "ollama_user": address.user,
        "ollama_password": address.password,
        "other_ollama_hosts": tuple(others),
        "ollama_api_key": read_api_key(raw.get("ollama_api_key")),
    }
    if "model" in raw:
        values["model"] = raw["model"].strip()
    if "system_prompt" in raw and "system_prompt_file" in raw:
        raise SettingsError("give the system prompt as text or as a file, not both")
    if "system_prompt_file" in raw:
        path = Path(raw["system_prompt_file"]).expanduser()
        try:
            values["system_prompt"] = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{names['system_prompt_file']}: cannot read {path}: {exc.strerror}") from exc
    elif "system_prompt" in raw:
        values["system_prompt"] = raw["system_prompt"].strip()
    if values.get("system_prompt") == "":
        raise SettingsError("the system prompt given is empty")
    for name in (
        "history_turns",
        "num_ctx",
        "max_context",
        "max_message_chars",
        "max_answer_chars",
        "max_image_bytes",
        "max_parallel",
    ):
        if name in raw:
            values[name] = _positive_number(names[name], raw[name], int)
    for name in ("connect_timeout", "generation_timeout", "heartbeat_interval", "max_generation_seconds"):
        if name in raw:
            values[name] = _positive_number(names[name], raw[name], float)
    if "answer_deadline" in raw:
        deadline = raw["answer_deadline"].strip()
        values["answer_deadline"] = (
            0.0 if deadline == "0" else _positive_number(names["answer_deadline"], deadline, float)
        )
    if "preload" in raw:
        values["preload"] = _switch(names["preload"], raw["preload"])
    if "db_path" in raw:
        db = raw["db_path"]
        values["db_path"] = db if db == ":memory:" else str(Path(db).expanduser())
    if "keep_alive" in raw:
        values["keep_alive"] = raw["keep_alive"].strip()
    if "http_bind" in raw:
        values["http_bind"] = raw["http_bind"].strip().removeprefix("[").removesuffix("]")
    if "http_port" in raw:
        port = _positive_number(names["http_port"], raw["http_port"], int)
        if port > 65535:
            raise SettingsError(f"{names['http_port']}: {raw['http_port']!r} is not a port (1-65535)")
        values["http_port"] = port
    if "tokens_file" in raw:
        values["tokens_file"] = str(Path(raw["tokens_file"]).expanduser())
    if "log_level" in raw:
        level = raw["log_level"].strip().upper()
        if level not in LOG_LEVELS:
            raise SettingsError(
                f"{names['log_level']}: {raw['log_level']!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        values["log_level"] = level
    return Settings(**values)
