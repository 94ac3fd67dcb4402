"""Configuration from flags and environment, ``--help``, and ``mcp-ollama doctor``."""

from __future__ import annotations

import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_ollama.cli import build_parser, main
from mcp_ollama.config import (
    SETTINGS_SPEC,
    Settings,
    SettingsError,
    database_origin,
    load_settings,
    parse_ollama_host,
)
from mcp_ollama.store import ChatStore

from .conftest import free_port
from .fake_ollama import FakeOllama


@pytest.mark.parametrize(
    ("value", "url"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("localhost", "http://localhost:11434"),
        ("gpu-box:1234", "http://gpu-box:1234"),
        (":8080", "http://127.0.0.1:8080"),
        ("[::1]:9000", "http://[::1]:9000"),
        ("::1", "http://[::1]:11434"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("http://example.com:5/ollama/", "http://example.com:5/ollama"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:11435", "http://127.0.0.1:11435"),
        ("http://[::]:7", "http://[::1]:7"),
    ],
)
def test_ollama_host_is_read_the_way_ollama_reads_it(value: str | None, url: str) -> None:
    host = parse_ollama_host(value)
    assert host.url == url
    assert host.user is None


@pytest.mark.parametrize("value", ["ftp://x", "host:99999", "host:port"])
def test_unusable_ollama_host_is_refused(value: str) -> None:
    with pytest.raises(SettingsError):
        parse_ollama_host(value)


def test_defaults_keep_the_demo_behaviour() -> None:
    settings = load_settings({}, environ={})
    assert settings.model == "llama3:8b"
    assert settings.history_turns == 8
    assert settings.ollama_url == "http://127.0.0.1:11434"
    assert settings.db_path.endswith("sessions.sqlite3")
    assert settings.max_context == 16384
    assert settings.context_window(8192) == 8192  # a model's own window, under the cap
    assert settings.context_window(131072) == 16384
    assert settings.context_window(None) == 4096  # a model that does not say: Ollama's default


def test_flags_win_over_environment(tmp_path: Path) -> None:
    env = {"OLLAMA_HOST": ":1111", "MCP_OLLAMA_MODEL": "env-model", "MCP_OLLAMA_HISTORY_TURNS": "3"}
    settings = load_settings({"model": "flag-model", "db_path": str(tmp_path / "x.db")}, environ=env)
    assert settings.model == "flag-model"
    assert settings.history_turns == 3
    assert settings.ollama_url == "http://127.0.0.1:1111"
    assert settings.db_path == str(tmp_path / "x.db")


def test_system_prompt_from_a_file(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Be brief.\n", encoding="utf-8")
    assert (
        load_settings({}, environ={"MCP_OLLAMA_SYSTEM_PROMPT_FILE": str(prompt)}).system_prompt == "Be brief."
    )
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings({"system_prompt_file": str(tmp_path / "missing.txt")}, environ={})
    with pytest.raises(SettingsError, match="not both"):
        load_settings({"system_prompt": "a", "system_prompt_file": str(prompt)}, environ={})


@pytest.mark.parametrize(
    ("name", "value"),
    [("history_turns", "0"), ("history_turns", "many"), ("generation_timeout", "-1"), ("log_level", "LOUD")],
)
def test_bad_numbers_and_levels_name_the_setting(name: str, value: str) -> None:
    spec = next(s for s in SETTINGS_SPEC if s.name == name)
    with pytest.raises(SettingsError, match=spec.env):
        load_settings({name: value}, environ={})


def test_settings_are_immutable() -> None:
    with pytest.raises(AttributeError):
        Settings().model = "x"  # type: ignore[misc]


def test_help_documents_every_setting_with_its_variable() -> None:
    text = build_parser().format_help()
    for spec in SETTINGS_SPEC:
        assert spec.flag is None or spec.flag in text
        assert spec.env in text
    assert "doctor" in text


def test_bad_configuration_exits_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--history-turns", "zero"]) == 2
    assert "MCP_OLLAMA_HISTORY_TURNS" in capsys.readouterr().err


def test_doctor_passes_when_everything_is_in_place(fake: FakeOllama, tmp_path: Path) -> None:
    db = tmp_path / "data" / "s.sqlite3"
    done = subprocess.run(
        [sys.executable, "-m", "mcp_ollama", "doctor", "--ollama-host", fake.url, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "[ok] ollama",
        "[ok] model",
        "[ok] load",
        "[ok] database",
    ]
    assert "0.12.6" in lines[0]
    assert re.search(r"llama3:8b loaded in \d+\.\d s", lines[2])
    assert fake.loads == ["llama3:8b"]
    assert "will be created" in lines[3] and "chosen by --db" in lines[3]
    assert not db.parent.exists()  # doctor changes nothing on disk, not even a directory
    with ChatStore.open(db):
        pass
    again = subprocess.run(
        [sys.executable, "-m", "mcp_ollama", "doctor", "--ollama-host", fake.url, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "[ok] database" in again.stdout and "0 sessions" in again.stdout
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


@pytest.mark.skipif(
    sys.platform in ("darwin", "win32"), reason="XDG_DATA_HOME moves the data directory on Linux"
)
def test_doctor_says_which_flag_or_variables_chose_the_database(tmp_path: Path) -> None:
    """A shell with MCP_OLLAMA_DB or XDG_DATA_HOME set and a host without them use two files."""
    assert database_origin("/x.db", {"MCP_OLLAMA_DB": "/y.db"}) == "chosen by --db"
    assert (
        database_origin(None, {"MCP_OLLAMA_DB": "/y.db", "XDG_DATA_HOME": "/d"}) == "chosen by MCP_OLLAMA_DB"
    )
    assert "XDG_DATA_HOME=/d" in database_origin(None, {"XDG_DATA_HOME": "/d"})
    assert "neither MCP_OLLAMA_DB nor XDG_DATA_HOME" in database_origin(None, {})
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    done = subprocess.run(
        [sys.executable, "-m", "mcp_ollama", "doctor", "--ollama-host", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    (database,) = [line for line in done.stdout.splitlines() if line.startswith("[ok] database")]
    assert str(tmp_path / "xdg" / "mcp-ollama" / "sessions.sqlite3") in database
    assert f"XDG_DATA_HOME={tmp_path / 'xdg'}" in database and "MCP_OLLAMA_DB" in database


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"plain text, no database\n" * 50, "not a healthy SQLite database"),
        (None, "another application's database"),
    ],
    ids=["not-a-database", "someone-elses-database"],
)
def test_doctor_names_the_real_cause_and_changes_nothing(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    db = tmp_path / "other.db"
    if content is None:
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.commit()
        conn.close()
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcp_ollama",
            "doctor",
            "--ollama-host",
            "http://127.0.0.1:9",
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "[FAIL] database" in done.stdout and expected in done.stdout
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_doctor_says_how_to_fix_each_failure(fake: FakeOllama, tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    missing_model = subprocess.run(
        [sys.executable, "-m", "mcp_ollama", "doctor", "--ollama-host", fake.url, "--model", "phi3:mini",
         "--db", str(blocked / "s.sqlite3")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert missing_model.returncode == 1
    assert "ollama pull phi3:mini" in missing_model.stdout
    assert "[FAIL] database" in missing_model.stdout
    url = f"http://127.0.0.1:{free_port()}"
    down = subprocess.run(
        [sys.executable, "-m", "mcp_ollama", "doctor", "--ollama-host", url, "--db", ":memory:"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert down.returncode == 1
    assert "ollama serve" in down.stdout
    assert url in down.stdout
