"""mcp-ollama: an MCP server for local Ollama models."""

__version__ = "0.1.0"
