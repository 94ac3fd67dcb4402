"""Row 2d's peer: npm ``ollama-mcp`` (its ``ollama_chat`` tool), installed into ``bench/.node``.

Started as its package says (``bin: dist/index.js``, stdio, ``OLLAMA_HOST``). ``calls.py``
puts it in the per-call interleave; this module only knows how to find, install and call it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp import Client

from harness import BENCH, say

PEER_PACKAGE = "ollama-mcp"
PEER_VERSION = "2.1.0"
PEER_PREFIX = BENCH / ".node"
PEER_DIR = PEER_PREFIX / "node_modules" / PEER_PACKAGE
PEER_ENTRY = PEER_DIR / "dist" / "index.js"


@dataclass(frozen=True)
class Peer:
    command: str
    args: list[str]
    version: str


def find_peer(install: bool) -> Peer | str:
    """The installed peer, installing it into ``bench/.node`` first if asked; else why not."""
    node = shutil.which("node")
    if node is None:
        return "node is not on PATH"
    if not PEER_ENTRY.exists() and install:
        npm = shutil.which("npm")
        if npm is None:
            return "npm is not on PATH"
        say(f"installing {PEER_PACKAGE}@{PEER_VERSION} into {PEER_PREFIX}")
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(PEER_PREFIX),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"{PEER_PACKAGE}@{PEER_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            return f"npm install failed ({done.returncode}): {done.stderr.strip()[-500:]}"
    if not PEER_ENTRY.exists():
        return f"{PEER_ENTRY} is missing (run without --no-peer-install, or npm install it)"
    version = json.loads((PEER_DIR / "package.json").read_text()).get("version", "?")
    return Peer(node, [str(PEER_ENTRY)], version)


def peer_chat(client: Client, model: str) -> Callable[[int], Any]:
    """One ``ollama_chat`` call per round. ``format: "markdown"``: the tool's default, "json",
    makes it ask Ollama for JSON mode and wrap a non-JSON answer in an error object."""

    async def call(i: int) -> Any:
        result = await client.call_tool(
            "ollama_chat",
            {"model": model, "messages": [{"role": "user", "content": f"hi {i}"}], "format": "markdown"},
        )
        if result.is_error:
            text = result.content[0].text if result.content else ""
            raise RuntimeError(f"peer: isError result: {text[:300]}")
        return result

    return call
