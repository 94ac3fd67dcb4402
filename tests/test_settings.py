"""``config/settings.py``: each model's window (``Settings.context_window``)."""

from __future__ import annotations

from mcp_ollama.config import Settings


def test_each_models_window_is_its_own_maximum_capped_unless_configured() -> None:
    settings = Settings()
    assert settings.context_window(8192) == 8192
    assert settings.context_window(40960) == 16384
    assert settings.context_window(None) == 4096
    assert Settings(max_context=65536).context_window(131072) == 65536
    assert Settings(num_ctx=2048).context_window(131072) == 2048
