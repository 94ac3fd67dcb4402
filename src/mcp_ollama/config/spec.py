"""What can be configured: one ``SettingSpec`` row per setting (flag, environment variable, help).

``cli`` turns the rows into ``--help``; ``config.load`` reads them; ``README.md``'s configuration
table says the same. The rows of ``serve --http``'s own settings are in ``http_spec``, and stand
here in their place; the row type (``SettingSpec``) is in ``spec_row``.
"""

from __future__ import annotations

from .http_spec import HTTP_SETTINGS_SPEC
from .settings import DEFAULT_EMBED_MODEL, DEFAULT_MODEL
from .spec_row import SettingSpec

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
        "embed_model",
        "--embed-model",
        "MCP_OLLAMA_EMBED_MODEL",
        f"Model the embed tool uses when a call names none. Default {DEFAULT_EMBED_MODEL}.",
        "NAME",
    ),
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
        "SQLite file for sessions, or :memory:. Default: sessions.sqlite3 in the user data directory. "
        "A postgresql:// URL uses that PostgreSQL database instead, which several server replicas may "
        "share (install mcp-server-ollama[postgres]); its password is never shown: prefer PGPASSWORD or "
        "~/.pgpass, since other users can see flags in ps.",
        "PATH|URL",
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
        "Chats in flight per Ollama server and model at once (Ollama runs OLLAMA_NUM_PARALLEL per "
        "loaded model); more wait for a free slot, served round-robin across users, and say so. "
        "N for every model, or N,model=M,... to give some models their own count. Default 1 "
        "(Ollama's own default).",
        "N[,MODEL=M...]",
    ),
    SettingSpec(
        "first_token_timeout",
        "--first-token-timeout",
        "MCP_OLLAMA_FIRST_TOKEN_TIMEOUT",
        "Seconds a chat waits for its first token, with the model in memory, before it tries another "
        "Ollama server that has the model (a model still loading is waited for up to "
        "--generation-timeout). 0 turns it off. Default 120.",
        "SECONDS",
    ),
    SettingSpec(
        "max_queued_per_user",
        "--max-queued-per-user",
        "MCP_OLLAMA_MAX_QUEUED_PER_USER",
        "Chats one user (token) may have waiting for a free slot at once; more are refused until one "
        "finishes. Default 16.",
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
    *HTTP_SETTINGS_SPEC,
    SettingSpec(
        "max_streams_per_user",
        "--max-streams-per-user",
        "MCP_OLLAMA_MAX_STREAMS_PER_USER",
        "Change-notification streams (subscriptions/listen) one user (token) may hold open at once; "
        "more are refused. Default 16.",
        "N",
    ),
    SettingSpec(
        "max_tasks_per_user",
        "--max-tasks-per-user",
        "MCP_OLLAMA_MAX_TASKS_PER_USER",
        "MCP tasks one user (token) may have running at once; more are refused until one ends. Default 32.",
        "N",
    ),
    SettingSpec(
        "image_dirs",
        "--image-dirs",
        "MCP_OLLAMA_IMAGE_DIRS",
        "Directories chat may read image files from when a path is given (over stdio only; serve "
        "--http never reads paths), separated by the platform's path separator (: or ;). Symlinks "
        "are resolved first, and /proc, /sys and /dev are never read. Default: your home directory; "
        "an empty --image-dirs allows none.",
        "DIRS",
    ),
    SettingSpec(
        "max_call_image_bytes",
        "--max-call-image-bytes",
        "MCP_OLLAMA_MAX_CALL_IMAGE_BYTES",
        "Most image bytes (decoded) one chat call may carry, all its images together. "
        "Default 33554432 (32 MiB).",
        "BYTES",
    ),
    SettingSpec(
        "max_inflight_image_bytes",
        "--max-inflight-image-bytes",
        "MCP_OLLAMA_MAX_INFLIGHT_IMAGE_BYTES",
        "Most image bytes (decoded) one user's chats may hold at once until their requests to Ollama "
        "end; more are refused. Default 67108864 (64 MiB).",
        "BYTES",
    ),
)
