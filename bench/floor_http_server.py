"""The HTTP floor: ``bench/floor_server.py``'s one-tool ``MCPServer`` over streamable HTTP.

    python bench/floor_http_server.py PORT

The same tool (one non-streaming POST to ``/api/chat``, ``OLLAMA_HOST`` from the environment),
served at ``http://127.0.0.1:PORT/mcp`` by the SDK's own ``streamable_http_app`` (stateful
sessions, SSE answers, DNS-rebinding protection for loopback: the SDK's defaults) under uvicorn,
configured as ``mcp-ollama serve --http`` configures it: no access log, level WARNING, no
``Server`` header. Logging is at WARNING as ours is (``MCPServer`` sets up INFO, which writes a
line per request), so the floor is not slowed by logging ours does not do. No auth.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from floor_server import mcp


def main() -> None:
    port = int(sys.argv[1])
    logging.getLogger().setLevel(logging.WARNING)
    app = mcp.streamable_http_app(host="127.0.0.1")
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level="warning", server_header=False
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
