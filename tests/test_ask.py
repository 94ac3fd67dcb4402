"""``cli/ask.py`` in process: what reaches the terminal, and the exit code a script relies on.

The command as a person runs it (a subprocess, Ctrl-C, a TTY) is in ``test_cli.py``; here ``ask()``
is called directly against the loopback fake Ollama, so that stdout and stderr are captured whole.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing

import pytest

from mcp_ollama.cli.ask import ask
from mcp_ollama.config import Settings
from mcp_ollama.store import ChatStore

from .fake_ollama import Behavior, FakeOllama

HOSTILE = [
    "Hello ",
    "\x1b[2J\x1b[H",
    "\x1b]0;pwned\x07",
    "wor",
    "\x1b[31mld",
    "\x07\x08\r\n",
    "\x9b6n",
    "done",
]
"""A model's answer with escape sequences: clear the screen, retitle the window, colours, a bell,
an 8-bit CSI (a cursor-position query the terminal would answer on stdin)."""
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_escape_sequences_from_the_model_never_reach_the_terminal(
    settings: Settings, fake: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.enqueue(Behavior(tokens=HOSTILE))
    assert ask(settings, "say something") == 0
    out, err = capsys.readouterr()
    assert out.startswith("Hello world\n") and out.endswith("done\n")  # the text stays, the controls go
    assert not CONTROLS.search(out) and not CONTROLS.search(err)
    assert "session: " in err


def test_a_turn_that_could_not_be_stored_exits_1_and_says_so(
    settings: Settings, fake: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    """The answer is printed (it is the user's), but a script must learn the turn was lost."""
    with ChatStore.open(settings.db_path):
        pass  # the schema, then a trigger that refuses every message, as a full disk would
    with closing(sqlite3.connect(settings.db_path)) as conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'full'); END")
        conn.commit()
    assert ask(settings, "remember this") == 1
    out, err = capsys.readouterr()
    assert out.startswith("You said: remember this")
    assert "the turn was not stored" in err
    assert ask(settings, "and this", as_json=True) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["answer"].startswith("You said: and this")
    assert "the turn was not stored" in err


def test_a_stored_turn_exits_0(
    settings: Settings, fake: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ask(settings, "plain", session_id="kept", new=True) == 0
    _, err = capsys.readouterr()
    assert "session: kept" in err and "not stored" not in err
    with ChatStore.open(settings.db_path) as store:
        assert [m.content for m in store.messages("kept")][:1] == ["plain"]


def test_an_unknown_session_id_is_refused_naming_the_closest_ones(
    settings: Settings, fake: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo must not start a new session silently: the closest stored ids, and --new to mean it."""
    for sid in ("recipes-2024", "recipes-2025", "travel"):
        assert ask(settings, f"hello {sid}", session_id=sid, new=True) == 0
    capsys.readouterr()
    asked = len(fake.chat_requests)

    assert ask(settings, "more", session_id="recipes-2O25") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "there is no session recipes-2O25" in err
    assert "recipes-2025" in err and "recipes-2024" in err and "travel" not in err
    assert "--new" in err
    assert ask(settings, "more", session_id="recip") == 1  # a prefix finds its sessions too
    assert "recipes-2025" in capsys.readouterr().err
    assert ask(settings, "more", session_id="zzzzzz") == 1
    assert "sessions list" in capsys.readouterr().err
    assert len(fake.chat_requests) == asked  # nothing reached the model
    with ChatStore.open(settings.db_path) as store:
        assert store.count_sessions() == 3

    assert ask(settings, "more", session_id="recipes-2025") == 0  # a stored one continues
    assert ask(settings, "again", session_id="travel", new=True) == 1  # --new with a stored id: refused
    assert "exists already" in capsys.readouterr().err
    assert ask(settings, "brand new", session_id="recipes-2O25", new=True) == 0
    with ChatStore.open(settings.db_path) as store:
        assert store.count_sessions() == 4
