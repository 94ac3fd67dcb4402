"""The package as ``python -m build`` made it, and the ways users install it: pip, uvx, a git URL.

``.ci/run`` builds the sdist and the wheel into ``dist/`` and then runs the tests marked ``dist``
with ``MCP_SERVER_OLLAMA_DIST`` naming that directory. Without the variable those tests skip and say so:
a wheel left in ``dist/`` by an earlier build may be older than the code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mcp_ollama

ROOT = Path(__file__).resolve().parent.parent
DIST_ENV = "MCP_SERVER_OLLAMA_DIST"
PACKAGE = "mcp-server-ollama"
GIT_URL = "git+https://github.com/OWNER/mcp-ollama"
"""The README's git install line; OWNER is a placeholder, so the tests install from a local repository."""

# What a git install needs from the work tree (pyproject's sdist list, less the tests).
SOURCES = ("src", "pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", "docs")

USER_HOME = Path.home()
"""The real home, read at import: the tests' autouse fixture points HOME at a temporary directory,
and pip and uv keep their download caches under the real one."""

NOT_BUILT = (
    f"needs the built package: set {DIST_ENV} to the directory `python -m build` wrote "
    "(.ci/run does, then runs these with -m dist)"
)


def dist_dir() -> Path | None:
    """The directory ``MCP_SERVER_OLLAMA_DIST`` names, when it holds this version's wheel."""
    named = os.environ.get(DIST_ENV)
    if not named:
        return None
    return Path(named) if wheel_in(Path(named)) else None


def wheel_in(directory: Path) -> Path | None:
    name = f"mcp_server_ollama-{mcp_ollama.__version__}-py3-none-any.whl"
    found = directory / name
    return found if found.is_file() else None


def require_dist() -> Path:
    """The build directory, or skip the test saying how to get one."""
    found = dist_dir()
    if found is None:
        if os.environ.get(DIST_ENV):
            pytest.fail(f"{DIST_ENV}={os.environ[DIST_ENV]} holds no wheel of {mcp_ollama.__version__}")
        pytest.skip(NOT_BUILT)
    return found


def uv_bin() -> Path | None:
    """The directory holding ``uv`` and ``uvx``: beside this Python (``.ci/run`` installs it into
    ``.venv``), else on PATH."""
    here = Path(sys.executable).parent
    if (here / "uvx").exists() or (here / "uvx.exe").exists():
        return here
    found = shutil.which("uvx")
    return Path(found).parent if found else None


def require_uv() -> Path:
    found = uv_bin()
    if found is None:
        pytest.skip("uv is not installed: .ci/run installs it (pip install uv)")
    return found


def uv_env(dist: Path, home: Path) -> dict[str, str]:
    """An environment in which ``uvx mcp-server-ollama`` finds the built wheel before any index.

    A private cache and tool directory, so no wheel of the same version cached by an earlier run
    stands in for this build; the network settings of the machine are kept (uv downloads the
    dependencies).
    """
    keep = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_", "PIP_", "UV_INDEX")
    env = {k: v for k, v in os.environ.items() if k.upper().startswith(keep)}
    bin_dir = require_uv()
    env.update(
        {
            "PATH": os.pathsep.join([str(home / "bin"), str(bin_dir), os.environ.get("PATH", "")]),
            "HOME": str(home),
            "UV_FIND_LINKS": str(dist),
            "UV_CACHE_DIR": str(home / "uv-cache"),
            "UV_TOOL_DIR": str(home / "uv-tools"),
            "UV_TOOL_BIN_DIR": str(home / "bin"),
            "UV_PYTHON": sys.executable,  # no interpreter download: the one running the tests
            "UV_NO_PROGRESS": "1",
        }
    )
    return env


def git_snapshot(dest: Path) -> str:
    """A git repository holding the work tree's package sources, committed: what a git URL serves.

    The README's ``git+https://github.com/OWNER/mcp-ollama`` cannot be fetched (OWNER is a
    placeholder), and this clone's HEAD may lag its work tree; this serves the code under test.
    """
    dest.mkdir(parents=True)
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, dest / name)
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    identity = ["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-q", "-m", "snapshot"]):
        subprocess.run([git, *args], cwd=dest, check=True, capture_output=True, timeout=60)
    return f"git+{dest.as_uri()}"
