"""``transports/auth.py``: the tokens file, ``TokenBook`` (reread on every check) and ``TokenChecker``.

Real files in a temporary directory, edited the way an operator edits them: ``tokens add``, a line
removed by hand, a half-saved edit, a line typed in by hand. Nothing here needs a server.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from mcp_ollama.transports.auth import (
    LOCAL_PRINCIPAL,
    TokenBook,
    TokenChecker,
    TokenFileError,
    add_token,
    hash_token,
    read_tokens,
    remove_token,
)


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return tmp_path / "conf" / "tokens"


def line_for(name: str, token: str) -> str:
    return f"{name} sha256:{hash_token(token).hex()}\n"


# --- the file -----------------------------------------------------------------------------------


def test_add_token_stores_only_the_hash_in_an_owner_only_file(tokens_file: Path) -> None:
    token = add_token(tokens_file, "alice")
    text = tokens_file.read_text(encoding="utf-8")
    assert token not in text and text == line_for("alice", token)
    assert len(token) >= 40  # 32 random bytes, URL-safe base64
    if sys.platform != "win32":
        assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
    assert [(e.name, e.digest) for e in read_tokens(tokens_file)] == [("alice", hash_token(token))]


def test_add_token_refuses_local_a_malformed_name_and_a_name_already_there(tokens_file: Path) -> None:
    add_token(tokens_file, "alice")
    before = tokens_file.read_bytes()
    for name, words in (("local", "unauthenticated"), ("-bad", "not a usable name"), ("alice", "already")):
        with pytest.raises(TokenFileError, match=words):
            add_token(tokens_file, name)
    assert tokens_file.read_bytes() == before


def test_add_token_after_a_hand_edit_without_a_final_newline(tokens_file: Path) -> None:
    tokens_file.parent.mkdir()
    tokens_file.write_text(line_for("alice", "a" * 40).rstrip("\n"), encoding="utf-8")
    bob = add_token(tokens_file, "bob")
    assert [e.name for e in read_tokens(tokens_file)] == ["alice", "bob"]
    assert tokens_file.read_text(encoding="utf-8").endswith(line_for("bob", bob))


def test_comments_and_blank_lines_are_ignored(tokens_file: Path) -> None:
    tokens_file.parent.mkdir()
    tokens_file.write_text(
        "# team tokens\n\n" + line_for("alice", "t1").rstrip() + "  # laptop\n   \n", encoding="utf-8"
    )
    assert [e.name for e in read_tokens(tokens_file)] == ["alice"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("alice sha256:1234\n", "line 1: expected 'NAME sha256:<64 hex digits>'"),
        ("alice\n", "line 1: expected"),
        ("# c\n" + line_for("alice", "t1") + "bob md5:" + "0" * 64 + "\n", "line 3: expected"),
        (line_for("alice", "t1") + line_for("alice", "t2"), "line 2: the name 'alice' appears twice"),
        (line_for("-alice", "t1"), "line 1: expected"),
        (line_for("local", "t1"), "line 1: 'local' is reserved"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_line(tokens_file: Path, content: str, words: str) -> None:
    tokens_file.parent.mkdir()
    tokens_file.write_text(content, encoding="utf-8")
    with pytest.raises(TokenFileError) as caught:
        read_tokens(tokens_file)
    assert words in str(caught.value) and str(tokens_file) in str(caught.value)
    with pytest.raises(TokenFileError):
        TokenBook(tokens_file)


def test_a_missing_file_says_how_to_make_one(tokens_file: Path) -> None:
    with pytest.raises(TokenFileError, match="tokens add NAME"):
        TokenBook(tokens_file)


def test_a_file_that_is_not_utf8_is_refused(tokens_file: Path) -> None:
    tokens_file.parent.mkdir()
    tokens_file.write_bytes(b"al\xffice sha256:" + b"0" * 64 + b"\n")
    with pytest.raises(TokenFileError, match="cannot read"):
        read_tokens(tokens_file)


# --- TokenBook: the file as it is now -------------------------------------------------------------


def test_a_token_is_known_by_its_name_and_nothing_else_is(tokens_file: Path) -> None:
    alice, bob = add_token(tokens_file, "alice"), add_token(tokens_file, "bob")
    book = TokenBook(tokens_file)
    assert len(book) == 2
    assert (book.name_for(alice), book.name_for(bob)) == ("alice", "bob")
    for presented in ("", "alice", alice + "x", alice[:-1], hash_token(alice).hex()):
        assert book.name_for(presented) is None


def test_tokens_added_and_removed_while_serving_take_effect_at_once(tokens_file: Path) -> None:
    alice = add_token(tokens_file, "alice")
    book = TokenBook(tokens_file)
    carol = add_token(tokens_file, "carol")
    assert book.name_for(carol) == "carol"
    tokens_file.write_text(line_for("carol", carol), encoding="utf-8")  # alice's line removed by hand
    assert book.name_for(alice) is None
    assert book.name_for(carol) == "carol"


def test_a_half_edited_file_refuses_every_token_until_it_is_fixed(tokens_file: Path) -> None:
    """Failing closed: the old tokens must not keep working while the file cannot be read."""
    alice, bob = add_token(tokens_file, "alice"), add_token(tokens_file, "bob")
    book = TokenBook(tokens_file)
    assert book.name_for(alice) == "alice"
    # An editor saved halfway through revoking bob: his line is cut, so the file is malformed.
    tokens_file.write_text(line_for("alice", alice) + "bob sha256:12", encoding="utf-8")
    assert book.name_for(bob) is None
    assert book.name_for(alice) is None
    assert len(book) == 0
    tokens_file.write_text(line_for("alice", alice), encoding="utf-8")  # the edit finished
    assert book.name_for(alice) == "alice"
    assert book.name_for(bob) is None


def test_a_deleted_file_refuses_every_token_until_it_is_back(tokens_file: Path) -> None:
    alice = add_token(tokens_file, "alice")
    book = TokenBook(tokens_file)
    saved = tokens_file.read_bytes()
    tokens_file.unlink()
    assert book.name_for(alice) is None
    tokens_file.write_bytes(saved)
    assert book.name_for(alice) == "alice"


def test_a_token_named_local_typed_into_the_file_is_never_accepted(tokens_file: Path) -> None:
    """``local`` is stdio's principal (and the operator's): a file line must not hand it out."""
    alice = add_token(tokens_file, "alice")
    book = TokenBook(tokens_file)
    sneaky = "s" * 43
    with tokens_file.open("a", encoding="utf-8") as file:
        file.write(line_for(LOCAL_PRINCIPAL, sneaky))
    assert book.name_for(sneaky) is None
    assert book.name_for(alice) is None  # the file is malformed now: nothing is accepted
    with pytest.raises(TokenFileError, match="'local' is reserved"):
        read_tokens(tokens_file)


# --- TokenChecker: the file's tokens and the operator's ----------------------------------------


def test_the_operator_token_is_local_and_file_tokens_are_their_names(tokens_file: Path) -> None:
    alice = add_token(tokens_file, "alice")
    operator = "o" * 43
    checker = TokenChecker(TokenBook(tokens_file), operator)
    assert checker.name_for(operator) == LOCAL_PRINCIPAL
    assert checker.name_for(alice) == "alice"
    assert checker.name_for("o" * 42) is None
    assert operator not in repr(vars(checker))
    assert TokenChecker(None, None).name_for(operator) is None
    assert TokenChecker(None, operator).name_for(alice) is None


def test_remove_token_takes_out_one_line_and_keeps_every_other_byte(tokens_file: Path) -> None:
    add_token(tokens_file, "alice")
    tokens_file.write_text("# the team\n" + tokens_file.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    admin = add_token(tokens_file, "bob", admin=True)
    carol = add_token(tokens_file, "carol")
    before = tokens_file.read_text(encoding="utf-8")
    assert remove_token(tokens_file, "alice") is True
    after = tokens_file.read_text(encoding="utf-8")
    assert after == "".join(
        line for line in before.splitlines(keepends=True) if not line.startswith("alice ")
    )
    assert after.startswith("# the team\n") and f"sha256:{hash_token(admin).hex()} admin\n" in after
    assert [(e.name, e.admin) for e in read_tokens(tokens_file)] == [("bob", True), ("carol", False)]
    if sys.platform != "win32":
        assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
    assert remove_token(tokens_file, "alice") is False  # already gone: nothing changes
    assert tokens_file.read_text(encoding="utf-8") == after
    book = TokenBook(tokens_file)
    assert remove_token(tokens_file, "carol") is True
    assert book.name_for(carol) is None  # a running server refuses it from the next request
    assert list(tokens_file.parent.iterdir()) == [tokens_file]  # no temporary file left behind


def test_remove_token_refuses_a_malformed_file_and_leaves_it_alone(tokens_file: Path) -> None:
    tokens_file.parent.mkdir(parents=True)
    tokens_file.write_text("alice sha256:abc\n", encoding="utf-8")
    with pytest.raises(TokenFileError, match="line 1"):
        remove_token(tokens_file, "alice")
    assert tokens_file.read_text(encoding="utf-8") == "alice sha256:abc\n"
