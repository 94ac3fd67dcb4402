"""The layout's one hard rule: the domain (``core``) imports neither the MCP SDK nor httpx."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_neither_mcp_nor_httpx() -> None:
    probe = (
        "import sys\n"
        "import mcp_ollama.core.budget, mcp_ollama.core.jobs, mcp_ollama.core.text, mcp_ollama.core.waiting\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'httpx')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
