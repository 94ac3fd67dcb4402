"""``python -m mcp_ollama``: the same as the ``mcp-ollama`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
