"""Images for vision models: inline (base64 or a ``data:`` URL), or a file where the caller owns the disk.

Inline images (decoded by ``core.image_inline``) are refused with a sentence saying what is
wrong with them (not base64, not a PNG, JPEG, GIF or WebP, too large). A file path is read only
by a server on the caller's own machine (stdio: ``Settings.remote`` is false and the caller is
``local``), only inside ``Settings.image_dirs`` once every symlink is resolved, never under /proc,
/sys or /dev, and only a regular file that starts like an image. Every path refused, whatever
the reason (and over HTTP every path is), gets ``path_refused``'s sentence word for word, so that
no answer tells one file from another.

``read_images`` returns an ``ImageBatch``: the images' notes (type, size, sha256) for good, their
data until ``ImageBatch.take`` hands it to the request for Ollama. The image bytes of one call
are capped (``max_call_image_bytes``), and so are those one principal has in flight across its
calls (``max_inflight_image_bytes``, counted by ``InFlight``) until the batch is released.
Only notes of an image are ever stored.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..config import Settings
from ..errors import InputError, InputTooLarge
from ..store import LOCAL, ImageNote
from .image_files import read_image_file, sniff
from .image_inline import _from_base64, _from_data_uri

MAX_IMAGES = 16
_KINDS = "PNG, JPEG, GIF or WebP"


def path_refused(index: int) -> str:
    """The one sentence for every image path not read, whatever the reason."""
    return (
        f"images[{index}] could not be used: pass images inline, as base64 or a data: URL (file paths "
        "are read only by a server on your own machine over stdio, and only absolute paths to "
        f"{_KINDS} files within the size limit in the directories it allows: --image-dirs / "
        "MCP_OLLAMA_IMAGE_DIRS)."
    )


def call_cap_refused(limit: int) -> str:
    """The sentence for a call whose images together are over ``max_call_image_bytes``."""
    return (
        f"The images of this call come to more than the {limit:,}-byte limit for one call "
        "(--max-call-image-bytes / MCP_OLLAMA_MAX_CALL_IMAGE_BYTES): send fewer or smaller images."
    )


def in_flight_refused(limit: int) -> str:
    """The sentence for a call that would take its principal over ``max_inflight_image_bytes``."""
    return (
        f"With these images your chats not yet answered would hold more than the {limit:,}-byte "
        "limit of images in flight (--max-inflight-image-bytes / MCP_OLLAMA_MAX_INFLIGHT_IMAGE_BYTES): "
        "send fewer or smaller images, or wait for those answers."
    )


@dataclass(frozen=True, slots=True)
class Image:
    """One checked image, ready to send: its bytes as base64, and its note."""

    base64: str
    note: ImageNote


@dataclass(frozen=True, slots=True)
class ImageRules:
    """What one call may send: the caps, and where files may be read from (nowhere: ``()``)."""

    max_image_bytes: int
    max_call_bytes: int
    max_inflight_bytes: int
    dirs: tuple[str, ...] = ()

    @classmethod
    def for_call(cls, settings: Settings, principal: str) -> ImageRules:
        """The rules for ``principal``'s call: files only over stdio, for the local user."""
        local = not settings.remote and principal == LOCAL
        return cls(
            max_image_bytes=settings.max_image_bytes,
            max_call_bytes=settings.max_call_image_bytes,
            max_inflight_bytes=settings.max_inflight_image_bytes,
            dirs=settings.image_dirs if local else (),
        )


class InFlight:
    """Image bytes each principal has in calls whose request to Ollama is not finished; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    def held(self, principal: str) -> int:
        with self._lock:
            return self._held.get(principal, 0)

    def reserve(self, principal: str, size: int, limit: int) -> bool:
        """Count ``size`` more bytes for ``principal``; False (nothing counted) past ``limit``."""
        with self._lock:
            held = self._held.get(principal, 0)
            if held + size > limit:
                return False
            self._held[principal] = held + size
            return True

    def release(self, principal: str, size: int) -> None:
        with self._lock:
            left = self._held.get(principal, 0) - size
            if left > 0:
                self._held[principal] = left
            else:
                self._held.pop(principal, None)


_in_flight: weakref.WeakKeyDictionary[object, InFlight] = weakref.WeakKeyDictionary()


def in_flight_for(owner: object) -> InFlight:
    """The one ``InFlight`` of ``owner`` (a server's ``ChatService``), made on first use."""
    found = _in_flight.get(owner)
    if found is None:
        found = _in_flight[owner] = InFlight()
    return found


class ImageBatch:
    """The checked images of one call: their notes for good, their data until it is taken or released.

    ``take`` hands the base64 to the request for Ollama and keeps nothing of it; ``release`` (once
    that request is finished, or the turn ended without one) gives the bytes back to the
    principal's in-flight count. A batch that is dropped unreleased releases itself.
    """

    __slots__ = ("__weakref__", "_data", "_release", "notes")

    def __init__(self, images: Sequence[Image] = (), release: Callable[[], None] | None = None) -> None:
        self.notes: tuple[ImageNote, ...] = tuple(image.note for image in images)
        self._data: list[str] | None = [image.base64 for image in images]
        self._release = weakref.finalize(self, release) if release is not None else None

    def __len__(self) -> int:
        return len(self.notes)

    def __bool__(self) -> bool:
        return bool(self.notes)

    def __repr__(self) -> str:
        held = "sent or released" if self._data is None else "held"
        return f"ImageBatch({len(self.notes)} images, {sum(n.size for n in self.notes):,} bytes, {held})"

    def take(self) -> list[str]:
        """The images as base64, once: from now on the batch holds their notes only."""
        data, self._data = self._data, None
        if data is None and self.notes:
            raise RuntimeError("the images of this turn were already sent or released")
        return data or []

    def release(self) -> None:
        """Forget the data if still held and uncount its bytes; later calls do nothing."""
        self._data = None
        if self._release is not None:
            self._release()


class _Count:
    """The bytes one call has counted: against its own cap and its principal's in-flight cap."""

    def __init__(self, rules: ImageRules, in_flight: InFlight, principal: str) -> None:
        self._rules = rules
        self._in_flight = in_flight
        self._principal = principal
        self._lock = threading.Lock()
        self.total = 0

    def add(self, size: int) -> None:
        """Count ``size`` more bytes, or raise ``InputTooLarge`` (nothing counted) past a cap."""
        with self._lock:
            if self.total + size > self._rules.max_call_bytes:
                raise InputTooLarge(call_cap_refused(self._rules.max_call_bytes))
            if not self._in_flight.reserve(self._principal, size, self._rules.max_inflight_bytes):
                raise InputTooLarge(in_flight_refused(self._rules.max_inflight_bytes))
            self.total += size

    def correct(self, counted: int, actual: int) -> None:
        """``counted`` bytes were an estimate: count ``actual`` instead."""
        if actual > counted:
            self.add(actual - counted)
        elif actual < counted:
            self.remove(counted - actual)

    def remove(self, size: int) -> None:
        with self._lock:
            size = min(size, self.total)
            self.total -= size
            self._in_flight.release(self._principal, size)

    def release(self) -> None:
        self.remove(self.total)


def read_images(
    items: Sequence[str],
    rules: ImageRules,
    *,
    in_flight: InFlight | None = None,
    principal: str = LOCAL,
) -> ImageBatch:
    """Check, count and read each item (blocking: may read files; call it from a worker thread).

    Raises ``InputError`` naming the item (``images[2]``) and what is wrong with it, or
    ``InputTooLarge`` past a cap; nothing stays counted then.
    """
    if len(items) > MAX_IMAGES:
        raise InputError(f"{len(items)} images were given; at most {MAX_IMAGES} go with one message.")
    count = _Count(rules, in_flight if in_flight is not None else InFlight(), principal)
    try:
        images = [_read_one(index, item, rules, count) for index, item in enumerate(items)]
    except BaseException:
        count.release()
        raise
    return ImageBatch(images, count.release)


def _read_one(index: int, item: str, rules: ImageRules, count: _Count) -> Image:
    name = f"images[{index}]"
    if not isinstance(item, str) or not item.strip():
        raise InputError(f"{name} is empty: pass the image inline, as base64 or a data: URL.")
    text = item.strip()
    max_bytes = rules.max_image_bytes
    encoded: str | None = None
    if text.startswith("data:"):
        data, encoded = _from_data_uri(name, text, max_bytes, count)
    else:
        found = _from_base64(name, text, max_bytes, count)
        if isinstance(found, tuple):
            data, encoded = found
        elif found == "base64" and not os.path.isabs(text):
            raise InputError(f"{name} is base64, but not of a {_KINDS} image.")
        else:  # a path, or neither base64 nor a data: URL
            read = (
                read_image_file(text, rules.dirs, rules.max_image_bytes, count)
                if os.path.isabs(text)
                else None
            )
            if read is None:
                raise InputError(path_refused(index))
            data = read
    mime = sniff(data)
    if mime is None:
        raise InputError(f"{name} is not a {_KINDS} image.")
    note = ImageNote(mime=mime, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return Image(base64=encoded or base64.b64encode(data).decode("ascii"), note=note)
