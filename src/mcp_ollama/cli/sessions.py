"""``mcp-ollama sessions``: the stored sessions, read and deleted from a terminal.

The store's own queries and the transcript renderers the server's resources use. Reading a
database that does not exist yet shows nothing and creates nothing.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from ..config import Settings
from ..core.text import clean_text
from ..core.transcripts import transcript_json, transcript_markdown
from ..errors import McpOllamaError, SessionNotFound
from ..store import SessionInfo, Store, open_store, uses_postgres, validate_session_id


def sessions(
    settings: Settings,
    action: str,
    *,
    session_id: str | None = None,
    export_format: str = "md",
    limit: int = 50,
) -> int:
    """Run ``action`` (list, show, export, delete); the exit code."""
    try:
        if session_id is not None:
            validate_session_id(session_id)
        if (
            not uses_postgres(settings)
            and settings.db_path != ":memory:"
            and not Path(settings.db_path).exists()
        ):
            if action == "list":
                print(f"mcp-ollama: no sessions yet ({settings.db_path} does not exist).", file=sys.stderr)
                return 0
            raise SessionNotFound(str(session_id))
        with open_store(settings) as store:
            if action == "list":
                return _list(store, limit)
            assert session_id is not None
            if action == "delete":
                if not store.delete_session(session_id):
                    raise SessionNotFound(session_id)
                print(f"deleted session {session_id}")
                return 0
            info = store.get_session(session_id)
            if info is None:
                raise SessionNotFound(session_id)
            messages = store.messages(session_id)
    except McpOllamaError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 1
    if action == "show":  # for the terminal: nothing in a message may act as an escape sequence
        sys.stdout.write(clean_text(transcript_markdown(info, messages)))
    elif export_format == "json":
        sys.stdout.write(transcript_json(info, messages) + "\n")
    else:
        sys.stdout.write(transcript_markdown(info, messages))
    return 0


def _list(store: Store, limit: int) -> int:
    found, more = store.list_sessions(limit=max(limit, 1))
    if not found:
        print("mcp-ollama: no sessions yet.", file=sys.stderr)
    id_width = max((len(info.id) for info in found), default=0)
    model_width = max((len(clean_text(info.model)) for info in found), default=0)
    for info in found:
        print(_line(info, id_width, model_width))
    if more is not None:
        print(
            f"mcp-ollama: more sessions than shown; see them with --limit N (now {limit}).", file=sys.stderr
        )
    return 0


def _line(info: SessionInfo, id_width: int, model_width: int) -> str:
    """One session: its columns padded to the page's widest id and model, so they line up."""
    turns = f"{info.turn_count} turn" + ("" if info.turn_count == 1 else "s")
    title = clean_text(info.title) or "(no title)"
    model = clean_text(info.model)
    return f"{info.id:<{id_width}}  {_local(info.updated_at)}  {turns:>10}  {model:<{model_width}}  {title}"


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
