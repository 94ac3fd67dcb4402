"""The floor: the least an MCP stdio server proxying one chat call to Ollama can do.

A bare ``MCPServer`` with one async tool that makes ONE non-streaming POST to ``/api/chat``
and returns the answer's text. No sessions, no store, no progress, no validation beyond the
SDK's own. It logs at WARNING, as ours does by default: no line per request. ``bench/run.py``
compares ``python -m mcp_ollama`` against it. The model is ``MCP_OLLAMA_MODEL`` (llama3:8b), or
the call's ``model`` (row 11 chats with two).

The HTTP client is built on the first call and then reused (building one per call would
cost an SSL context, tens of ms, and measure httpx rather than the floor). Reads
``OLLAMA_HOST`` (a full URL, as the bench passes it) from the environment.
"""

from __future__ import annotations

import os

import httpx
from mcp.server import MCPServer

OLLAMA_URL = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434").rstrip("/")
MODEL = os.environ.get("MCP_OLLAMA_MODEL", "llama3:8b")

# Logging at WARNING, as ours logs by default (and as the HTTP floor is run): the SDK's default, INFO
# through rich, writes a line per request and httpx's per-request line, about 1.1 ms of every call.
mcp = MCPServer("floor", log_level="WARNING")
_client: httpx.AsyncClient | None = None


@mcp.tool()
async def chat(message: str, model: str | None = None) -> str:
    """Send a message to the local model and return its answer."""
    global _client
    if _client is None:
        _client = httpx.AsyncClient(base_url=OLLAMA_URL, timeout=300.0, trust_env=False)
    response = await _client.post(
        "/api/chat",
        json={"model": model or MODEL, "messages": [{"role": "user", "content": message}], "stream": False},
    )
    response.raise_for_status()
    return str(response.json()["message"]["content"])


if __name__ == "__main__":
    mcp.run()
