"""Every host's install path in the README, ``docs/hosts.md`` and ``examples/``: the shape each host
reads, and it runs.

Each config file is loaded as its host loads it and started as the host would start it, as a stdio
server that must answer ``tools/list``: ``uvx mcp-server-ollama`` with the built wheel (``-m dist``,
see ``tests/built.py``), a clone's command (``${workspaceFolder}`` or the
``/ABSOLUTE/PATH/TO/mcp-ollama`` placeholder = this clone) from this clone's ``.venv``. Hosts
themselves (Claude Desktop, Claude Code, VS Code, Cursor) are not run here; the README's commands
for them are checked for what they name.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from mcp_ollama.config import SETTINGS_SPEC

from .built import GIT_URL, PACKAGE, require_dist, uv_env
from .fake_ollama import FakeOllama

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
HOSTS_DOC = ROOT / "docs" / "hosts.md"
PLACEHOLDER = "/ABSOLUTE/PATH/TO/mcp-ollama"
CONFIG_FILES = [*sorted((ROOT / "examples").glob("*.json")), ROOT / "claude_desktop_config.example.json"]
KNOWN_VARIABLES = {spec.env for spec in SETTINGS_SPEC}


def readme() -> str:
    return README.read_text(encoding="utf-8")


def hosts_doc() -> str:
    return HOSTS_DOC.read_text(encoding="utf-8")


def console_scripts() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return set(project["scripts"])


def servers_of(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The server entries, under the key the file's host reads: VS Code ``servers``, others ``mcpServers``."""
    if "servers" in config:
        servers = config["servers"]
        assert all(entry.get("type") == "stdio" for entry in servers.values()), "VS Code wants type stdio"
    else:
        servers = config["mcpServers"]
    assert isinstance(servers, dict) and servers
    return servers


def check_entry(entry: dict[str, Any]) -> None:
    """``command`` (a string), ``args`` (strings), ``env`` (strings): what every host reads."""
    assert isinstance(entry["command"], str)
    assert isinstance(entry["args"], list) and all(isinstance(a, str) for a in entry["args"])
    env = entry["env"]
    assert isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
    assert set(env) <= KNOWN_VARIABLES, f"variables the server does not read: {set(env) - KNOWN_VARIABLES}"
    if entry["command"] == "uvx":
        assert entry["args"] in ([PACKAGE], ["--from", GIT_URL, PACKAGE]), entry["args"]
        return
    name = entry["command"].replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".exe")
    assert name in console_scripts(), f"{entry['command']!r} is not a console script of this package"


def resolve(command: str) -> Path:
    """The command as a host would start it from this clone."""
    return Path(command.replace("${workspaceFolder}", str(ROOT)).replace(PLACEHOLDER, str(ROOT)))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_config_file_has_the_shape_its_host_reads(path: Path) -> None:
    for entry in servers_of(json.loads(path.read_text(encoding="utf-8"))).values():
        check_entry(entry)


def uvx_entries() -> list[Any]:
    """The config files' ``uvx`` entries, one parameter each, named by file."""
    found = []
    for path in CONFIG_FILES:
        for entry in servers_of(json.loads(path.read_text(encoding="utf-8"))).values():
            if entry["command"] == "uvx":
                found.append(pytest.param(entry, id=path.name))
    return found


@pytest.fixture(scope="module")
def uv_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One private uv cache for this module's runs: downloaded once, never an older build's."""
    return tmp_path_factory.mktemp("uv-home")


@pytest.mark.dist
@pytest.mark.parametrize("entry", uvx_entries())
@pytest.mark.anyio
async def test_config_file_uvx_entry_starts_the_built_package(
    entry: dict[str, Any], fake: FakeOllama, tmp_path: Path, uv_home: Path
) -> None:
    """``uvx mcp-server-ollama`` as the file says, uv finding the wheel ``python -m build`` made."""
    env = {
        **uv_env(require_dist(), uv_home),
        **entry["env"],
        # The fake instead of a real Ollama, and a private database; the rest as the file has it.
        "OLLAMA_HOST": fake.url,
        "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
        "MCP_OLLAMA_PRELOAD": "off",
    }
    params = StdioServerParameters(command="uvx", args=entry["args"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=300) as client:
        listed = await client.list_tools()
    assert "chat" in {tool.name for tool in listed.tools}


@pytest.mark.skipif(sys.platform == "win32", reason="the clone's command is the POSIX .venv/bin path")
@pytest.mark.anyio
async def test_a_clones_command_starts_the_server(fake: FakeOllama, tmp_path: Path) -> None:
    """The docs' clone entry: ``/ABSOLUTE/PATH/TO/mcp-ollama/.venv/bin/mcp-server-ollama``, here."""
    [command] = set(re.findall(rf'"command": "({re.escape(PLACEHOLDER)}/[^"]+)"', hosts_doc()))
    resolved = resolve(command)
    if not resolved.exists():
        pytest.skip(f"{resolved} is not installed in .venv: see the README's two commands")
    env = {
        "OLLAMA_HOST": fake.url,
        "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
        "MCP_OLLAMA_PRELOAD": "off",
    }
    async with Client(StdioServerParameters(command=str(resolved), args=[], env=env)) as client:
        listed = await client.list_tools()
    assert "chat" in {tool.name for tool in listed.tools}


def json_blocks(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(block) for block in re.findall(r"^```json\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    ]


def test_readme_and_docs_host_configs_have_the_shape_hosts_read() -> None:
    configs = [c for c in json_blocks(readme() + hosts_doc()) if "mcpServers" in c or "servers" in c]
    assert len(configs) >= 3, "Claude Desktop and Cursor (uvx), VS Code (uvx), Windows (a clone)"
    for config in configs:
        for entry in servers_of(config).values():
            check_entry(entry)


@pytest.mark.parametrize("name", ["vscode-mcp.json", "cursor-mcp.json"])
def test_readme_shows_the_example_files_as_they_are(name: str) -> None:
    example = json.loads((ROOT / "examples" / name).read_text(encoding="utf-8"))
    assert example in json_blocks(readme()), f"the README's snippet and examples/{name} differ"


def test_readme_claude_code_command_runs_the_package_with_known_variables() -> None:
    [line] = [line.strip() for line in readme().splitlines() if line.strip().startswith("claude mcp add")]
    argv = shlex.split(line)
    assert argv[:4] == ["claude", "mcp", "add", "ollama"]
    options, command = argv[4 : argv.index("--")], argv[argv.index("--") + 1 :]
    assert options[::2] == ["--env"] * (len(options) // 2)
    variables = {pair.split("=", 1)[0] for pair in options[1::2]}
    assert variables == {"OLLAMA_HOST", "MCP_OLLAMA_MODEL"} and variables <= KNOWN_VARIABLES
    assert command == ["uvx", PACKAGE]


def test_install_lines_name_the_published_package_or_the_git_repository() -> None:
    """By name it is mcp-server-ollama (``mcp-ollama`` is another project: tests/test_docs.py); from git,
    this repository."""
    text = readme() + hosts_doc()
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(("pipx ", "uvx "))]
    assert len(lines) >= 2
    for line in lines:
        argv = shlex.split(line)
        if "--from" in argv:
            assert argv[argv.index("--from") + 1] == GIT_URL, line
            assert argv[argv.index("--from") + 2] == PACKAGE, line
        else:
            assert argv[1] == PACKAGE, line


def test_readme_inspector_commands_use_the_pinned_version() -> None:
    pinned = (ROOT / ".ci" / "inspector-version").read_text(encoding="utf-8").strip()
    text = readme() + hosts_doc()
    uses = re.findall(r"npx (\S+ )?@modelcontextprotocol/inspector(\S*)", text)
    assert len(uses) >= 5
    assert set(uses) == {("-y ", f"@{pinned}")}, "every Inspector command pins its version and says -y"
    assert "Node 22.19 or newer" in readme()
