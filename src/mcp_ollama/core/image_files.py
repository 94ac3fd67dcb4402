"""Reading an image file where the caller owns the disk: confined, and telling nothing apart.

``read_image_file`` answers the file's bytes or ``None``, whatever the reason it will not (outside
the allowed directories once symlinks are resolved, under /proc, /sys or /dev, not a regular file,
too large, not an image), so that its caller can refuse every path with one sentence.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import Protocol

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
SYSTEM_ROOTS = ("/proc", "/sys", "/dev")
"""Never read, whatever ``image_dirs`` says: kernel and device files, and magic links to anything."""


class Counter(Protocol):
    """Counts a call's image bytes against its caps (``images._Count``); raises past one."""

    def add(self, size: int) -> None: ...

    def correct(self, counted: int, actual: int) -> None: ...

    def remove(self, size: int) -> None: ...


def sniff(data: bytes) -> str | None:
    """The image's media type from its first bytes, or None if it is none of ours."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _allowed(path: str, dirs: Sequence[str]) -> bool:
    """Whether a resolved ``path`` is in one of the resolved ``dirs`` and under no system root."""
    if os.name == "posix" and any(_under(path, root) for root in SYSTEM_ROOTS):
        return False
    return any(_under(path, root) for root in dirs)


def read_image_file(path: str, dirs: Sequence[str], max_bytes: int, count: Counter) -> bytes | None:
    """The file's bytes if it may be read and is an image within the limit; else None, whatever the reason.

    Symlinks are resolved before the check, the resolved path is opened without following a last
    symlink (one swapped in meanwhile), and where the system says which file was opened, that is
    checked again.
    """
    if not dirs or not os.path.isabs(path):
        return None
    if os.name == "posix" and any(_under(os.path.normpath(path), root) for root in SYSTEM_ROOTS):
        return None
    try:
        dirs = [os.path.realpath(d) for d in dirs]
        real = os.path.realpath(path)
    except (OSError, ValueError):  # a NUL in the path, a symlink loop on some systems
        return None
    if not _allowed(real, dirs):
        return None
    # Non-blocking, so that a FIFO cannot hang the server; a regular file reads the same.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(real, flags)
    except (OSError, ValueError):
        return None
    counted = 0
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        opened = _opened_path(fd)
        if opened is not None and not _allowed(opened, dirs):
            return None
        head = os.read(fd, 16)
        if sniff(head) is None:
            return None
        count.add(info.st_size)
        counted = info.st_size
        chunks = [head]
        size = len(head)
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            return None
        count.correct(counted, size)
        counted = 0
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
        if counted:
            count.remove(counted)


def _opened_path(fd: int) -> str | None:
    """The path of the file open as ``fd``, where the system says (Linux); else None."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
