"""The schema: append-only, named migrations, and the check that a file is ours before any is run."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..errors import StoreError
from .records import _now

# --- migrations -------------------------------------------------------------------------
# Append-only. A migration that has shipped is never edited or removed: databases in the
# wild have recorded its name in _migrations and will not run it again. Fix mistakes with
# a new migration. Each runs in its own transaction (SQLite DDL is transactional).


def m001_create_sessions_and_messages(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            model TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            turn_count INTEGER NOT NULL DEFAULT 0 CHECK (turn_count >= 0)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            turn INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            created_at TEXT NOT NULL,
            meta TEXT /* JSON: model, token counts, timings */
        )
        """
    )
    # Serves the transcript reads, the "last N turns" window (a reverse scan) and the
    # ON DELETE CASCADE lookup.
    conn.execute("CREATE INDEX idx_messages_session_id ON messages(session_id, id)")
    # Serves list_sessions' keyset pagination and session_ids' newest-first order.
    conn.execute("CREATE INDEX idx_sessions_updated_at ON sessions(updated_at DESC, id DESC)")


def m002_create_jobs(conn: sqlite3.Connection) -> None:
    # A generation that outlived the request that started it, or ran as an MCP task. A turn's
    # messages and its job's 'complete' are written in one transaction.
    conn.execute(
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            model TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('running', 'complete', 'failed', 'cancelled', 'interrupted')),
            owner TEXT NOT NULL,          /* the server process that runs it */
            requester TEXT,               /* the MCP connection whose task it is; NULL: no task */
            started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,   /* the owner refreshes this while it runs */
            finished_at TEXT,
            expires_at TEXT,              /* a task's end of life (its ttl); NULL: no task */
            detail TEXT,                  /* why it failed, or was cancelled or interrupted */
            result TEXT                   /* a task's tool result, as JSON */
        )
        """
    )
    conn.execute("CREATE INDEX idx_jobs_session_id ON jobs(session_id, started_at DESC)")


def m003_create_session_leases(conn: sqlite3.Connection) -> None:
    # Who is writing a turn of a session right now, so that two processes on one database
    # (two hosts) take a session's turns one after the other, each seeing the one before.
    conn.execute(
        """
        CREATE TABLE session_leases (
            session_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,          /* the server process writing a turn */
            expires_at TEXT NOT NULL      /* renewed while it writes; a dead owner's lease lapses */
        )
        """
    )


def m004_add_message_thinking_and_images(conn: sqlite3.Connection) -> None:
    # A thinking model's reasoning, and notes of the images a message carried (type, size,
    # sha256; never the bytes). Kept apart from content: neither is sent back as history.
    conn.execute("ALTER TABLE messages ADD COLUMN thinking TEXT")
    conn.execute("ALTER TABLE messages ADD COLUMN images TEXT /* JSON: [{type, size, sha256}] */")


def m005_add_principals(conn: sqlite3.Connection) -> None:
    # Whose each session and job is: a bearer token's name over HTTP, 'local' for stdio and the
    # shell (and for everything stored before). Another principal's session row is keyed
    # 'principal/id', so two principals may use the same id and never see each other's.
    conn.execute("ALTER TABLE sessions ADD COLUMN principal TEXT NOT NULL DEFAULT 'local'")
    conn.execute("ALTER TABLE jobs ADD COLUMN principal TEXT NOT NULL DEFAULT 'local'")
    # Listing is always one principal's sessions, newest first.
    conn.execute("DROP INDEX idx_sessions_updated_at")
    conn.execute(
        "CREATE INDEX idx_sessions_principal_updated_at ON sessions(principal, updated_at DESC, id DESC)"
    )


def m006_create_client_timeouts(conn: sqlite3.Connection) -> None:
    # How long each MCP client (by its clientInfo name) waited for a tool call before it gave up
    # and cancelled it with a "timed out" reason: the next calls answer `generating` before then.
    conn.execute(
        """
        CREATE TABLE client_timeouts (
            principal TEXT NOT NULL,
            client TEXT NOT NULL,         /* clientInfo.name */
            seconds REAL NOT NULL CHECK (seconds > 0),
            learned_at TEXT NOT NULL,
            PRIMARY KEY (principal, client)
        )
        """
    )


def m007_add_job_progress_and_job_indexes(conn: sqlite3.Connection) -> None:
    # How far a running job has got (its answer so far, and what it is doing), saved at most once
    # a second, for chat_result and tasks/get in another process; cleared when the job ends.
    conn.execute("ALTER TABLE jobs ADD COLUMN partial TEXT")
    conn.execute("ALTER TABLE jobs ADD COLUMN progress TEXT /* JSON: state, tokens, thoughts, message */")
    # Every jobs query by something other than its id or session: the heartbeat of a process's
    # running jobs, the purge of expired tasks, a requester's task list, a principal's newest chat.
    # None of them may read the whole table, which grows with every answer that outlived its call.
    conn.execute("CREATE INDEX idx_jobs_running ON jobs(owner) WHERE status = 'running'")
    conn.execute("CREATE INDEX idx_jobs_expires_at ON jobs(expires_at) WHERE expires_at IS NOT NULL")
    conn.execute(
        "CREATE INDEX idx_jobs_requester ON jobs(requester, started_at, id) WHERE requester IS NOT NULL"
    )
    conn.execute(
        "CREATE INDEX idx_jobs_principal_started_at ON jobs(principal, started_at DESC)"
        " WHERE requester IS NULL"
    )


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    m001_create_sessions_and_messages,
    m002_create_jobs,
    m003_create_session_leases,
    m004_add_message_thinking_and_images,
    m005_add_principals,
    m006_create_client_timeouts,
    m007_add_job_progress_and_job_indexes,
)


_FIRST_MIGRATION = "m001_create_sessions_and_messages"


def _refuse_foreign(conn: sqlite3.Connection, path: str) -> None:
    """Raise ``StoreError`` unless the database is empty or ours, and no newer than this code; reads only."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    applied: set[str] = set()
    if "_migrations" in tables:
        applied = {str(name) for (name,) in conn.execute("SELECT name FROM _migrations")}
    # Empty, or only our bookkeeping so far (another process may be creating it right now).
    fresh = tables <= {"_migrations", "sqlite_sequence"} and applied <= {m.__name__ for m in MIGRATIONS}
    if fresh:
        return
    if _FIRST_MIGRATION not in applied:
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise StoreError(
            path,
            f"it is another application's database (tables: {shown}); mcp-ollama left it untouched. "
            "Choose another file with --db / MCP_OLLAMA_DB.",
        )
    unknown = sorted(applied - {m.__name__ for m in MIGRATIONS})
    if unknown:
        raise StoreError(
            path,
            f"a newer version of mcp-ollama has changed it (migrations {', '.join(unknown)} are unknown "
            "to this version), so this version will not write to it. Upgrade mcp-ollama, or choose "
            "another file with --db / MCP_OLLAMA_DB.",
        )


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply, in order, every migration not yet recorded in ``_migrations``."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for migration in MIGRATIONS:
        name = migration.__name__
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Checked inside the write transaction: another process opening the same
            # new file at the same moment waits here, then sees the migration as done.
            done = conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone()
            if done is None:
                migration(conn)
                conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, _now()))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
