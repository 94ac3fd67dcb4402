"""The domain: chat turns and the jobs that run them; nothing about MCP or HTTP."""
