"""``mcp-ollama tokens add NAME [--admin]``, ``tokens list``, ``tokens revoke NAME``: the bearer
tokens of the HTTP server. A new token is shown once; the file keeps only hashes, so ``list``
shows names and roles."""

from __future__ import annotations

import sys
from pathlib import Path

from ..config import Settings
from ..transports.auth import TokenFileError, add_token, read_tokens, remove_token

_WHICH_FILE = "mcp-ollama: say which file with --tokens-file PATH (or MCP_OLLAMA_TOKENS_FILE)"


def tokens_add(settings: Settings, name: str, *, admin: bool = False) -> int:
    """Print a new token for ``name`` on stdout (its hash goes to the tokens file); 2 on a bad name/file.

    An ``admin`` token may also pull and unload models.
    """
    if settings.tokens_file is None:
        print(_WHICH_FILE, file=sys.stderr)
        return 2
    path = Path(settings.tokens_file)
    try:
        token = add_token(path, name, admin=admin)
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


def tokens_list(settings: Settings) -> int:
    """Print each token's name and role, one per line; 2 when the file is missing or unusable."""
    if settings.tokens_file is None:
        print(_WHICH_FILE, file=sys.stderr)
        return 2
    path = Path(settings.tokens_file)
    try:
        entries = read_tokens(path)
    except TokenFileError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 2
    if not entries:
        print(f"mcp-ollama: {path} has no tokens; add one with: mcp-ollama tokens add NAME", file=sys.stderr)
    width = max((len(entry.name) for entry in entries), default=0)
    for entry in entries:
        print(f"{entry.name:<{width}}  {'admin' if entry.admin else 'chat'}")
    return 0


def tokens_revoke(settings: Settings, name: str) -> int:
    """Remove ``name``'s token: 0 when removed, 1 when there is none, 2 when the file is unusable."""
    if settings.tokens_file is None:
        print(_WHICH_FILE, file=sys.stderr)
        return 2
    path = Path(settings.tokens_file)
    try:
        removed = remove_token(path, name)
        names = [entry.name for entry in read_tokens(path)]
    except TokenFileError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 2
    if not removed:
        have = ", ".join(names) or "none"
        print(
            f"mcp-ollama: {path} has no token named {name!r} (it has: {have}); nothing changed.",
            file=sys.stderr,
        )
        return 1
    print(
        f"Revoked {name!r}: removed from {path}. A running server refuses that token from its next "
        f"request; {name}'s sessions stay in the database.",
        file=sys.stderr,
    )
    return 0
