"""The ``mcp-ollama`` command as a person runs it: ``ask``, ``sessions``, ``models``, wrong flags, a TTY.

Commands run as real subprocesses against the fake Ollama, with the session database in the
test's own directory; the flag checks run in-process (they end before any command starts).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp_ollama.cli import build_parser, find_misuse, main
from mcp_ollama.config import load_settings
from mcp_ollama.store import ChatStore

from .conftest import INITIALIZE, free_port
from .fake_ollama import Behavior, FakeModel, FakeOllama

WAIT = 30.0
"""Generous limit for a condition a subprocess should reach (2 noisy cores); never a measurement."""


def cli_env(ollama_url: str, db_path: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)  # conftest has pointed HOME and XDG_DATA_HOME at a temp dir
    env.update({"OLLAMA_HOST": ollama_url, "MCP_OLLAMA_DB": db_path, **extra})
    return env


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "mcp_ollama", *args],
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
    )


def session_of(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("session: ")]
    assert len(lines) == 1, stderr
    return lines[0].removeprefix("session: ")


def read_until(fd: int, marker: bytes, timeout: float = WAIT) -> bytes:
    """Bytes from ``fd`` up to and including the first ``marker``; fails the test after ``timeout``."""
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"{marker!r} not seen; got {data!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"{marker!r} not seen before EOF; got {data!r}"
            data += chunk
    return data


@pytest.fixture
def env(fake: FakeOllama, db_path: str) -> dict[str, str]:
    return cli_env(fake.url, db_path)


# --- ask --------------------------------------------------------------------------------------


def test_the_original_demo_in_two_commands(env: dict[str, str], fake: FakeOllama, db_path: str) -> None:
    first = run_cli(env, "ask", "Hello, what is MCP?")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "You said: Hello, what is MCP?. I have seen 0 earlier messages.\n"
    sid = session_of(first.stderr)

    second = run_cli(env, "ask", "Explain in Chinese.", "--session", sid)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "You said: Explain in Chinese.. I have seen 2 earlier messages.\n"
    assert session_of(second.stderr) == sid
    sent = fake.chat_requests[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "Hello, what is MCP?"),
        ("assistant", "You said: Hello, what is MCP?. I have seen 0 earlier messages."),
        ("user", "Explain in Chinese."),
    ]
    assert sent[0]["role"] == "system"
    with ChatStore.open(db_path) as store:
        assert [m.role for m in store.messages(sid)] == ["user", "assistant"] * 2


def test_ask_json_prints_one_object_and_settings_work_after_the_command(
    env: dict[str, str], fake: FakeOllama, db_path: str
) -> None:
    fake.models.append(FakeModel(name="phi3:mini", family="phi3"))
    done = run_cli(env, "ask", "Hi there", "--json", "--model", "phi3:mini", "--session", "json-1", "--new")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["session_id"] == "json-1"
    assert document["model"] == "phi3:mini"
    assert document["answer"] == "You said: Hi there. I have seen 0 earlier messages."
    assert set(document["usage"]) == {"prompt_tokens", "completion_tokens", "total_ms"}
    assert document["usage"]["completion_tokens"] > 0
    assert "session:" not in done.stderr
    assert fake.chat_requests[-1]["model"] == "phi3:mini"


def test_ask_reads_the_message_from_stdin(env: dict[str, str]) -> None:
    done = run_cli(env, "ask", "-", stdin="piped in")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("You said: piped in.")


def test_ask_never_imports_the_mcp_sdk(env: dict[str, str]) -> None:
    done = run_cli(env, "ask", "quick", python_flags=("-X", "importtime"))
    assert done.returncode == 0, done.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert "mcp_ollama.core.chat" in imported
    assert [name for name in imported if name.split(".")[0] in ("mcp", "mcp_types")] == []


def test_ctrl_c_stops_ollama_stores_nothing_and_exits_130(fake: FakeOllama, db_path: str) -> None:
    fake.enqueue(Behavior(token_count=100_000, token_delay=0.02))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_ollama", "ask", "write forever", "--session", "stopped", "--new"],
        env=cli_env(fake.url, db_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert fake.wait_for_active(timeout=WAIT)
        assert proc.stdout is not None
        read_until(proc.stdout.fileno(), b"tok1 ")  # tokens reach stdout while the model writes
        assert fake.active_streams == 1
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert fake.wait_for_hangup(timeout=WAIT)
    assert "nothing was stored" in err.decode()
    assert "Traceback" not in err.decode()
    with ChatStore.open(db_path) as store:
        assert store.get_session("stopped") is None
        assert store.count_sessions() == 0


@pytest.mark.parametrize(
    ("problem", "expected"),
    [("ollama-down", "Cannot reach Ollama"), ("model-not-pulled", "ollama pull phi3:mini")],
)
def test_ask_failures_are_one_readable_sentence(
    fake: FakeOllama, db_path: str, problem: str, expected: str
) -> None:
    if problem == "ollama-down":
        done = run_cli(cli_env(f"http://127.0.0.1:{free_port()}", db_path), "ask", "hello?")
    else:
        done = run_cli(cli_env(fake.url, db_path), "ask", "hello?", "--model", "phi3:mini")
    assert done.returncode == 1
    assert done.stdout == ""
    assert expected in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("mcp-ollama: ")
    with ChatStore.open(db_path) as store:
        assert store.count_sessions() == 0


# --- sessions and models ----------------------------------------------------------------------


@pytest.fixture
def prepared(db_path: str) -> str:
    """A store with two sessions: 'recipes' (2 turns, one with an escape sequence) and 'older'."""
    with ChatStore.open(db_path) as store:
        store.append_turn("older", model="phi3:mini", user="An old question", assistant="An old answer")
        store.append_turn("recipes", model="llama3:8b", user="How do I bake bread?", assistant="Knead it.")
        store.append_turn(
            "recipes", model="llama3:8b", user="And \x1b[2Jcake?", assistant="Whisk it.\nThen bake."
        )
    return db_path


def test_sessions_list_shows_most_recent_first(env: dict[str, str], prepared: str) -> None:
    done = run_cli(env, "sessions", "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["recipes", "older"]
    assert "2 turns" in lines[0] and "llama3:8b" in lines[0] and lines[0].endswith("How do I bake bread?")
    assert "1 turn " in lines[1] and "phi3:mini" in lines[1]
    # The columns line up: ids, models and titles of different lengths, padded to the widest.
    assert lines[0].index("llama3:8b") == lines[1].index("phi3:mini")
    assert lines[0].index("How do I bake bread?") == lines[1].index("An old question")
    assert run_cli(env, "sessions").stdout == done.stdout  # list is the default action
    limited = run_cli(env, "--db", prepared, "sessions", "list", "--limit", "1")
    assert limited.stdout.splitlines() == lines[:1]
    assert "--limit" in limited.stderr


def test_sessions_show_and_export(env: dict[str, str], prepared: str) -> None:
    show = run_cli(env, "sessions", "show", "recipes")
    assert show.returncode == 0, show.stderr
    assert show.stdout.startswith("# How do I bake bread?\n")
    assert "## User" in show.stdout and "Whisk it.\nThen bake." in show.stdout
    assert "\x1b" not in show.stdout and "And cake?" in show.stdout  # nothing acts on the terminal

    markdown = run_cli(env, "sessions", "export", "recipes")
    assert markdown.returncode == 0
    assert "\x1b" not in markdown.stdout and "And cake?" in markdown.stdout  # it may go to a terminal
    exported = run_cli(env, "sessions", "export", "recipes", "--format", "json")
    assert not [c for c in exported.stdout if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F]
    document = json.loads(exported.stdout)  # the data as stored, every character escaped
    assert document["session_id"] == "recipes" and document["turn_count"] == 2
    assert [m["content"] for m in document["messages"]] == [
        "How do I bake bread?",
        "Knead it.",
        "And \x1b[2Jcake?",
        "Whisk it.\nThen bake.",
    ]


def test_sessions_delete(env: dict[str, str], prepared: str) -> None:
    done = run_cli(env, "sessions", "delete", "older")
    assert done.returncode == 0, done.stderr
    assert "older" in done.stdout
    again = run_cli(env, "sessions", "delete", "older")
    assert again.returncode == 1 and "No chat session with id 'older'" in again.stderr
    missing = run_cli(env, "sessions", "show", "older")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    with ChatStore.open(prepared) as store:
        assert [s.id for s in store.list_sessions()[0]] == ["recipes"]


def test_sessions_read_creates_no_database(fake: FakeOllama, tmp_path: Path) -> None:
    db = tmp_path / "not-yet" / "s.sqlite3"
    env = cli_env(fake.url, str(db))
    listed = run_cli(env, "sessions", "list")
    assert listed.returncode == 0 and listed.stdout == "" and "no sessions yet" in listed.stderr
    shown = run_cli(env, "sessions", "show", "abc")
    assert shown.returncode == 1 and "No chat session" in shown.stderr
    bad = run_cli(env, "sessions", "show", "../etc")
    assert bad.returncode == 1 and "Invalid session id" in bad.stderr
    assert not db.parent.exists()


def test_models_lists_each_pulled_model(env: dict[str, str], fake: FakeOllama, db_path: str) -> None:
    phi3 = FakeModel(name="phi3:mini", family="phi3", parameter_size="3.8B", quantization_level="Q4_K_M")
    fake.models.append(dataclasses.replace(phi3, size=2_176_178_913))
    done = run_cli(env, "models")
    assert done.returncode == 0, done.stderr
    assert [line.split("  ")[0].strip() for line in done.stdout.splitlines()] == ["llama3:8b", "phi3:mini"]
    assert [line.split() for line in done.stdout.splitlines()] == [
        ["llama3:8b", "4.7", "GB", "llama", "8.0B", "Q4_0"],
        ["phi3:mini", "2.2", "GB", "phi3", "3.8B", "Q4_K_M"],
    ]
    down = run_cli(cli_env(f"http://127.0.0.1:{free_port()}", db_path), "models")
    assert down.returncode == 1 and "Cannot reach Ollama" in down.stderr


# --- flags ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--modle", "llama3"], "mcp-ollama: unknown option '--modle' — did you mean '--model'?"),
        (["serve", "--ollama-hots", "x"], "unknown option '--ollama-hots' — did you mean '--ollama-host'?"),
        (["ask", "hi", "--sesion", "x"], "ask: unknown option '--sesion' — did you mean '--session'?"),
        (["sessions", "export", "x", "--formt=json"], "unknown option '--formt' — did you mean '--format'?"),
        (["--json", "ask", "hi"], "unknown option '--json' before the command: it is an option of 'ask'"),
        (["--frobnicate"], "unknown option '--frobnicate' (see mcp-ollama --help)"),
        (["sesions", "list"], "unknown command 'sesions' — did you mean 'sessions'?"),
        (["Hello"], "to chat from a terminal: mcp-ollama ask MESSAGE"),
    ],
)  # fmt: skip
def test_an_unknown_flag_or_command_is_named(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "invalid choice" not in err


def test_the_mistyped_flag_from_the_issue_as_a_person_types_it(env: dict[str, str]) -> None:
    done = run_cli(env, "--modle", "llama3")
    assert done.returncode == 2
    assert "unknown option '--modle' — did you mean '--model'?" in done.stderr
    assert "'llama3'" not in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "m", "ask", "hi"],
        ["ask", "hi", "--model=m"],
        ["ask", "hi", "--mod", "m"],
        ["ask", "--", "--not-an-option"],
        ["ask", "-5 degrees outside?"],
        ["--keep-alive", "-1"],
        ["sessions", "show", "abc", "--db", "x.db"],
        ["--db", "x.db", "sessions", "export", "abc", "--format", "json"],
        [],
    ],
)
def test_valid_words_are_not_mistaken_for_unknown_ones(argv: list[str]) -> None:
    assert find_misuse(build_parser(), argv) is None
    build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "m", "--db", "x.db", "ask", "hi"],
        ["ask", "hi", "--model", "m", "--db", "x.db"],
        ["--model", "other", "ask", "hi", "--model", "m", "--db", "x.db"],
    ],
)
def test_settings_flags_work_before_or_after_the_command(argv: list[str]) -> None:
    settings = load_settings(vars(build_parser().parse_args(argv)), environ={})
    assert (settings.model, settings.db_path) == ("m", "x.db")


def test_help_lists_the_commands() -> None:
    text = build_parser().format_help()
    for command in ("serve", "doctor", "ask", "sessions", "models"):
        assert command in text


# --- a terminal on stdin ----------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="pty is POSIX-only")
def test_serve_in_a_terminal_says_what_it_is_then_serves(env: dict[str, str]) -> None:
    import pty

    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_ollama", "--preload", "off"],
        env=env,
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        hint = read_until(proc.stderr.fileno(), b'mcp-ollama ask "Hello"').decode()
        assert "MCP server" in hint and "waiting for an MCP host" in hint
        os.write(primary, json.dumps(INITIALIZE).encode() + b"\n")
        answer = json.loads(read_until(proc.stdout.fileno(), b"\n"))
        assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"]
        os.write(primary, b"\x04")  # Ctrl-D: end of input, as a person would stop it
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_serve_on_a_pipe_prints_no_hint(env: dict[str, str]) -> None:
    done = run_cli(env, "--preload", "off")
    assert done.returncode == 0
    assert "waiting for an MCP host" not in done.stderr
