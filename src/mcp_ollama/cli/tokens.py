"""``mcp-ollama tokens add NAME``: a new bearer token for the HTTP server, shown once."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import Settings
from ..transports.auth import TokenFileError, add_token


def tokens_add(settings: Settings, name: str) -> int:
    """Print a new token for ``name`` on stdout (its hash goes to the tokens file); 2 on a bad name/file."""
    if settings.tokens_file is None:
        print(
            "mcp-ollama: say which file with --tokens-file PATH (or MCP_OLLAMA_TOKENS_FILE)", file=sys.stderr
        )
        return 2
    path = Path(settings.tokens_file)
    try:
        token = add_token(path, name)
    except TokenFileError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(
        f"Added {name!r} to {path}. The token is shown only this once (the file keeps its hash): give it "
        f"to {name}, who sends it as 'Authorization: Bearer <token>'. A running server picks it up at once.",
        file=sys.stderr,
    )
    return 0
