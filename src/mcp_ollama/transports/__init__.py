"""How MCP reaches the server: stdio (``..transport``) and streamable HTTP (``http``)."""
