"""``mcp-ollama doctor``: run the set-up checks of ``cli.diagnostics`` and print the report.

The checks change nothing on disk: the database is inspected, never created or migrated.
"""

from __future__ import annotations

import anyio

from ..config import Settings


def doctor(settings: Settings, db_origin: str | None = None) -> int:
    """0 when every check passed, 1 otherwise. ``db_origin``: what chose the database, in words
    (``config.database_origin``)."""
    return anyio.run(_doctor, settings, db_origin)


async def _doctor(settings: Settings, db_origin: str | None) -> int:
    from .diagnostics import format_report, run_checks

    ok = format_report(await run_checks(settings, db_origin), print)
    return 0 if ok else 1
