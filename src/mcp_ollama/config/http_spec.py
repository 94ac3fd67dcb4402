"""The rows of the settings ``serve --http`` reads: where it listens, its tokens file, the operator's
token, and its ``MCP_OLLAMA_HTTP_*`` bounds (read by ``transports/limits.py``).

``spec`` places them in ``SETTINGS_SPEC`` where they stand in ``--help``.
"""

from __future__ import annotations

from .spec_row import SettingSpec

HTTP_SETTINGS_SPEC: tuple[SettingSpec, ...] = (
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
    SettingSpec(
        "http_token",
        None,
        "MCP_OLLAMA_HTTP_TOKEN",
        "The operator's bearer token for serve --http (16 characters or more); it acts as the local "
        "user, like stdio. Without it, serve --http makes a new token at each start and prints it on "
        "stderr. Environment only, since other users can see flags in ps; never shown or logged.",
        "TOKEN",
    ),
    SettingSpec(
        "http_header_timeout",
        None,
        "MCP_OLLAMA_HTTP_HEADER_TIMEOUT",
        "Seconds serve --http gives a new request to send its headers before it closes the connection "
        "(slow or stalled clients). Default 10.",
        "SECONDS",
    ),
    SettingSpec(
        "http_body_timeout",
        None,
        "MCP_OLLAMA_HTTP_BODY_TIMEOUT",
        "Seconds serve --http gives a request to send its body once its headers are in. Default 30.",
        "SECONDS",
    ),
    SettingSpec(
        "http_keep_alive",
        None,
        "MCP_OLLAMA_HTTP_KEEP_ALIVE",
        "Seconds serve --http keeps an idle connection open between requests. Default 5.",
        "SECONDS",
    ),
    SettingSpec(
        "http_max_connections",
        None,
        "MCP_OLLAMA_HTTP_MAX_CONNECTIONS",
        "Open connections serve --http keeps at most; more are answered 503 at once. Lowered to fit "
        "the open-file limit. Default 512.",
        "N",
    ),
    SettingSpec(
        "http_max_connections_per_address",
        None,
        "MCP_OLLAMA_HTTP_MAX_CONNECTIONS_PER_ADDRESS",
        "Open connections serve --http keeps from one client address at most; more are answered 503. "
        "Behind a reverse proxy every client has the proxy's address: raise it. Default 64.",
        "N",
    ),
    SettingSpec(
        "http_max_body_bytes",
        None,
        "MCP_OLLAMA_HTTP_MAX_BODY_BYTES",
        "Largest request body serve --http accepts, in bytes (POST /chat keeps its own 1 MiB). "
        "Default 4194304 (4 MiB).",
        "BYTES",
    ),
)
