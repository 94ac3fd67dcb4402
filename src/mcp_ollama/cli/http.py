"""``mcp-ollama serve --http``: MCP over streamable HTTP, for a team or for clients that cannot spawn."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

import anyio

from ..config import Settings, SettingsError
from ..transports.auth import TokenFileError
from ..transports.exposure import ExposureError, check_exposure
from ..transports.limits import http_settings
from ..transports.listen import ListenError, check_listen
from .serve import collector_paused


def serve_http(settings: Settings, allowed_hosts: Sequence[str] = ()) -> int:
    """Serve until SIGINT/SIGTERM: 0; 1 for a port in use (or not allowed); 2 for a bind address
    that needs tokens, a bad tokens file, or an unusable ``MCP_OLLAMA_HTTP_*`` value."""
    try:
        # config.load does not read the MCP_OLLAMA_HTTP_* variables (yet): they matter here only.
        settings = http_settings(settings, os.environ)
        check_exposure(settings.http_bind, settings.tokens_file)  # before the SDK's import cost
        check_listen(settings.http_bind, settings.http_port)  # before uvicorn starts anything
        with collector_paused():
            from ..transports.http import serve_http as run

            with contextlib.suppress(KeyboardInterrupt):
                anyio.run(run, settings, allowed_hosts)
    except ListenError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 1
    except (ExposureError, TokenFileError, SettingsError) as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 2
    return 0
