"""``mcp-ollama serve --http``: MCP over streamable HTTP, for a team or for clients that cannot spawn."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence

import anyio

from ..config import Settings
from ..transports.auth import TokenFileError
from ..transports.exposure import ExposureError, check_exposure


def serve_http(settings: Settings, allowed_hosts: Sequence[str] = ()) -> int:
    """Serve until SIGINT/SIGTERM: 0; 2 for a bind address that needs tokens, or a bad tokens file."""
    try:
        check_exposure(settings.http_bind, settings.tokens_file)  # before the SDK's import cost
        from ..transports.http import serve_http as run

        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(run, settings, allowed_hosts)
    except (ExposureError, TokenFileError) as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 2
    return 0
