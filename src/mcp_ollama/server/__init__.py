"""The MCP face of mcp-ollama.

The one boundary where domain errors become ``isError`` results or JSON-RPC errors.
"""

from .app import build_server, serve

__all__ = ["build_server", "serve"]
