"""Bearer tokens for the HTTP server: the tokens file, and who a presented token belongs to.

The file holds one line per token, ``NAME sha256:HEX`` (``#`` starts a comment): the name is the
principal, and only the SHA-256 of the token is stored. That is enough for the random, high-entropy
tokens ``mcp-ollama tokens add`` makes (no dictionary to attack), and a leaked file lets nobody in.
``TokenBook`` rereads the file when it changes, so a token added or removed takes effect without a
restart. Nothing here knows about MCP or HTTP.
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
    "TokenEntry",
    "TokenFileError",
    "add_token",
    "hash_token",
    "read_tokens",
]

logger = logging.getLogger(__name__)

LOCAL_PRINCIPAL = LOCAL
"""Who a request is from where nobody authenticates: stdio, or HTTP on loopback without tokens."""
NAME = re.compile(f"^{PRINCIPAL_PATTERN}$")
_LINE = re.compile(r"^(?P<name>\S+)\s+sha256:(?P<digest>[0-9a-f]{64})$")


class TokenFileError(McpOllamaError):
    """The tokens file cannot be read, or a line in it is not ``NAME sha256:HEX``."""


@dataclass(frozen=True)
class TokenEntry:
    name: str
    """The principal: who requests with this token are from."""
    digest: bytes
    """SHA-256 of the token."""


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def read_tokens(path: Path) -> list[TokenEntry]:
    """Every entry of the tokens file at ``path``; raises ``TokenFileError`` saying what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenFileError(
            f"the tokens file {path} does not exist; create it with: mcp-ollama tokens add NAME "
            f"--tokens-file {path}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
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
            raise TokenFileError(f"{path}, line {number}: 'local' is reserved for unauthenticated requests")
        if match["name"] in seen:
            raise TokenFileError(f"{path}, line {number}: the name {match['name']!r} appears twice")
        seen.add(match["name"])
        entries.append(TokenEntry(match["name"], bytes.fromhex(match["digest"])))
    return entries


def add_token(path: Path, name: str) -> str:
    """Make a new random token for ``name``, append its hash to ``path`` and return the token.

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
        file.write(("\n" if unterminated else "") + f"{name} sha256:{hash_token(token).hex()}\n")
    return token


class TokenBook:
    """The tokens of one file, reread when the file changes; ``name_for`` checks a presented token.

    If the file turns unreadable or malformed while serving, no token is accepted until it is
    fixed (failing closed: a half-edited file must not keep a revoked token working).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: list[TokenEntry] = read_tokens(path)
        self._stamp = self._current_stamp()

    def __len__(self) -> int:
        return len(self._entries)

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _refresh(self) -> None:
        stamp = self._current_stamp()
        if stamp == self._stamp and stamp is not None:
            return
        self._stamp = stamp
        try:
            self._entries = read_tokens(self.path)
        except TokenFileError as exc:
            logger.error("refusing every token until the tokens file is fixed: %s", exc)
            self._entries = []
        else:
            logger.info("reread %s: %d tokens", self.path, len(self._entries))

    def name_for(self, token: str) -> str | None:
        """The name the token was issued to, or None. Every entry is compared, in constant time."""
        self._refresh()
        digest = hash_token(token)
        found: str | None = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest):
                found = entry.name
        return found
