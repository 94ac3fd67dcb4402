"""The agent example in docs/hosts.md runs as written, with the command given there, against the fake."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_ollama.config import Settings

from .fake_ollama import FakeOllama

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "agent.py"
DOC = ROOT / "docs" / "hosts.md"
"""Where the example is shown and its command given (the README links it)."""


def readme_command() -> list[str]:
    """The one command the docs give to run the example (an indented code line)."""
    [line] = re.findall(
        r"^ {4}(\S*python\S* examples/agent\.py)$", DOC.read_text(encoding="utf-8"), re.MULTILINE
    )
    return shlex.split(line)


def test_readme_runs_the_example_with_the_venv_interpreter() -> None:
    """A bare ``python`` lacks the ``mcp`` package; the docs name the ``.venv`` one."""
    assert readme_command() == [".venv/bin/python", "examples/agent.py"]


@pytest.mark.skipif(sys.platform == "win32", reason="the docs' command names the POSIX .venv/bin path")
def test_agent_example_holds_a_two_turn_conversation(fake: FakeOllama, settings: Settings) -> None:
    argv = readme_command()
    if not (ROOT / argv[0]).exists():
        pytest.skip(f"{argv[0]} does not exist: create it with the README's test command")
    env = {
        **os.environ,
        "OLLAMA_HOST": fake.url,
        "MCP_OLLAMA_DB": settings.db_path,
        "MCP_OLLAMA_PRELOAD": "off",
    }
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "You said: Name three rivers in France.. I have seen 0 earlier messages."
    assert lines[1] == "You said: Which of them is the longest?. I have seen 2 earlier messages."
    assert lines[2].startswith("session: ")
    doc = DOC.read_text(encoding="utf-8")
    assert EXAMPLE.read_text(encoding="utf-8").strip() in doc, "docs/hosts.md shows it verbatim"
