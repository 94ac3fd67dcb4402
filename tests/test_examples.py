"""The README's agent example runs as written, against the fake Ollama."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mcp_ollama.settings import Settings

from .fake_ollama import FakeOllama

EXAMPLE = Path(__file__).parent.parent / "examples" / "agent.py"


def test_agent_example_holds_a_two_turn_conversation(fake: FakeOllama, settings: Settings) -> None:
    env = {
        **os.environ,
        "OLLAMA_HOST": fake.url,
        "MCP_OLLAMA_DB": settings.db_path,
        "MCP_OLLAMA_PRELOAD": "off",
    }
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "You said: Name three rivers in France.. I have seen 0 earlier messages."
    assert lines[1] == "You said: Which of them is the longest?. I have seen 2 earlier messages."
    assert lines[2].startswith("session: ")
    readme = (EXAMPLE.parent.parent / "README.md").read_text(encoding="utf-8")
    assert EXAMPLE.read_text(encoding="utf-8").strip() in readme, "README shows examples/agent.py verbatim"
