"""Configuration: one frozen ``Settings`` built at the edge, and the only reader of ``os.environ``.

Each setting comes from a command-line flag, else an environment variable, else its default.
``SETTINGS_SPEC`` lists them once; ``cli.py`` turns it into ``--help`` and ``README.md``'s
configuration table says the same.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
DEFAULT_MODEL = "llama3:8b"
DEFAULT_CONTEXT_TOKENS = 4096
"""Ollama's own default context window when a request sets no ``num_ctx``."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A flag or environment variable has a value we cannot use; the message never holds a secret."""


class Secret:
    """A password or key: shown as ``'********'`` by ``str``, ``repr`` and f-strings, so that an
    error text, a log line or a repr cannot leak it. ``reveal()`` is for the one place that sends it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know, fixed for the life of the process."""

    ollama_url: str = DEFAULT_OLLAMA_URL
    """Base URL of Ollama's REST API, normalised from ``OLLAMA_HOST``, without credentials: safe to show."""
    ollama_user: str | None = field(default=None, repr=False)
    """User for HTTP Basic auth, from ``OLLAMA_HOST``'s ``user:password@`` (a reverse proxy in front)."""
    ollama_password: Secret | None = field(default=None, repr=False)
    """Password for HTTP Basic auth, from ``OLLAMA_HOST``; never shown."""
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
    """Context window to request from Ollama; ``None`` lets Ollama choose (and budgets for 4096)."""
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

    @property
    def context_tokens(self) -> int:
        """The context window the history is trimmed to fit when a call sets no ``num_ctx``."""
        return self.num_ctx or DEFAULT_CONTEXT_TOKENS


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
        "Context window (tokens) to request from Ollama. Default: Ollama's own (history budgeted for 4096).",
        "TOKENS",
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
)


def default_db_path() -> Path:
    """``sessions.sqlite3`` in the platform's user data directory for mcp-ollama."""
    import platformdirs  # only when the default is needed: a few ms of every start otherwise

    return Path(platformdirs.user_data_dir("mcp-ollama", appauthor=False)) / "sessions.sqlite3"


@dataclass(frozen=True)
class OllamaHost:
    """``OLLAMA_HOST`` read: the URL to show and connect to, and the credentials it carried."""

    url: str
    """Base URL without credentials."""
    user: str | None = None
    password: Secret | None = field(default=None, repr=False)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def parse_ollama_host(value: str | None) -> OllamaHost:
    """Normalise an ``OLLAMA_HOST`` value to a base URL, the way Ollama's own CLI reads it.

    Unset means ``http://127.0.0.1:11434``. Accepted: ``host``, ``host:port``, ``:port``,
    ``[::1]:port`` and full URLs; a URL without a port gets its scheme's port (80 or 443),
    a bare host gets 11434. Bind-all addresses (``0.0.0.0``, ``::``) become loopback,
    since they name no host to connect to.

    ``user:password@`` before the host is taken off the URL and kept for HTTP Basic auth. The
    host starts after the *last* ``@``, and the user ends at the first ``:``, so a password may
    hold ``:``, ``/`` and ``@`` raw or percent-encoded (``%3A``, ``%2F``, ``%40``); an ``@`` in
    the path must be written ``%40``. Error messages show the value with its credentials masked.
    """
    text = (value or "").strip()
    if not text:
        return OllamaHost(DEFAULT_OLLAMA_URL)
    scheme, sep, rest = text.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):  # no scheme (a "://" may be inside a password)
        scheme, sep, rest = "", "", text
    user: str | None = None
    password: Secret | None = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, password = _credentials(userinfo)
    shown = repr(f"{scheme}{sep}{'***@' if user is not None else ''}{rest}")
    default_port = 11434
    if not sep:
        scheme = "http"
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    else:
        raise SettingsError(f"OLLAMA_HOST {shown}: only http:// and https:// are supported")
    hostport, _, path = rest.partition("/")
    if _is_ip(hostport.strip("[]")):
        host, port = hostport.strip("[]"), default_port
    else:
        try:
            parts = urlsplit(f"//{hostport}")
            host = parts.hostname or "127.0.0.1"
            port = parts.port if parts.port is not None else default_port
        except ValueError as exc:
            raise SettingsError(f"OLLAMA_HOST {shown} is not a host, host:port or URL") from exc
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if _is_ip(host) and ipaddress.ip_address(host).version == 6:
        host = f"[{host}]"
    path = f"/{path}".rstrip("/") if path else ""
    return OllamaHost(f"{scheme}://{host}:{port}{path}", user, password)


def _credentials(userinfo: str) -> tuple[str | None, Secret | None]:
    """``user[:password]`` from a URL, percent-decoded; (None, None) when empty."""
    if not userinfo:
        return None, None
    raw_user, colon, raw_password = userinfo.partition(":")
    try:
        user = unquote(raw_user, errors="strict")
        password = unquote(raw_password, errors="strict")
    except UnicodeDecodeError:
        raise SettingsError(
            "OLLAMA_HOST: the user or password holds a percent-escape that is not UTF-8 (not shown); "
            "write the character itself, or its UTF-8 bytes, each as %XX"
        ) from None
    if ":" in user:
        raise SettingsError("OLLAMA_HOST: the user name holds a ':', which HTTP Basic auth cannot carry")
    if not user and not colon:
        return None, None
    return user, Secret(password)


def read_api_key(value: str | None) -> Secret | None:
    """``OLLAMA_API_KEY``, checked to fit an HTTP header; the error never shows the key."""
    key = (value or "").strip()
    if not key:
        return None
    if not all(33 <= ord(char) <= 126 for char in key):
        raise SettingsError(
            "OLLAMA_API_KEY holds a space, a control character or a non-ASCII character (the key is "
            "not shown); copy it again"
        )
    return Secret(key)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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
    address = parse_ollama_host(raw.get("ollama_url"))
    values: dict[str, Any] = {
        "ollama_url": address.url,
        "ollama_user": address.user,
        "ollama_password": address.password,
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
    for name in ("history_turns", "num_ctx", "max_message_chars", "max_answer_chars"):
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
    if "log_level" in raw:
        level = raw["log_level"].strip().upper()
        if level not in LOG_LEVELS:
            raise SettingsError(
                f"{names['log_level']}: {raw['log_level']!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        values["log_level"] = level
    return Settings(**values)
