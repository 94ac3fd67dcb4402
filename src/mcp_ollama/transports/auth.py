"""Bearer tokens for the HTTP server: the tokens file, and who a presented token belongs to.

The file holds one line per token, ``NAME sha256:HEX`` (``#`` starts a comment), ending in
`` admin`` for a token that may also pull and unload models: the name is the principal, and only
the SHA-256 of the token is stored. That is enough for the random, high-entropy
tokens ``mcp-ollama tokens add`` makes (no dictionary to attack), and a leaked file lets nobody in.
``TokenBook`` rereads the file when its content changes (it hashes what it reads, so an edit that
keeps the size and the modification time is noticed too), and a token added or removed takes
effect without a restart. Nothing here knows about MCP or HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..errors import McpOllamaError
from ..store.records import LOCAL, PRINCIPAL_PATTERN

__all__ = [
    "LOCAL_PRINCIPAL",
    "TokenBook",
    "TokenChecker",
    "TokenEntry",
    "TokenFileError",
    "add_token",
    "hash_token",
    "read_tokens",
    "remove_token",
]

logger = logging.getLogger(__name__)

LOCAL_PRINCIPAL = LOCAL
"""The operator: every request over stdio, and over HTTP the one with the operator's token (the one
``serve --http`` generates, or ``MCP_OLLAMA_HTTP_TOKEN``)."""
NAME = re.compile(f"^{PRINCIPAL_PATTERN}$")
_LINE = re.compile(r"^(?P<name>\S+)\s+sha256:(?P<digest>[0-9a-f]{64})(?:\s+(?P<role>admin))?$")


class TokenFileError(McpOllamaError):
    """The tokens file cannot be read, or a line in it is not ``NAME sha256:HEX``."""


@dataclass(frozen=True)
class TokenEntry:
    name: str
    """The principal: who requests with this token are from."""
    digest: bytes
    """SHA-256 of the token."""
    admin: bool = False
    """May pull and unload models (they change a machine others share); every token may chat."""


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def read_tokens(path: Path) -> list[TokenEntry]:
    """Every entry of the tokens file at ``path``; raises ``TokenFileError`` saying what is wrong."""
    return _parse_tokens(path, _read_bytes(path))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TokenFileError(
            f"the tokens file {path} does not exist; create it with: mcp-ollama tokens add NAME "
            f"--tokens-file {path}"
        ) from None
    except OSError as exc:
        raise TokenFileError(f"cannot read the tokens file {path}: {exc}") from exc


def _parse_tokens(path: Path, data: bytes) -> list[TokenEntry]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenFileError(f"cannot read the tokens file {path}: {exc}") from exc
    entries: list[TokenEntry] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if match is None or not NAME.match(match["name"]):
            raise TokenFileError(f"{path}, line {number}: expected 'NAME sha256:<64 hex digits>'")
        if match["name"] == LOCAL_PRINCIPAL:
            raise TokenFileError(f"{path}, line {number}: 'local' is reserved for the operator's own token")
        if match["name"] in seen:
            raise TokenFileError(f"{path}, line {number}: the name {match['name']!r} appears twice")
        seen.add(match["name"])
        entries.append(TokenEntry(match["name"], bytes.fromhex(match["digest"]), match["role"] == "admin"))
    return entries


def add_token(path: Path, name: str, *, admin: bool = False) -> str:
    """Make a new random token for ``name`` (an ``admin`` one may pull and unload models), append its
    hash to ``path`` and return the token.

    The file is created (readable by its owner only) if it does not exist. Raises
    ``TokenFileError`` for a name that is malformed or already there.
    """
    if name == LOCAL_PRINCIPAL:
        raise TokenFileError(
            f"{name!r} is the name of every unauthenticated request (stdio, the shell): choose another, "
            "so that a token's sessions stay apart from this machine's own"
        )
    if not NAME.match(name):
        raise TokenFileError(
            f"{name!r} is not a usable name: 1-64 characters, letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    existing = read_tokens(path) if path.exists() else []
    if any(entry.name == name for entry in existing):
        raise TokenFileError(f"{path} already has a token named {name!r}; pick another name")
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    unterminated = path.exists() and not path.read_bytes().endswith(b"\n") and path.stat().st_size > 0
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as file:
        role = " admin" if admin else ""
        file.write(("\n" if unterminated else "") + f"{name} sha256:{hash_token(token).hex()}{role}\n")
    return token


def remove_token(path: Path, name: str) -> bool:
    """Take ``name``'s line out of the tokens file at ``path``, every other byte kept (comments, the
    role column); False if no token has that name. The file is replaced in one step (a running
    server never reads half of it) and keeps its mode; ``TokenFileError`` for an unusable file."""
    data = _read_bytes(path)
    _parse_tokens(path, data)  # a malformed file is refused before anything changes
    lines = data.decode("utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _name_of(line) != name]
    if len(kept) == len(lines):
        return False
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, path.stat().st_mode & 0o777)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write("".join(kept))
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise TokenFileError(f"cannot rewrite the tokens file {path}: {exc}") from exc
    return True


def _name_of(line: str) -> str | None:
    match = _LINE.match(line.split("#", 1)[0].strip())
    return match["name"] if match is not None else None


class TokenBook:
    """The tokens of one file, reread when its content changes; ``name_for`` checks a presented token.

    The file is read on every check and compared by a SHA-256 of its bytes: a tokens file is a few
    hundred bytes, so this costs microseconds, and unlike size and modification time (which an
    edit within the same clock tick, ``cp -p`` or a restored backup keep) the content cannot change
    unseen, so a revoked token stops working at once. If the file turns unreadable or malformed
    while serving, no token is accepted until it is fixed (failing closed: a half-edited file must
    not keep a revoked token working).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        data = _read_bytes(path)
        self._entries: list[TokenEntry] = _parse_tokens(path, data)
        self._digest: bytes | None = hashlib.sha256(data).digest()
        """Of the bytes ``_entries`` came from; None while the file cannot be read."""

    def __len__(self) -> int:
        return len(self._entries)

    def _refresh(self) -> None:
        try:
            data = _read_bytes(self.path)
        except TokenFileError as exc:
            self._refuse_all(None, exc)
            return
        digest = hashlib.sha256(data).digest()
        if digest == self._digest:
            return
        try:
            entries = _parse_tokens(self.path, data)
        except TokenFileError as exc:
            self._refuse_all(digest, exc)
            return
        self._digest, self._entries = digest, entries
        logger.info("reread %s: %d tokens", self.path, len(entries))

    def _refuse_all(self, digest: bytes | None, problem: TokenFileError) -> None:
        if self._entries or digest != self._digest:  # said once per broken state, not per request
            logger.error("refusing every token until the tokens file is fixed: %s", problem)
        self._digest, self._entries = digest, []

    def name_for(self, token: str) -> str | None:
        """The name the token was issued to, or None. Every entry is compared, in constant time."""
        self._refresh()
        digest = hash_token(token)
        found: str | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry.name
        return found


class TokenChecker:
    """Who a presented bearer token belongs to: a name from the tokens file, or ``local`` for the
    operator's token. Either may be absent; with neither, every token is refused."""

    def __init__(self, book: TokenBook | None, operator_token: str | None) -> None:
        self.book = book
        # Only the hash is kept, like the file's entries: a memory dump or a repr shows no token.
        self._operator = hash_token(operator_token) if operator_token is not None else None

    def name_for(self, token: str) -> str | None:
        found = self.book.name_for(token) if self.book is not None else None
        if self._operator is not None and hmac.compare_digest(self._operator, hash_token(token)):
            found = LOCAL_PRINCIPAL
        return found
