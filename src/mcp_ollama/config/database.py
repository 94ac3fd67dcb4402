"""``--db`` / ``MCP_OLLAMA_DB`` read: a SQLite file, or a PostgreSQL URL whose password is kept apart.

A value starting with ``postgresql://`` or ``postgres://`` selects the PostgreSQL store; anything
else is a SQLite file (or ``:memory:``). A password in the URL (``user:secret@host`` or
``?password=secret``) is taken out into a ``Secret`` so that ``Settings``, logs, error messages
and ``doctor`` show the URL without it; only the store's connection receives it.
"""

from __future__ import annotations

from urllib.parse import unquote

from .hosts import Secret

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(value: str) -> bool:
    """Whether ``value`` names a PostgreSQL database rather than a SQLite file."""
    return value.strip().lower().startswith(POSTGRES_SCHEMES)


def split_password(url: str) -> tuple[str, Secret | None]:
    """``url`` without its password, and the password (percent-decoded), if it had one.

    Everything else is kept exactly as written (multi-host lists, percent-encoded query values).
    """
    text = url.strip()
    scheme, _, rest = text.partition("://")
    authority, slash, tail = rest.partition("/")
    if not slash:  # no path: the query may follow the authority directly
        authority, question, query_tail = rest.partition("?")
        tail = question + query_tail
    password: str | None = None
    userinfo, at, hosts = authority.rpartition("@")
    if at:
        user, colon, secret = userinfo.partition(":")
        if colon:
            password = unquote(secret)
            authority = f"{user}@{hosts}"
    path, question, query = tail.partition("?")
    if question:
        pairs = query.split("&")
        kept = [pair for pair in pairs if pair.split("=", 1)[0] != "password"]
        for pair in pairs:
            if pair.split("=", 1)[0] == "password":
                password = unquote(pair.partition("=")[2])
        query = "&".join(kept)
    shown = f"{scheme}://{authority}{slash}{path}" + (f"?{query}" if query else "")
    return shown, Secret(password) if password is not None else None
