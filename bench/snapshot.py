"""``--at REV``: run a bench script on one commit's ``src/`` and ``tests/``, not the work tree.

Another engineer may be editing ``src/`` and ``tests/`` while a bench runs; a half-made edit
would break the run or, worse, be measured. ``reexec_if_asked()`` runs first thing in each
bench script (standard library only, before anything from ``src/`` or ``tests/`` is imported):
given ``--at REV`` it extracts REV's ``src/`` and ``tests/`` with ``git archive`` (read-only:
no checkout, the work tree and index are not touched) into a temporary directory, runs the
same script again with ``PYTHONPATH`` and ``MCP_OLLAMA_BENCH_CODE`` pointing there, removes
the directory, and exits with the child's status. The bench's own files (``bench/``) are
always the work tree's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CODE = Path(os.environ.get("MCP_OLLAMA_BENCH_CODE", REPO))
"""Where ``src/`` and ``tests/`` come from in this process."""


def _rev(argv: list[str]) -> tuple[str | None, list[str]]:
    rest: list[str] = []
    rev = None
    args = iter(argv)
    for arg in args:
        if arg == "--at":
            rev = next(args, None)
        elif arg.startswith("--at="):
            rev = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rev, rest


def reexec_if_asked(script: str) -> None:
    """Handle ``--at REV`` (see the module docstring); returns only when not asked."""
    rev, rest = _rev(sys.argv[1:])
    if rev is None or os.environ.get("MCP_OLLAMA_BENCH_CODE"):
        return
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    snap = Path(tempfile.mkdtemp(prefix=f"mcp-ollama-bench-src-{commit[:10]}-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "src", "tests"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(snap)], input=archive, check=True)
        print(f"  .. measuring {commit[:10]} (src/ and tests/ from git archive)", file=sys.stderr, flush=True)
        env = {
            **os.environ,
            "MCP_OLLAMA_BENCH_CODE": str(snap),
            "MCP_OLLAMA_BENCH_COMMIT": commit,
            "PYTHONPATH": str(snap / "src"),
        }
        code = subprocess.run(
            [sys.executable, str(Path(script).resolve()), *rest], env=env, check=False
        ).returncode
    except KeyboardInterrupt:
        code = 130
    finally:
        shutil.rmtree(snap, ignore_errors=True)
    sys.exit(code)


def code_under_test() -> dict[str, object]:
    """What ``src/`` this process measures: a snapshot's commit, or the work tree's state."""
    commit = os.environ.get("MCP_OLLAMA_BENCH_COMMIT")
    if commit:
        return {"source": "git archive", "commit": commit}
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {"source": "work tree", "head": head.stdout.strip(), "src_modified": bool(dirty.stdout.strip())}
