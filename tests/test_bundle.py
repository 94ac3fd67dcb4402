"""The Claude Desktop extension bundle: ``manifest.json``, its entry point, and ``mcpb pack``'s output.

The official CLI (npm ``@anthropic-ai/mcpb``, pinned in ``.ci/run``) lives in ``.ci/node``; without
it the tests that run it are skipped, and the rest still hold the manifest to the package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

import mcp_ollama
from mcp_ollama.config import DEFAULT_MODEL, SETTINGS_SPEC
from mcp_ollama.config.hosts import parse_ollama_host

from .built import require_uv
from .fake_ollama import FakeOllama

ROOT = Path(__file__).resolve().parent.parent
MCPB = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "mcpb"
MCPB_VERSION = "2.1.2"
"""Kept in step with ``.ci/run`` and docs/hosts.md by ``test_mcpb_version_is_pinned_in_one_place``."""
BUNDLE = "mcp-server-ollama.mcpb"

needs_mcpb = pytest.mark.skipif(
    not MCPB.exists() or shutil.which("node") is None,
    reason=f"the mcpb CLI is not installed in {MCPB.parent.parent} (or node is not on PATH): "
    "`.ci/run` installs it when npm is there",
)

# What the bundle must hold, and what must never go in it.
BUNDLE_NEEDS = {
    "manifest.json",
    "mcpb/server.py",
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "src/mcp_ollama/__init__.py",
}
BUNDLE_EXCLUDES = (".venv/", "tests/", ".ci/", "bench/", "examples/", "dist/", ".git/", "build/")
BUNDLE_MAX_BYTES = 1_000_000
NETWORK_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_", "UV_")


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))
    return data


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def mcpb(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MCPB), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_manifest_names_this_package_and_its_version() -> None:
    data, project = manifest(), pyproject()["project"]
    assert data["name"] == project["name"] == "mcp-server-ollama"
    assert data["version"] == mcp_ollama.__version__, "the version is __version__, read by the build"
    assert data["license"] == project["license"]
    assert data["compatibility"]["runtimes"]["python"] == project["requires-python"]


def test_manifest_runs_the_package_with_uv_from_pyproject() -> None:
    server = manifest()["server"]
    assert server["type"] == "uv", "the uv type installs from pyproject.toml: nothing vendored"
    assert (ROOT / server["entry_point"]).is_file()
    config = server["mcp_config"]
    assert config["command"] == "uv"
    assert config["args"] == ["run", "--directory", "${__dirname}", server["entry_point"]]


def test_user_settings_reach_the_server_as_the_variables_it_reads() -> None:
    data = manifest()
    env = data["server"]["mcp_config"]["env"]
    known = {spec.env for spec in SETTINGS_SPEC}
    assert set(env) <= known, f"variables the server does not read: {set(env) - known}"
    assert env == {
        "OLLAMA_HOST": "${user_config.ollama_host}",
        "MCP_OLLAMA_MODEL": "${user_config.model}",
    }
    referenced = {m for value in env.values() for m in re.findall(r"\$\{user_config\.(\w+)\}", value)}
    assert referenced == set(data["user_config"]), "every user setting is passed on, and only those"
    assert data["user_config"]["model"]["default"] == DEFAULT_MODEL
    assert parse_ollama_host(data["user_config"]["ollama_host"]["default"]).url == "http://127.0.0.1:11434"


@pytest.mark.anyio
async def test_bundle_entry_point_serves_the_tools_the_manifest_lists(
    fake: FakeOllama, tmp_path: Path
) -> None:
    data = manifest()
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(ROOT / data["server"]["entry_point"])],
        env={
            "OLLAMA_HOST": fake.url,
            "MCP_OLLAMA_MODEL": data["user_config"]["model"]["default"],
            "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
            "MCP_OLLAMA_PRELOAD": "off",
        },
    )
    async with Client(params, mode="legacy") as client:
        listed = await client.list_tools()
    assert [tool.name for tool in listed.tools] == [tool["name"] for tool in data["tools"]]


def test_mcpb_version_is_pinned_in_one_place() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    docs = (ROOT / "docs" / "hosts.md").read_text(encoding="utf-8")
    assert re.findall(r"@anthropic-ai/mcpb@([\w.\-]+)", ci) == [MCPB_VERSION]
    assert set(re.findall(r"npx -y @anthropic-ai/mcpb@([\w.\-]+)", docs)) == {MCPB_VERSION}
    assert "@anthropic-ai/mcpb " not in docs, "every mcpb command in the docs is pinned"
    assert f"dist/{BUNDLE}" in ci and f"dist/{BUNDLE}" in docs


@needs_mcpb
def test_mcpb_validates_the_manifest() -> None:
    done = mcpb("--version")
    assert done.stdout.strip() == MCPB_VERSION, f"{MCPB} is not the pinned mcpb: run .ci/run"
    done = mcpb("validate", "manifest.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Manifest schema validation passes!" in done.stdout


@needs_mcpb
def test_mcpb_packs_the_package_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / BUNDLE
    done = mcpb("pack", ".", str(out), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.stat().st_size < BUNDLE_MAX_BYTES, f"the bundle is {out.stat().st_size} bytes"
    with zipfile.ZipFile(out) as bundle:
        names = set(bundle.namelist())
        packed_manifest = json.loads(bundle.read("manifest.json"))
    assert names >= BUNDLE_NEEDS, f"missing from the bundle: {BUNDLE_NEEDS - names}"
    strays = sorted(n for n in names if n.startswith(BUNDLE_EXCLUDES) or "__pycache__" in n)
    assert not strays, f"the bundle should not hold: {strays}"
    assert not [n for n in names if n.endswith((".pyc", ".sqlite3"))]
    assert packed_manifest == manifest()
    assert {"src/mcp_ollama/server/__init__.py", "src/mcp_ollama/py.typed"} <= names


@pytest.mark.slow
@needs_mcpb
@pytest.mark.anyio
async def test_unpacked_bundle_serves_through_uv(fake: FakeOllama, tmp_path: Path) -> None:
    """What Claude Desktop does with a ``uv`` bundle: uv installs from pyproject.toml, then serves.

    Needs uv (``.ci/run`` installs it beside this Python) and the package index reachable (uv
    installs the dependencies).
    """
    uv = str(require_uv() / "uv")
    out = tmp_path / BUNDLE
    done = mcpb("pack", ".", str(out), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    unpacked = tmp_path / "extension"
    with zipfile.ZipFile(out) as bundle:
        bundle.extractall(unpacked)
    config = manifest()["server"]["mcp_config"]
    args = [arg.replace("${__dirname}", str(unpacked)) for arg in config["args"]]
    env = {
        # uv downloads: hand over the machine's proxy and certificate settings, as a host's environment would.
        **{k: v for k, v in os.environ.items() if k.upper().startswith(NETWORK_VARIABLES)},
        "OLLAMA_HOST": fake.url,
        "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
        "MCP_OLLAMA_PRELOAD": "off",
    }
    params = StdioServerParameters(command=uv, args=args, env=env)
    async with Client(params, mode="legacy", read_timeout_seconds=300) as client:
        listed = await client.list_tools()
        answer = await client.call_tool("chat", {"message": "Hello from the bundle"})
    assert [tool.name for tool in listed.tools] == [tool["name"] for tool in manifest()["tools"]]
    assert not answer.is_error, answer
    assert answer.structured_content is not None
    assert answer.structured_content["answer"].startswith("You said: Hello from the bundle")
