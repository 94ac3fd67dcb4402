"""``open_store(settings)``: the one place that picks the store the settings name.

``--db`` / ``MCP_OLLAMA_DB`` starting with ``postgresql://`` or ``postgres://`` opens the shared
PostgreSQL store (psycopg is imported only then: SQLite users neither need it nor pay for its
import); anything else is a SQLite file, or ``:memory:``. The server's lifespan and every CLI
command open their store here.
"""

from __future__ import annotations

from ..config import Settings
from ..config.database import is_postgres_url, split_password
from ..errors import StoreError
from .protocol import Store


def uses_postgres(settings: Settings) -> bool:
    """Whether ``settings`` name a PostgreSQL database."""
    return is_postgres_url(settings.db_path)


def open_store(settings: Settings) -> Store:
    """Open (creating and migrating as needed) the store ``settings.db_path`` names.

    ``StoreError`` says why it cannot be used and what to do; it never holds a password.
    """
    if not uses_postgres(settings):
        from . import ChatStore

        return ChatStore.open(settings.db_path)
    try:
        from .postgres import PostgresStore
    except ImportError as exc:
        raise StoreError(
            settings.db_path,
            f"PostgreSQL support is not installed ({exc}). Install it with "
            "pip install 'mcp-server-ollama[postgres]', or use a SQLite file.",
        ) from exc
    # Settings made by load_settings hold the password apart already; one built by hand may not.
    shown, in_url = split_password(settings.db_path)
    secret = settings.db_password or in_url
    return PostgresStore.open(shown, secret.reveal() if secret is not None else None)


def unavailable_store(settings: Settings, error: StoreError) -> Store:
    """A store that could not be opened: every call raises ``error``, so each tool can explain."""
    from . import ChatStore

    shown = split_password(settings.db_path)[0] if uses_postgres(settings) else settings.db_path
    return ChatStore.unavailable(shown, error)
