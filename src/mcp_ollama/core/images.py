"""Images for vision models: read from base64, a ``data:`` URI or an absolute path, and checked.

Each image must be a PNG, JPEG, GIF or WebP (by its first bytes, not its name) no larger than
the configured limit. A path that is not such an image gets the same answer whether the file
is missing, unreadable, a directory, a device or simply something else: the error says nothing
about the file. Only notes of an image (type, size, sha256) are ever stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError, InputTooLarge
from ..store import ImageNote

MAX_IMAGES = 16
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_BASE64 = re.compile(r"[A-Za-z0-9+/\s]+={0,2}\s*")
_KINDS = "PNG, JPEG, GIF or WebP"


@dataclass(frozen=True, slots=True)
class Image:
    """One checked image, ready to send: its bytes as base64, and its note."""

    base64: str
    note: ImageNote


def sniff(data: bytes) -> str | None:
    """The image's media type from its first bytes, or None if it is none of ours."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def read_images(items: Sequence[str], max_bytes: int) -> tuple[Image, ...]:
    """Check and read each item (blocking: reads files; call it from a worker thread).

    Raises ``InputError`` naming the item (``images[2]``) and what is wrong with it.
    """
    if len(items) > MAX_IMAGES:
        raise InputError(f"{len(items)} images were given; at most {MAX_IMAGES} go with one message.")
    return tuple(_read_one(f"images[{index}]", item, max_bytes) for index, item in enumerate(items))


def _read_one(name: str, item: str, max_bytes: int) -> Image:
    if not isinstance(item, str) or not item.strip():
        raise InputError(f"{name} is empty: give base64 image data, a data: URI or an absolute file path.")
    text = item.strip()
    data: bytes | None = None
    if text.startswith("data:"):
        data = _from_data_uri(name, text, max_bytes)
    else:
        data = _from_base64(text, max_bytes)  # None: not base64 of an image (a path may look like it)
        if data is None:
            if os.path.isabs(text):
                data = _from_file(name, text, max_bytes)
            else:
                raise InputError(
                    f"{name} is neither base64 image data, a data: URI, nor an absolute file path "
                    "(relative paths are not accepted: the server's working directory is not yours)."
                )
    mime = sniff(data)
    if mime is None:
        raise InputError(f"{name} is not a {_KINDS} image.")
    _check_size(name, len(data), max_bytes)
    note = ImageNote(mime=mime, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return Image(base64=base64.b64encode(data).decode("ascii"), note=note)


def _check_size(name: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise InputTooLarge(
            f"{name} is larger than the {max_bytes:,}-byte limit for an image (MCP_OLLAMA_MAX_IMAGE_BYTES). "
            "Send a smaller or more compressed image."
        )


def _decode(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _from_base64(text: str, max_bytes: int) -> bytes | None:
    if _BASE64.fullmatch(text) is None:
        return None
    # Four characters carry three bytes: refuse before decoding anything far too large.
    if len(text) // 4 * 3 > max_bytes + 3:
        raise InputTooLarge(
            f"An image is larger than the {max_bytes:,}-byte limit (MCP_OLLAMA_MAX_IMAGE_BYTES). "
            "Send a smaller or more compressed image."
        )
    data = _decode(text)
    if data is None or sniff(data) is None:
        return None
    return data


def _from_data_uri(name: str, text: str, max_bytes: int) -> bytes:
    header, comma, payload = text.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InputError(f"{name} is a data: URI without base64 data: use data:image/png;base64,....")
    if len(payload) // 4 * 3 > max_bytes + 3:
        _check_size(name, len(payload) // 4 * 3, max_bytes)
    data = _decode(payload)
    if data is None:
        raise InputError(f"{name} is a data: URI whose data is not valid base64.")
    return data


def _from_file(name: str, path: str, max_bytes: int) -> bytes:
    """The file's bytes if it is a regular file that starts like an image; else one neutral error."""
    unreadable = InputError(f"{name}: {path} is not a readable {_KINDS} image file.")
    # Non-blocking, so that a FIFO cannot hang the server; a regular file reads the same.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError):
        raise unreadable from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise unreadable
        head = os.read(fd, 16)
        if sniff(head) is None:
            raise unreadable
        chunks = [head]
        size = len(head)
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        raise unreadable from None
    finally:
        os.close(fd)
    _check_size(name, size, max_bytes)
    return b"".join(chunks)
