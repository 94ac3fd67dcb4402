"""Entry point of the Claude Desktop extension bundle (``manifest.json``, server type ``uv``).

The host runs this file with uv inside the bundle, where uv has installed mcp-server-ollama and its
dependencies from ``pyproject.toml``; it serves MCP on stdio, as the ``mcp-ollama`` command does.
``src/mcp_ollama/__main__.py`` cannot be the entry point: run as a file, its relative import fails.
"""

from mcp_ollama.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
