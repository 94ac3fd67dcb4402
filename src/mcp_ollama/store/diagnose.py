"""What went wrong with a database file, in a sentence for a person; and a look that changes nothing."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from ..errors import StoreError
from .migrations import _refuse_foreign


def describe_os_error(exc: OSError, path: str) -> str:
    """One sentence for a person: why the database file or its directory could not be made."""
    where = Path(path).parent
    reason = exc.strerror or str(exc)
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"{reason}: {where} is not writable (read-only?). Make it writable, or use another file (--db)."
        )
    if exc.errno == errno.ENOSPC:
        return f"the disk is full ({reason}). Free some space on the disk holding {where}."
    if isinstance(exc, NotADirectoryError | FileExistsError):
        return (
            f"{reason}: a file stands where a directory of {path} should be. Choose another path with --db."
        )
    return f"{reason}. Check {where}, or choose another file with --db / MCP_OLLAMA_DB."


def describe_sqlite_error(exc: sqlite3.Error, path: str) -> str:
    """One sentence for a person: what SQLite's error means here, and the fix."""
    text = str(exc)
    lowered = text.lower()
    where = Path(path).parent
    if "locked" in lowered or "busy" in lowered:
        return (
            f"another program held it locked for longer than 5 s ({text}). Close the program "
            "using it (a database browser, another server) and try again."
        )
    if "full" in lowered:
        return f"the disk is full ({text}). Free some space on the disk holding {where}."
    if "readonly" in lowered or "read-only" in lowered:
        return f"it is read-only ({text}). Make {path} and {where} writable, or choose another file (--db)."
    if "not a database" in lowered or "malformed" in lowered:
        return (
            f"the file is not a healthy SQLite database ({text}). Move it aside, or choose another "
            "file with --db / MCP_OLLAMA_DB."
        )
    if "unable to open" in lowered:
        return f"it cannot be opened ({text}). Check that {where} exists and is writable, or use --db."
    return f"{text}. Run `mcp-ollama doctor` to check the database."


def inspect_database(path: str) -> tuple[bool, str]:
    """Whether the server could use the database at ``path``, and why, without changing anything.

    Creates no directory and no file, writes nothing: a missing file is fine where it could
    be created; an existing one is opened read-only and checked as ``ChatStore.open`` would.
    """
    target = Path(path)
    if not target.exists():
        ancestor = target.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            return False, f"{ancestor} is a file, so {path} cannot be created. Choose another path with --db."
        if not os.access(ancestor, os.W_OK):
            return (
                False,
                f"{ancestor} is not writable (read-only?), so {path} cannot be created. "
                "Fix its permissions, or use another --db.",
            )
        return True, f"{path} does not exist yet; it will be created at the first chat (in {ancestor})"
    if target.is_dir():
        return False, f"{path} is a directory. Point --db / MCP_OLLAMA_DB at a file."
    try:
        conn = sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True)
        try:
            _refuse_foreign(conn, path)
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            count = conn.execute("SELECT count(*) FROM sessions").fetchone()[0] if "sessions" in tables else 0
        finally:
            conn.close()
    except StoreError as exc:
        return False, exc.cause
    except sqlite3.Error as exc:
        return False, describe_sqlite_error(exc, path)
    if not os.access(target, os.W_OK) or not os.access(target.parent, os.W_OK):
        return (
            False,
            f"{path} is read-only: sessions can be read but not saved. "
            "Fix its permissions, or use another --db.",
        )
    return True, f"{path} is a healthy mcp-ollama database ({count} sessions), writable"
