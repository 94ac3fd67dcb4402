"""Every host's install path in the README and ``examples/``: the shape each host reads, and it runs.

Each config file is loaded as its host loads it, its command resolved as the host would resolve it
(``${workspaceFolder}`` or the README's ``/ABSOLUTE/PATH/TO/mcp-ollama`` placeholder = this clone),
and started as a stdio server that must answer ``tools/list``. Hosts themselves (Claude Desktop,
Claude Code, VS Code, Cursor) are not run here; the README's commands for them are checked for
what they name.
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

from .fake_ollama import FakeOllama

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PLACEHOLDER = "/ABSOLUTE/PATH/TO/mcp-ollama"
CONFIG_FILES = [*sorted((ROOT / "examples").glob("*.json")), ROOT / "claude_desktop_config.example.json"]
KNOWN_VARIABLES = {spec.env for spec in SETTINGS_SPEC}


def readme() -> str:
    return README.read_text(encoding="utf-8")


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
    name = entry["command"].replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".exe")
    assert name in console_scripts(), f"{entry['command']!r} is not a console script of this package"


def resolve(command: str) -> Path:
    """The command as a host would start it from this clone."""
    return Path(command.replace("${workspaceFolder}", str(ROOT)).replace(PLACEHOLDER, str(ROOT)))


def the_entry(path: Path) -> tuple[dict[str, Any], Path | None]:
    """A file's one server entry, and its command resolved in this clone (None if it does not exist)."""
    [entry] = servers_of(json.loads(path.read_text(encoding="utf-8"))).values()
    command = resolve(entry["command"])
    return entry, command if command.exists() else None


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_config_file_has_the_shape_its_host_reads(path: Path) -> None:
    for entry in servers_of(json.loads(path.read_text(encoding="utf-8"))).values():
        check_entry(entry)


@pytest.mark.skipif(sys.platform == "win32", reason="the example files name the POSIX .venv/bin path")
@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
@pytest.mark.anyio
async def test_config_file_command_starts_the_server(path: Path, fake: FakeOllama, tmp_path: Path) -> None:
    entry, command = the_entry(path)
    if command is None:
        pytest.skip(f"{entry['command']} is not installed in .venv: see the README's two commands")
    env = {
        **entry["env"],
        # The fake instead of a real Ollama, and a private database; the rest as the file has it.
        "OLLAMA_HOST": fake.url,
        "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
        "MCP_OLLAMA_PRELOAD": "off",
    }
    async with Client(StdioServerParameters(command=str(command), args=entry["args"], env=env)) as client:
        listed = await client.list_tools()
    assert "chat" in {tool.name for tool in listed.tools}


def json_blocks(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(block) for block in re.findall(r"^```json\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    ]


def test_readme_host_configs_have_the_shape_hosts_read() -> None:
    configs = [c for c in json_blocks(readme()) if "mcpServers" in c or "servers" in c]
    assert len(configs) >= 4, "Claude Desktop (POSIX, Windows), VS Code, Cursor"
    for config in configs:
        for entry in servers_of(config).values():
            check_entry(entry)


@pytest.mark.parametrize("name", ["vscode-mcp.json", "cursor-mcp.json"])
def test_readme_shows_the_example_files_as_they_are(name: str) -> None:
    example = json.loads((ROOT / "examples" / name).read_text(encoding="utf-8"))
    assert example in json_blocks(readme()), f"the README's snippet and examples/{name} differ"


def test_readme_claude_code_command_names_the_console_script_and_known_variables() -> None:
    [line] = [line.strip() for line in readme().splitlines() if line.strip().startswith("claude mcp add")]
    argv = shlex.split(line)
    assert argv[:4] == ["claude", "mcp", "add", "ollama"]
    options, command = argv[4 : argv.index("--")], argv[argv.index("--") + 1 :]
    assert options[::2] == ["--env"] * (len(options) // 2)
    variables = {pair.split("=", 1)[0] for pair in options[1::2]}
    assert variables == {"OLLAMA_HOST", "MCP_OLLAMA_MODEL"} and variables <= KNOWN_VARIABLES
    assert Path(command[0]).name in console_scripts() and command[0].startswith(PLACEHOLDER)
    assert resolve(command[0]) == ROOT / ".venv" / "bin" / "mcp-ollama"


def test_readme_pipx_and_uvx_lines_install_from_git_not_by_name() -> None:
    """The package index's ``mcp-ollama`` is another project: the README installs from git."""
    lines = [line.strip() for line in readme().splitlines() if line.strip().startswith(("pipx ", "uvx "))]
    assert len(lines) == 3
    for line in lines:
        assert "git+https://github.com/OWNER/mcp-ollama" in shlex.split(line), line


def test_readme_inspector_commands_use_the_pinned_version() -> None:
    pinned = (ROOT / ".ci" / "inspector-version").read_text(encoding="utf-8").strip()
    text = readme()
    uses = re.findall(r"npx @modelcontextprotocol/inspector(\S*)", text)
    assert len(uses) >= 5
    assert set(uses) == {f"@{pinned}"}, "every Inspector command pins .ci/inspector-version"
    assert "Node 22.19 or newer" in text
