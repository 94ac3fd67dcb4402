"""The installed ``mcp-ollama`` driven by the MCP Inspector CLI (npm), against the loopback fake Ollama.

Every Inspector invocation spawns a fresh server over stdio, so a conversation that spans
several invocations exercises the SQLite session store across processes. The Inspector is
pinned in ``.ci/inspector-version`` and lives in ``.ci/node`` (``.ci/run`` installs it; so does
this module, with npm, when it is missing). ``MCP_INSPECTOR_CLI`` names another executable.

What the pinned Inspector (2.12.0) does, as these tests rely on it:

* ``--format json`` prints one JSON object, ``{"result": ...}``, on stdout; a failure prints
  ``{"error": {"code": ..., "message": ...}}`` as a line on stderr (after the server's stderr).
* Exit codes: 0 success; 1 a JSON-RPC error (and usage errors); 5 a tool result with
  ``isError: true``, and also a ``tools/call`` of a tool that ``tools/list`` lacks: the
  Inspector refuses that itself (code ``tool_not_found``) and never sends the call.
* ``-e KEY=VALUE`` sets the server's environment; ``--tool-arg`` / ``--prompt-args`` values
  are parsed as JSON first (``message=12345`` sends a number), so ``kv`` JSON-quotes them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .fake_ollama import FakeOllama

ROOT = Path(__file__).resolve().parent.parent
VERSION_FILE = ROOT / ".ci" / "inspector-version"
PREFIX = ROOT / ".ci" / "node"
PACKAGE = "@modelcontextprotocol/inspector"
BIN_NAME = "mcp-inspector"
OVERRIDE_ENV = "MCP_INSPECTOR_CLI"
INSTALL_TIMEOUT = 300.0
RUN_TIMEOUT = 30.0

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_TOOL_ERROR = 5


# ---------------------------------------------------------------------------- finding the Inspector


def pinned_version() -> str:
    return VERSION_FILE.read_text(encoding="utf-8").strip()


def installed_version() -> str | None:
    """The version of the Inspector in ``.ci/node``, or None when it is not installed there."""
    manifest = PREFIX / "node_modules" / PACKAGE / "package.json"
    try:
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
    return version if isinstance(version, str) else None


def install_inspector(npm: str, version: str) -> None:
    """``npm install`` the pinned Inspector into ``.ci/node``, as ``.ci/run`` does."""
    argv = [npm, "install", "--prefix", str(PREFIX), "--no-save", "--no-audit", "--no-fund"]
    argv += ["--loglevel=error", f"{PACKAGE}@{version}"]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(argv)}` took more than {INSTALL_TIMEOUT:.0f} s")
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(argv)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")


@dataclass(frozen=True)
class InspectorCli:
    executable: str
    expected_version: str | None
    """The pinned version, or None when ``MCP_INSPECTOR_CLI`` chose the executable."""


pytestmark = pytest.mark.clients  # a client we did not write: CI runs these, `pytest -m clients` here


@pytest.fixture(scope="session")
def inspector_cli() -> InspectorCli:
    """The Inspector CLI: the override, else the pinned one in ``.ci/node`` (installed on demand).

    Session-scoped, so it runs before the autouse fixture that isolates ``HOME``: npm sees the
    user's own configuration and cache.
    """
    override = os.environ.get(OVERRIDE_ENV)
    if override:
        if shutil.which(override) is None:
            pytest.fail(f"{OVERRIDE_ENV}={override!r} is not an executable")
        return InspectorCli(override, None)
    version = pinned_version()
    if installed_version() != version:
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(
                f"MCP Inspector {version} is not installed in {PREFIX} and npm is not on PATH: "
                f"run .ci/run, or set {OVERRIDE_ENV}"
            )
        install_inspector(npm, version)
    if shutil.which("node") is None:
        pytest.skip(f"MCP Inspector {version} is installed in {PREFIX} but node is not on PATH")
    executable = PREFIX / "node_modules" / ".bin" / BIN_NAME
    if installed_version() != version or not executable.exists():
        pytest.fail(f"installing {PACKAGE}@{version} left no {executable}")
    return InspectorCli(str(executable), version)


def server_command() -> str:
    """The ``mcp-ollama`` console script of the environment running the tests."""
    bindir = Path(sys.executable).parent
    found = shutil.which("mcp-ollama", path=str(bindir))
    if found is None:
        pytest.fail(f"no mcp-ollama console script next to {sys.executable}: is the package installed?")
    return found


# ---------------------------------------------------------------------------- running it


@dataclass(frozen=True)
class Run:
    """One Inspector CLI invocation and what it printed."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit {self.code}\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )

    def document(self) -> dict[str, Any]:
        """The one JSON object ``--format json`` prints on stdout."""
        try:
            doc = json.loads(self.stdout)
        except ValueError:
            pytest.fail(f"stdout is not one JSON document:\n{self}")
        assert isinstance(doc, dict) and set(doc) == {"result"}, str(self)
        return doc

    def result(self, expected_code: int = EXIT_OK) -> dict[str, Any]:
        """The ``result`` the Inspector printed, after checking the exit code."""
        assert self.code == expected_code, str(self)
        result = self.document()["result"]
        assert isinstance(result, dict), str(self)
        return result

    def error(self, expected_code: int) -> dict[str, Any]:
        """The ``error`` envelope: the last JSON line on stderr, after checking the exit code."""
        assert self.code == expected_code, str(self)
        for line in reversed(self.stderr.splitlines()):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
                error: dict[str, Any] = doc["error"]
                return error
        pytest.fail(f"no JSON error envelope on stderr:\n{self}")


def kv(key: str, value: str) -> str:
    """A ``--tool-arg`` / ``--prompt-args`` pair that arrives as exactly this string."""
    return f"{key}={json.dumps(value)}"


@dataclass
class Inspector:
    """Runs the Inspector CLI against a fresh ``mcp-ollama`` pointed at the fake and one database."""

    cli: InspectorCli
    env: dict[str, str]
    cwd: Path
    era: str = "legacy"
    server: str = field(default_factory=server_command)

    def __call__(self, method: str, *options: str) -> Run:
        argv = [self.cli.executable, "--cli"]
        for key, value in self.env.items():
            argv += ["-e", f"{key}={value}"]
        argv += [self.server, "--method", method, *options]
        argv += ["--protocol-era", self.era, "--format", "json"]
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                encoding="utf-8",
                timeout=RUN_TIMEOUT,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"$ {' '.join(argv)}\ntook more than {RUN_TIMEOUT:.0f} s; stderr: {exc.stderr!r}")
        return Run(argv, proc.returncode, proc.stdout, proc.stderr)

    def chat(self, message: str, *args: str) -> Run:
        return self("tools/call", "--tool-name", "chat", "--tool-arg", kv("message", message), *args)


@pytest.fixture
def inspector(inspector_cli: InspectorCli, fake: FakeOllama, db_path: str, tmp_path: Path) -> Inspector:
    return Inspector(
        inspector_cli,
        {"OLLAMA_HOST": fake.url, "MCP_OLLAMA_DB": db_path, "MCP_OLLAMA_PRELOAD": "off"},
        tmp_path,
    )


def only_text(content: list[dict[str, Any]]) -> str:
    """The text of a content list that holds exactly one text block."""
    assert [block["type"] for block in content] == ["text"], content
    text = content[0]["text"]
    assert isinstance(text, str)
    return text


def contents_by_mime(result: dict[str, Any]) -> dict[str, str]:
    """A ``resources/read`` result's text contents, keyed by MIME type."""
    return {item["mimeType"]: item["text"] for item in result["contents"]}


# ---------------------------------------------------------------------------- tests


def test_inspector_is_the_pinned_version(inspector_cli: InspectorCli) -> None:
    if inspector_cli.expected_version is None:
        pytest.skip(f"{OVERRIDE_ENV} chose the Inspector; no pinned version to compare")
    proc = subprocess.run(
        [inspector_cli.executable, "--version"], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == inspector_cli.expected_version


def test_tools_list_shows_chat_with_its_schemas(inspector: Inspector) -> None:
    run = inspector("tools/list", "--strict")  # --strict: exit 6 on a non-portable tool schema
    tools = {tool["name"]: tool for tool in run.result()["tools"]}
    assert {"chat", "list_models", "delete_session", "clear_session"} <= set(tools)
    chat = tools["chat"]
    assert chat["title"] == "Chat with a local model"
    assert chat["inputSchema"]["type"] == "object"
    assert chat["inputSchema"]["required"] == ["message"]
    assert {"message", "session_id", "model", "options"} <= set(chat["inputSchema"]["properties"])
    output = chat["outputSchema"]
    assert output["type"] == "object"
    assert {"session_id", "answer", "model", "history_messages", "usage", "timings"} <= set(
        output["properties"]
    )
    assert "session_id" in output["required"]
    assert chat["annotations"]["readOnlyHint"] is False
    assert "outputSchema" in tools["list_models"]
    assert tools["list_models"]["annotations"]["readOnlyHint"] is True


@pytest.mark.slow  # four Inspector processes per era: ~16 s; CI runs it with -m slow
@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_a_session_across_inspector_runs(inspector: Inspector, fake: FakeOllama, era: str) -> None:
    inspector.era = era

    first = inspector.chat("Hi, I am Grace.").result()
    assert first["isError"] is False
    structured = first["structuredContent"]
    sid = structured["session_id"]
    assert structured["new_session"] is True
    assert structured["history_messages"] == 0
    assert structured["model"] == "llama3:8b"
    assert only_text(first["content"]) == structured["answer"]
    assert "I have seen 0 earlier messages" in structured["answer"]

    # A new process: the history comes back from the SQLite file.
    second = inspector.chat("Who am I?", "--tool-arg", kv("session_id", sid)).result()
    assert second["structuredContent"]["session_id"] == sid
    assert second["structuredContent"]["new_session"] is False
    assert second["structuredContent"]["history_messages"] == 2
    assert only_text(second["content"]) == "You said: Who am I?. I have seen 2 earlier messages."
    sent = [m["content"] for m in fake.chat_requests[-1]["messages"] if m["role"] != "system"]
    assert sent[:2] == ["Hi, I am Grace.", structured["answer"]]

    listed = inspector("resources/list").result()["resources"]
    assert [r["uri"] for r in listed] == [f"chat://sessions/{sid}"]
    assert listed[0]["mimeType"] == "application/json"
    assert listed[0]["title"] == "Hi, I am Grace."

    read = inspector("resources/read", "--uri", f"chat://sessions/{sid}").result()
    assert {item["uri"] for item in read["contents"]} == {f"chat://sessions/{sid}"}
    texts = contents_by_mime(read)
    transcript = json.loads(texts["application/json"])
    assert transcript["session_id"] == sid
    assert transcript["turn_count"] == 2
    assert [m["role"] for m in transcript["messages"]] == ["user", "assistant", "user", "assistant"]
    assert transcript["messages"][2]["content"] == "Who am I?"
    assert "I have seen 2 earlier messages" in transcript["messages"][3]["content"]
    assert "## User" in texts["text/markdown"] and "Who am I?" in texts["text/markdown"]

    prompts = {p["name"]: p for p in inspector("prompts/list").result()["prompts"]}
    assert {"system_prompt", "continue_session"} <= set(prompts)
    assert [(a["name"], a.get("required")) for a in prompts["continue_session"]["arguments"]] == [
        ("session_id", True)
    ]
    assert {a["name"] for a in prompts["system_prompt"]["arguments"]} == {"language", "style"}

    plain = inspector("prompts/get", "--prompt-name", "system_prompt").result()
    assert [m["role"] for m in plain["messages"]] == ["user"]
    plain_text = plain["messages"][0]["content"]["text"]
    assert "assistant" in plain_text
    shaped = inspector(
        "prompts/get", "--prompt-name", "system_prompt", "--prompt-args", kv("language", "French")
    ).result()
    shaped_text = shaped["messages"][0]["content"]["text"]
    assert shaped_text.startswith(plain_text)
    assert "French" in shaped_text and "French" not in plain_text

    resumed = inspector(
        "prompts/get", "--prompt-name", "continue_session", "--prompt-args", kv("session_id", sid)
    ).result()
    messages = resumed["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [m["content"]["type"] for m in messages] == ["text"] * 4
    assert [m["content"]["text"] for m in messages] == [m["content"] for m in transcript["messages"]]


def test_an_unknown_tool_is_refused_by_the_inspector_with_exit_5(
    inspector: Inspector, fake: FakeOllama
) -> None:
    run = inspector("tools/call", "--tool-name", "no_such_tool", "--tool-arg", kv("message", "hi"))
    error = run.error(EXIT_TOOL_ERROR)
    assert error["code"] == "tool_not_found"
    assert "no_such_tool" in error["message"]
    assert run.stdout == ""
    assert fake.chat_requests == []


def test_chat_with_a_model_that_is_not_pulled_exits_5(inspector: Inspector, fake: FakeOllama) -> None:
    run = inspector.chat("hi", "--tool-arg", kv("model", "nosuch:1b"))
    result = run.result(EXIT_TOOL_ERROR)
    assert result["isError"] is True
    assert "structuredContent" not in result
    text = only_text(result["content"])
    assert "nosuch:1b" in text and "ollama pull nosuch:1b" in text
    assert run.error(EXIT_TOOL_ERROR)["code"] == "tool_is_error"
    assert inspector("resources/list").result()["resources"] == []


def test_jsonrpc_errors_exit_1(inspector: Inspector) -> None:
    missing = inspector("resources/read", "--uri", "chat://sessions/ghost").error(EXIT_ERROR)
    assert missing["message"] == "Resource not found"
    prompt = inspector(
        "prompts/get", "--prompt-name", "continue_session", "--prompt-args", kv("session_id", "ghost")
    ).error(EXIT_ERROR)
    assert "ghost" in prompt["message"]
