"""What went wrong with a PostgreSQL database, in a sentence for a person."""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

_FIX_URL = "check the URL given to --db / MCP_OLLAMA_DB"


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n", 1)[0].split())
    return text or type(exc).__name__


def describe_pg_error(exc: BaseException) -> str:
    """One sentence: what PostgreSQL's error means here, and the fix. Never holds a password."""
    text = _first_line(exc)
    lowered = str(exc).lower()
    if isinstance(exc, PoolTimeout):
        return (
            f"every connection to PostgreSQL stayed busy ({text}). Try again; if it keeps happening, "
            "look for slow queries or locks on the database server."
        )
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return (
            f"PostgreSQL refused the user or password ({text}). Check the user in the URL and the "
            "password (PGPASSWORD or ~/.pgpass)."
        )
    if "does not exist" in lowered and "database" in lowered:
        return f"the database does not exist ({text}). Create it (createdb NAME), or {_FIX_URL}."
    if "no schema has been selected" in lowered or ("schema" in lowered and "does not exist" in lowered):
        return (
            f"the schema named in the URL's search_path does not exist ({text}). Create it "
            f"(CREATE SCHEMA name), or {_FIX_URL}."
        )
    if "permission denied" in lowered:
        return f"the database user may not do this ({text}). Grant it the rights, or {_FIX_URL}."
    if isinstance(exc, psycopg.OperationalError):
        return f"PostgreSQL could not be reached ({text}). Start it, or {_FIX_URL} (host, port, database)."
    return f"{text}. Run `mcp-ollama doctor` to check the database."
