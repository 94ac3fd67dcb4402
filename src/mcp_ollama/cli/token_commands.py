"""The ``tokens`` command's arguments (``add``, ``list``, ``revoke``) and its dispatch.

Kept apart from ``cli/__init__`` so the parser module stays small; ``cli.tokens`` (which reads
and writes the tokens file) is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import Settings
from .model_commands import AddSettings
from .parser import CommandParser

USAGE = "mcp-ollama tokens add NAME | list | revoke NAME  --tokens-file PATH"


def add_tokens_command(
    parser: CommandParser, commands: argparse._SubParsersAction[Any], add_settings: AddSettings
) -> None:
    """``tokens add``, ``tokens list`` and ``tokens revoke`` on ``parser``."""
    tokens = parser.command(
        commands,
        "tokens",
        help="manage the bearer tokens serve --http accepts",
        description="Bearer tokens for serve --http: each has a name (who uses it); the file keeps "
        "hashes only.",
    )
    actions = tokens.add_subparsers(dest="tokens_command", title="actions", metavar="ACTION")
    add = tokens.command(
        actions,
        "add",
        help="make a new token for NAME, print it once",
        usage="%(prog)s NAME [--admin] --tokens-file PATH",
        description="Make a random token for NAME, append its SHA-256 hash to the tokens file (created if "
        "missing, owner-only) and print the token on stdout, once. A name already in the file is refused.",
    )
    add.option("token_name", metavar="NAME", help="who will use the token: letters, digits, . _ @ -")
    add.option("--admin", dest="token_admin", action="store_true", help="may also pull and unload models")
    add_settings(add, {"tokens_file"})
    listed = tokens.command(
        actions,
        "list",
        help="the names in the tokens file, with their roles",
        usage="%(prog)s --tokens-file PATH",
        description="Print each token's name and role (admin, or chat only), one per line. The "
        "tokens themselves are not kept, so they cannot be shown.",
    )
    add_settings(listed, {"tokens_file"})
    revoke = tokens.command(
        actions,
        "revoke",
        help="remove NAME's token: it stops working at once",
        usage="%(prog)s NAME --tokens-file PATH",
        description="Remove NAME's line from the tokens file (the rest is kept as it is). A running "
        "server refuses the token from its next request; NAME's sessions stay in the database.",
    )
    revoke.option("token_name", metavar="NAME", help="the name, as tokens list shows it")
    add_settings(revoke, {"tokens_file"})


def run_tokens_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``tokens ACTION``; the exit code (2 when no action is named)."""
    action = getattr(args, "tokens_command", None)
    if action == "add":
        from .tokens import tokens_add

        return tokens_add(settings, args.token_name, admin=args.token_admin)
    if action == "list":
        from .tokens import tokens_list

        return tokens_list(settings)
    if action == "revoke":
        from .tokens import tokens_revoke

        return tokens_revoke(settings, args.token_name)
    print(f"mcp-ollama: say what to do: {USAGE}", file=sys.stderr)
    return 2
