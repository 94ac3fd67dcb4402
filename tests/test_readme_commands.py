"""Every command in the README's fenced shell blocks is run here, or says why it cannot be.

``ACCOUNT`` names each command and how it is covered: run by a test of this module against the
fake Ollama (with its address, a private database and a free port filled in, nothing else
changed), run by another test or by ``.ci/run``, or not runnable on a CI machine, with the reason.
A command the README gains without a line here fails the first test; so does a line for a command
the README no longer has. The runs marked ``dist`` need the built package and uv (``tests/built.py``):
``.ci/run`` provides both.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .built import GIT_URL, ROOT, USER_HOME, git_snapshot, require_dist, uv_env
from .conftest import INITIALIZE, free_port
from .fake_ollama import FakeOllama

README = ROOT / "README.md"
SHELLS = ("sh", "bash", "shell", "console", "bat", "powershell")
PINNED_INSPECTOR = (ROOT / ".ci" / "inspector-version").read_text(encoding="utf-8").strip()
INSPECTOR = f"npx -y @modelcontextprotocol/inspector@{PINNED_INSPECTOR}"
NODE_PREFIX = ROOT / ".ci" / "node"

HERE = "run by this module"
CI = "run by this module with the built package (-m dist, as .ci/run does)"
ELSEWHERE = "run by another test"
CANNOT = "cannot run on a CI machine"

ACCOUNT: dict[str, tuple[str, str]] = {
    "uvx mcp-server-ollama doctor": (CI, "test_uvx_commands_run_the_built_package"),
    f"uvx --from {GIT_URL} mcp-server-ollama doctor": (
        CI,
        "test_uvx_commands_run_the_built_package (from a local git repository of the work tree: "
        "OWNER is a placeholder)",
    ),
    "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/mcp-ollama": (
        CI,
        "test_run_the_server_command_serves_from_a_fresh_copy",
    ),
    'python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]" && .venv/bin/python -m pytest': (
        ELSEWHERE,
        ".ci/run runs it verbatim (test_the_test_command_is_what_ci_runs); this suite cannot run itself",
    ),
    r"py -m venv .venv && .venv\Scripts\pip install -q . && .venv\Scripts\mcp-ollama": (
        CANNOT,
        "Windows only; CI runs on Linux and simulates Windows (docs/development.md, Platforms)",
    ),
    r'py -m venv .venv && .venv\Scripts\pip install -q -e ".[test]" && .venv\Scripts\python -m pytest': (
        CANNOT,
        "Windows only; CI runs on Linux and simulates Windows (docs/development.md, Platforms)",
    ),
    "claude mcp add ollama --env OLLAMA_HOST=http://127.0.0.1:11434 --env MCP_OLLAMA_MODEL=llama3:8b "
    "-- uvx mcp-server-ollama": (
        CANNOT,
        "Claude Code is not installed on a CI machine; tests/test_hosts.py checks what the line names, "
        "and this module runs `uvx mcp-server-ollama`",
    ),
    f"{INSPECTOR} --cli uvx mcp-server-ollama --method tools/list": (
        CI,
        "test_inspector_commands_run_with_the_pinned_inspector",
    ),
    f"{INSPECTOR} --cli -e MCP_OLLAMA_ANSWER_DEADLINE=0 uvx mcp-server-ollama --method tools/call "
    "--tool-name chat --tool-arg message=hello": (
        CI,
        "test_inspector_commands_run_with_the_pinned_inspector",
    ),
    ".venv/bin/python -m tests.fake_ollama --port 11434 &": (HERE, "test_trying_it_without_a_gpu"),
    ".venv/bin/mcp-ollama doctor": (HERE, "test_trying_it_without_a_gpu"),
    '.venv/bin/mcp-ollama ask "Hello, what is MCP?"': (HERE, "test_trying_it_without_a_gpu"),
    'mcp-ollama ask "Hello, what is MCP?"': (HERE, "test_the_terminal_commands"),
    'mcp-ollama ask "Explain in Chinese." --session SESSION_ID': (HERE, "test_the_terminal_commands"),
    "mcp-ollama sessions list": (HERE, "test_the_terminal_commands"),
    "mcp-ollama sessions show SESSION_ID": (HERE, "test_the_terminal_commands"),
    "mcp-ollama sessions export SESSION_ID --format json": (HERE, "test_the_terminal_commands"),
    "mcp-ollama sessions delete SESSION_ID": (HERE, "test_the_terminal_commands"),
    "mcp-ollama models": (HERE, "test_the_terminal_commands"),
    "curl -s localhost:8765/chat -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
    '-d \'{"message": "Hello, what is MCP?"}\'': (
        ELSEWHERE,
        "tests/test_http.py::test_the_readmes_two_curl_commands_work_against_the_team_server",
    ),
    "curl -s localhost:8765/chat -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
    '-d \'{"session_id": "SESSION_ID", "message": "Explain in Chinese."}\'': (
        ELSEWHERE,
        "tests/test_http.py::test_the_readmes_two_curl_commands_work_against_the_team_server",
    ),
}


def shell_blocks(text: str) -> list[list[str]]:
    """The commands of each fenced shell block, a command continued with ``\\`` joined into one."""
    blocks = []
    for lang, body in re.findall(r"^```(\w+)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        if lang not in SHELLS:
            continue
        commands: list[str] = []
        pending = ""
        for line in body.splitlines():
            if pending:
                line = pending + " " + line.strip()
                pending = ""
            if line.endswith("\\") and lang != "bat":
                pending = line[:-1].rstrip()
                continue
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
        blocks.append(commands)
    return blocks


def readme_commands() -> list[str]:
    return [command for block in shell_blocks(README.read_text(encoding="utf-8")) for command in block]


def block_with(first: str) -> list[str]:
    """The README's block that starts with ``first``."""
    [block] = [b for b in shell_blocks(README.read_text(encoding="utf-8")) if b and b[0] == first]
    return block


def commands_for(test: str) -> list[str]:
    """The README's commands, in README order, that ``ACCOUNT`` gives to ``test``."""
    return [c for c in readme_commands() if ACCOUNT[c][1].startswith(test)]


def test_every_command_in_the_readme_is_accounted_for() -> None:
    commands = readme_commands()
    assert len(commands) == len(set(commands)), "a command appears twice"
    unaccounted = [c for c in commands if c not in ACCOUNT]
    stale = [c for c in ACCOUNT if c not in commands]
    assert not unaccounted, f"say how these README commands are run, in ACCOUNT: {unaccounted}"
    assert not stale, f"ACCOUNT names commands the README no longer has: {stale}"
    for command, (kind, why) in ACCOUNT.items():
        assert kind in (HERE, CI, ELSEWHERE, CANNOT) and why, command
        if kind in (HERE, CI):
            assert why.split()[0] in globals(), f"{command}: no test {why.split()[0]} here"


def test_the_test_command_is_what_ci_runs() -> None:
    """The README's second command is first-class: ``.ci/run`` runs exactly that line."""
    [command] = [c for c, (_, why) in ACCOUNT.items() if why.startswith(".ci/run runs it verbatim")]
    assert command in readme_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in ci_lines


# ---------------------------------------------------------------------------- run against the fake


def venv_program(name: str) -> Path:
    program = ROOT / ".venv" / "bin" / name
    if sys.platform == "win32" or not program.exists():
        pytest.skip(f"{program} does not exist: create it with the README's test command")
    return program


def run(
    command: str, env: dict[str, str], cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def started_fakes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
        process.communicate(timeout=30)  # waits, and closes its pipe


def test_trying_it_without_a_gpu(tmp_path: Path, started_fakes: list[subprocess.Popen[str]]) -> None:
    """The block as written, line by line; only the fake's port is a free one instead of 11434."""
    venv_program("mcp-ollama")
    start, *rest = block_with(commands_for("test_trying_it_without_a_gpu")[0])
    port = free_port()
    env = {
        **os.environ,
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
    }
    assert start.endswith(" &") and "--port 11434" in start
    fake = subprocess.Popen(
        shlex.split(start.removesuffix(" &").replace("--port 11434", f"--port {port}")),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    started_fakes.append(fake)
    assert fake.stdout is not None
    assert fake.stdout.readline().strip() == f"listening on http://127.0.0.1:{port}"
    outputs = {}
    for command in rest:
        done = run(command, env)
        assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
        outputs[command.split()[1]] = done
    assert "[ok] ollama" in outputs["doctor"].stdout
    assert outputs["ask"].stdout.strip() == "You said: Hello, what is MCP?. I have seen 0 earlier messages."


def test_the_terminal_commands(fake: FakeOllama, tmp_path: Path) -> None:
    """``mcp-ollama`` as on PATH after ``uv tool install`` (here: this environment's script)."""
    venv_program("mcp-ollama")
    block = block_with(commands_for("test_the_terminal_commands")[0])
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(ROOT / ".venv" / "bin"), os.environ.get("PATH", "")]),
        "OLLAMA_HOST": fake.url,
        "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
        "MCP_OLLAMA_PRELOAD": "off",
    }
    session_id = ""
    done: dict[str, subprocess.CompletedProcess[str]] = {}
    for command in block:
        if "SESSION_ID" in command:
            assert session_id, f"no session id yet for: {command}"
        result = run(command.replace("SESSION_ID", session_id), env)
        assert result.returncode == 0, f"$ {command}\n{result.stdout}\n{result.stderr}"
        if not session_id and command.startswith("mcp-ollama ask"):
            session_id = re.findall(r"session: (\S+)", result.stderr)[-1]
        done[command] = result
    first, second, listing, show, export, delete, models = (done[c] for c in block)
    assert first.stdout.strip() == "You said: Hello, what is MCP?. I have seen 0 earlier messages."
    assert second.stdout.strip() == "You said: Explain in Chinese.. I have seen 2 earlier messages."
    assert listing.stdout.startswith(session_id) and "Hello, what is MCP?" in listing.stdout
    assert "Explain in Chinese." in show.stdout
    exported = json.loads(export.stdout)
    assert exported["session_id"] == session_id and len(exported["messages"]) == 4
    assert session_id in delete.stdout + delete.stderr
    again = run("mcp-ollama sessions list", env)
    assert session_id not in again.stdout
    assert models.stdout.startswith("llama3:8b")


# ---------------------------------------------------------------------------- with the built package


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A git repository of the work tree's sources (a fresh copy of the project) and its URL."""
    path = tmp_path_factory.mktemp("clone") / "mcp-ollama"
    return path, git_snapshot(path)


def write_uv_config(home: Path, dist: Path) -> None:
    """The Inspector starts its server with only HOME, PATH and a few more: uv finds the built
    wheel through a config file in that HOME instead of UV_FIND_LINKS, and the machine's
    certificates through the system store instead of SSL_CERT_FILE."""
    config = home / ".config" / "uv"
    config.mkdir(parents=True, exist_ok=True)
    text = f"find-links = [{json.dumps(str(dist))}]\nsystem-certs = true\n"
    (config / "uv.toml").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def uv_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One private uv cache for this module's runs: downloaded once, never an older build's."""
    return tmp_path_factory.mktemp("uv-home")


@pytest.mark.dist
def test_uvx_commands_run_the_built_package(
    fake: FakeOllama, tmp_path: Path, snapshot: tuple[Path, str], uv_home: Path
) -> None:
    dist = require_dist()
    env = {
        **uv_env(dist, uv_home),
        "OLLAMA_HOST": fake.url,
        "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
    }
    commands = commands_for("test_uvx_commands_run_the_built_package")
    assert len(commands) == 2
    for command in commands:
        done = run(command.replace(GIT_URL, snapshot[1]), env, cwd=tmp_path, timeout=600)
        assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
        assert "[ok] ollama" in done.stdout and "[ok] model: llama3:8b is pulled" in done.stdout


@pytest.mark.dist
@pytest.mark.timeout(900)  # pip builds the package and installs its dependencies
def test_run_the_server_command_serves_from_a_fresh_copy(snapshot: tuple[Path, str], tmp_path: Path) -> None:
    """The README's first command, verbatim, in a fresh copy of the project: it creates ``.venv``,
    installs, and serves MCP on stdin/stdout until stdin closes."""
    require_dist()  # CI only: pip builds the package and installs its dependencies
    [command] = commands_for("test_run_the_server_command_serves_from_a_fresh_copy")
    copy = snapshot[0]
    shutil.rmtree(copy / ".venv", ignore_errors=True)
    requests = [
        INITIALIZE,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    env = {
        **os.environ,
        "PIP_CACHE_DIR": str(USER_HOME / ".cache" / "pip"),
        "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
        "MCP_OLLAMA_PRELOAD": "off",
    }
    server = subprocess.Popen(
        ["bash", "-c", command],
        cwd=copy,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    answers: dict[int, dict[str, Any]] = {}
    try:
        for request in requests:  # each answered before the next: stdin's end cancels what is in flight
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            while "id" in request and request["id"] not in answers:
                line = server.stdout.readline()
                assert line, f"the server stopped before answering {request['method']}"
                message = json.loads(line)
                if "id" in message:
                    answers[message["id"]] = message
        server.stdin.close()
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
        if not server.stdin.closed:
            server.stdin.close()
    assert answers[1]["result"]["serverInfo"]["name"] == "mcp-ollama"
    assert "chat" in {tool["name"] for tool in answers[2]["result"]["tools"]}
    assert (copy / ".venv" / "bin" / "mcp-server-ollama").exists()


@pytest.mark.dist
def test_inspector_commands_run_with_the_pinned_inspector(
    fake: FakeOllama, tmp_path: Path, uv_home: Path
) -> None:
    """``npx -y`` resolves the pinned Inspector that ``.ci/run`` installed in ``.ci/node`` (offline,
    from that directory); the second command also gets ``-e OLLAMA_HOST=`` the fake."""
    dist = require_dist()
    if not (NODE_PREFIX / "node_modules" / "@modelcontextprotocol" / "inspector").is_dir():
        pytest.skip(f"the pinned MCP Inspector is not installed in {NODE_PREFIX}: .ci/run installs it")
    if shutil.which("npx") is None:
        pytest.skip("npx is not on PATH")
    env = {**uv_env(dist, uv_home), "npm_config_offline": "true"}
    write_uv_config(uv_home, dist)
    listing, call = commands_for("test_inspector_commands_run_with_the_pinned_inspector")
    # uvx installs on its first run, which can take longer than the Inspector's 15 s to connect:
    # a user meets the Inspector after the README's install step, which did that install.
    warm = run("uvx mcp-server-ollama --version", env, cwd=tmp_path, timeout=600)
    assert warm.returncode == 0, warm.stderr
    done = run(listing, env, cwd=NODE_PREFIX, timeout=600)
    assert done.returncode == 0, f"$ {listing}\n{done.stdout}\n{done.stderr}"
    assert "chat" in {tool["name"] for tool in json.loads(done.stdout)["tools"]}
    with_fake = call.replace("--cli ", f"--cli -e OLLAMA_HOST={fake.url} ", 1)
    done = run(with_fake, env, cwd=NODE_PREFIX, timeout=600)
    assert done.returncode == 0, f"$ {with_fake}\n{done.stdout}\n{done.stderr}"
    result = json.loads(done.stdout)
    assert result["structuredContent"]["answer"].startswith("You said: hello")
