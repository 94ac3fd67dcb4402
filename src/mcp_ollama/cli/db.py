"""``mcp-ollama db copy SQLITE_PATH postgresql://…``: move a SQLite store into PostgreSQL.

Kept apart from ``cli/__init__`` (the parser module stays small); psycopg is imported only when
the command runs. The URL's password never appears in the output.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import Settings
from ..config.database import is_postgres_url, split_password
from ..errors import McpOllamaError
from .parser import CommandParser


def add_db_command(parser: CommandParser, commands: argparse._SubParsersAction[Any]) -> None:
    """``db copy`` on ``parser``."""
    db = parser.command(
        commands,
        "db",
        help="move the session store: db copy SQLITE_PATH postgresql://…",
        description="Work on the session database as a whole.",
    )
    actions = db.add_subparsers(dest="db_command", title="actions", metavar="ACTION")
    copy = actions.add_parser(
        "copy",
        help="copy a SQLite store into PostgreSQL",
        usage="%(prog)s SQLITE_PATH postgresql://USER@HOST/DATABASE",
        description="Copy every session, message and job record of a SQLite store into a PostgreSQL "
        "database (created tables and all). Each session is copied whole, in one transaction; run it "
        "again to resume after a failure: what is there already is skipped, and a session changed in "
        "PostgreSQL since is left alone. The counts are checked at the end (exit 1 if they differ). "
        "The password may come from PGPASSWORD or ~/.pgpass; one in the URL is never printed.",
    )
    copy.add_argument("copy_source", metavar="SQLITE_PATH", help="the SQLite file to copy from")
    copy.add_argument("copy_target", metavar="URL", help="the PostgreSQL database to copy into")


def run_db_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``db copy``; the exit code."""
    if getattr(args, "db_command", None) != "copy":
        print("mcp-ollama: say what to do: mcp-ollama db copy SQLITE_PATH postgresql://…", file=sys.stderr)
        return 2
    target_url: str = args.copy_target
    if not is_postgres_url(target_url):
        print("mcp-ollama: the target must be a postgresql:// URL.", file=sys.stderr)
        return 2
    shown, password = split_password(target_url)
    try:
        from ..store.postgres import PostgresStore
        from ..store.postgres.copy import copy_sqlite
    except ImportError as exc:
        print(
            f"mcp-ollama: PostgreSQL support is not installed ({exc}); "
            "pip install 'mcp-server-ollama[postgres]'.",
            file=sys.stderr,
        )
        return 1
    try:
        with PostgresStore.open(shown, password.reveal() if password else None) as target:
            report = copy_sqlite(args.copy_source, target, lambda line: print(line, file=sys.stderr))
    except McpOllamaError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 1
    print(f"{report.describe()} into {shown}")
    for key in report.newer:
        print(f"mcp-ollama: session {key} is newer in PostgreSQL; left as it is there.", file=sys.stderr)
    if report.problems:
        print(
            f"mcp-ollama: the copy is not complete: {'; '.join(report.problems)}. Run it again.",
            file=sys.stderr,
        )
        return 1
    return 0
