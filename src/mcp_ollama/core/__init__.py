"""The domain: chat turns, the jobs that run them, budgets and text; nothing here imports mcp."""
